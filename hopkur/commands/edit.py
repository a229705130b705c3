"""`hopkur edit`: memory editing of a pre-trained Hopfield classifier by an oscillator
correction (swap 0<->1 or conflate 1->0; non-associative or associative).

Writes to the output folder: `config.json`, `pretrained.json` (the frozen network's
training metrics), `checkpoint.eqx` (training state, for `--resume`), `model.eqx` (the
edited classifier), `metrics.json`, `learning_curve.png`, `confusion_before.png`,
`confusion_after.png`, `gram.png`, and `COMPLETE` last. See docs/cli/edit.md.
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from ._common import (
    add_common_flags,
    add_flags,
    HelpFormatter,
    RunFolder,
    seed_setting,
    setting,
    setup_jax,
    to_dict,
    UsageError,
    x64_setting,
)
from ._folder import os_error_text
from .classify import (
    check_graph_fits,
    check_graph_k,
    data_settings,
    data_source,
    environment,
    LAGRANGIANS,
    load_data,
    non_finite_exit,
    OPTIMISERS,
    project,
    resume_settings,
)


# The flags of the oscillator correction and its training, shared by `hopkur edit`
# and `hopkur demo`: name -> (default, help, options of `setting`).
_EDIT = {
    "task": (
        "swap",
        "swap 0 and 1, or conflate 1 into 0",
        {"choices": ("swap", "conflate")},
    ),
    "mode": (
        "multiplicative",
        "c_ij = alpha M_ij (additive) or alpha M_ij (W_s)_ij (multiplicative)",
        {"choices": ("additive", "multiplicative")},
    ),
    "dim": (4, "oscillator dimension D", {"minimum": 2, "maximum": 64}),
    "graph_k": (
        0,
        "0: all-to-all coupling graph M (with --mode additive: the rank-<=D "
        "correction); else neighbours of a small-world coupling graph M (even)",
        {"minimum": 0},
    ),
    "oscillator_k": (
        0,
        "0: one mean-field coupling among oscillators; else neighbours of their "
        "small-world graph, one trained coupling per edge",
        {"minimum": 0},
    ),
    "alpha": (0.1, "initial alpha (non-zero)", {"minimum": -1e3, "maximum": 1e3}),
    "encoder_rank": (
        4,
        "associative: bottleneck of the context encoder",
        {"minimum": 1, "maximum": 4096},
    ),
    "context": (
        "encoder",
        "associative: the context image reaches the oscillators through a trained "
        "encoder, or raw as the pixel oscillators' initial states (image; the "
        "research note's)",
        {"choices": ("encoder", "image")},
    ),
    "optimiser": ("lion", "optax optimiser", {"choices": OPTIMISERS}),
    "lr": (3e-3, "learning rate", {"above": 0, "maximum": 10.0}),
    "decay_every": (
        0,
        "halve the learning rate every so many steps (0: constant)",
        {"minimum": 0},
    ),
    "steps": (300, "optimiser steps", {"minimum": 0, "maximum": 10_000_000}),
    "batch_size": (50, "images per step", {"minimum": 1, "maximum": 1_000_000}),
}

# The frozen network's pre-training: `--pretrain-<name>`.
_PRETRAIN = {
    "extra": (
        100,
        "hidden units besides the pixel and class units",
        {"minimum": 0, "maximum": 100_000},
    ),
    "lagrangian": (
        "tanh",
        "Hopfield activation (its Lagrangian)",
        {"choices": LAGRANGIANS},
    ),
    "optimiser": ("lion", "optax optimiser", {"choices": OPTIMISERS}),
    "lr": (1e-3, "learning rate", {"above": 0, "maximum": 10.0}),
    "decay_every": (
        1000,
        "halve the learning rate every so many steps (0: constant)",
        {"minimum": 0},
    ),
    "steps": (3000, "optimiser steps", {"minimum": 0, "maximum": 10_000_000}),
    "batch_size": (50, "images per step", {"minimum": 1, "maximum": 1_000_000}),
    "noise": (
        0.25,
        "std of Gaussian noise on pre-training images",
        {"minimum": 0, "maximum": 100.0},
    ),
}
PRETRAIN_GROUP = "pre-training (the frozen Hopfield classifier; cached)"


def edit_setting(name: str, group: str = "edit", **changes):
    """The field `name` of the correction's settings (see `_EDIT`)."""
    default, text, options = _EDIT[name]
    default = changes.pop("default", default)
    text = changes.pop("help", text)
    return setting(default, text, group=group, **{**options, **changes})


def pretrain_setting(name: str):
    """The field `pretrain_<name>` (see `_PRETRAIN`)."""
    default, text, options = _PRETRAIN[name]
    return setting(default, text, group=PRETRAIN_GROUP, **options)


def cache_dir_setting():
    return setting(
        None,
        "where pre-trained networks are cached (default: $HOPKUR_CACHE or "
        "~/.cache/hopkur)",
        metavar="DIR",
        group=PRETRAIN_GROUP,
    )


def check_edit(settings) -> None:
    """The checks `hopkur edit` and `hopkur demo` share."""
    data_source(settings.data, settings.mnist_dir)
    check_graph_k("--graph-k", settings.graph_k)
    check_graph_k("--oscillator-k", settings.oscillator_k)
    if settings.alpha == 0:
        raise UsageError(
            "--alpha must be non-zero (at alpha = 0 the oscillators get no gradient)"
        )


@dataclasses.dataclass(frozen=True)
class EditSettings:
    """The settings of `hopkur edit`."""

    task: str = edit_setting("task")
    variant: str = setting(
        "non-associative",
        "always, or only with a context image of a 1",
        choices=("non-associative", "associative"),
        group="edit",
    )
    mode: str = edit_setting("mode")
    dim: int = edit_setting("dim")
    graph_k: int = edit_setting("graph_k")
    oscillator_k: int = edit_setting("oscillator_k")
    alpha: float = edit_setting("alpha")
    encoder_rank: int = edit_setting("encoder_rank")
    context: str = edit_setting("context")
    optimiser: str = edit_setting("optimiser")
    lr: float = edit_setting("lr")
    decay_every: int = edit_setting("decay_every")
    steps: int = edit_setting("steps")
    batch_size: int = edit_setting("batch_size")
    eval_every: int = setting(
        0,
        "steps between test evaluations for the learning curve (0: end only)",
        minimum=0,
        group="edit",
        on_resume="free",
    )
    pretrain_extra: int = pretrain_setting("extra")
    pretrain_lagrangian: str = pretrain_setting("lagrangian")
    pretrain_optimiser: str = pretrain_setting("optimiser")
    pretrain_lr: float = pretrain_setting("lr")
    pretrain_decay_every: int = pretrain_setting("decay_every")
    pretrain_steps: int = pretrain_setting("steps")
    pretrain_batch_size: int = pretrain_setting("batch_size")
    pretrain_noise: float = pretrain_setting("noise")
    cache_dir: str | None = cache_dir_setting()
    data: str = data_settings()["data"]
    mnist_dir: str | None = data_settings()["mnist_dir"]
    train_limit: int = data_settings()["train_limit"]
    test_limit: int = data_settings()["test_limit"]
    seed: int = seed_setting()
    x64: bool = x64_setting()
    no_figures: bool = setting(False, "write no figures", on_resume="free")

    def check(self) -> None:
        check_edit(self)
        if self.context != "encoder" and self.variant != "associative":
            raise UsageError(
                f"--context {self.context} needs --variant associative (the "
                "non-associative edit has no context image)"
            )


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "edit",
        help="edit a pre-trained Hopfield classifier with an oscillator correction",
        description=(
            "Pre-train (or load from the cache) a Hopfield classifier, freeze it, and "
            "train only an oscillator correction W_s + alpha (X X^T - I) so that it "
            "swaps 0<->1 or conflates 1->0, always (non-associative) or only when a "
            "context image of a 1 is shown to the oscillators (associative). Writes "
            "metrics.json (frozen baseline and edited accuracies, parameter counts), "
            "model.eqx and figures to --out."
        ),
        formatter_class=HelpFormatter,
    )
    add_flags(parser, EditSettings)
    add_common_flags(parser, default_out="outputs/edit", resume=True)
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


def pretrain_config(settings):
    """The `ClassifyConfig` of the frozen network."""
    from hopkur.experiments import ClassifyConfig

    return project(
        settings,
        ClassifyConfig,
        prefix="pretrain_",
        model="hopfield",
        task="classify",
        data=data_source(settings.data, settings.mnist_dir),
        eval_every=0,
        graph_k=0,
        dim=4,
        interaction="linear",
        average=0.0,
    )


def edit_config(settings, variant=None, steps=None):
    """The `EditConfig` of the settings."""
    from hopkur.experiments import EditConfig

    changes = {}
    if variant is not None:
        changes["variant"] = variant
    if steps is not None:
        changes["steps"] = steps
    if not hasattr(settings, "eval_every"):
        changes["eval_every"] = 0
    return project(settings, EditConfig, **changes)


def check_cache_dir(path: str | None) -> None:
    """Refuses a cache folder that cannot be written, before any pre-training."""
    import tempfile

    from hopkur.experiments import default_cache_dir

    folder = default_cache_dir() if path is None else Path(path).expanduser()
    flag = "--cache-dir" if path is not None else "the cache folder"
    try:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{flag} {folder} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(
            f"{flag} {folder} cannot be written ({os_error_text(e)})"
        ) from None


def check_edit_data(settings, data, variants) -> None:
    """Checks that the data can serve the edit: graphs smaller than the network,
    and images of a 1 (the context of the associative edit)."""
    import numpy as np

    _, ytr, _, yte = data
    check_graph_fits("--graph-k", settings.graph_k, data, settings.pretrain_extra)
    check_graph_fits(
        "--oscillator-k", settings.oscillator_k, data, settings.pretrain_extra
    )
    for split, labels in (("training", ytr), ("test", yte)):
        if "associative" in variants and not np.any(labels == 1):
            raise UsageError(
                f"the associative edit needs images of a 1 as contexts; the {split} "
                "data hold none"
            )


def pretrained(pconfig, data, settings, quiet):
    """The frozen network (cache or training) and its metrics."""
    from hopkur.experiments import pretrained_hopfield_classifier

    return pretrained_hopfield_classifier(
        pconfig, data, cache_dir=settings.cache_dir, progress=not quiet
    )


def gram_matrices(model, data, variant):
    """Initial-oscillator Gram matrices to plot: one, or (associative) for the first
    test "1" and the first test image of another digit as contexts."""
    import numpy as np

    from hopkur.experiments.editing import oscillator_gram

    if variant == "non-associative":
        return {"X X^T": oscillator_gram(model)}
    _, _, xte, yte = data
    one = xte[int(np.flatnonzero(yte == 1)[0])]
    other = xte[int(np.flatnonzero(yte != 1)[0])]
    return {
        'context "1"': oscillator_gram(model, one),
        "other context": oscillator_gram(model, other),
    }


def save_edit_figures(out, model, metrics, data, *, suffix="", title=""):
    from hopkur.experiments import figures

    variant = metrics["variant"]
    label = "predicted (context: a 1)" if variant == "associative" else "predicted"
    before = metrics["baseline"]["edited_task"]
    after = metrics["edited"]["edited_task"]
    out.save_figure(
        f"confusion_before{suffix}.png",
        figures.confusion(
            metrics["confusion_before"],
            f"frozen network{title}: edited task {before:.3f}",
            predicted_label=label,
        ),
    )
    out.save_figure(
        f"confusion_after{suffix}.png",
        figures.confusion(
            metrics["confusion_after"],
            f"edited{title}: edited task {after:.3f}",
            predicted_label=label,
        ),
    )
    n_in = model.num_inputs
    n = model.correction.num_units
    out.save_figure(
        f"gram{suffix}.png",
        figures.gram(
            gram_matrices(model, data, variant),
            boundaries=(n_in, n - model.num_classes),
        ),
    )


def run_command(args: argparse.Namespace) -> int:
    out = RunFolder(args.out, "edit", overwrite=args.overwrite, resume=args.resume)
    settings = resume_settings(EditSettings, args, out)
    pconfig = pretrain_config(settings)
    config = edit_config(settings)
    setup_jax(settings)
    data = load_data(pconfig)
    check_edit_data(settings, data, [config.variant])
    check_cache_dir(settings.cache_dir)
    if out.resume and not out.file("checkpoint.eqx").exists():
        raise UsageError(f"--resume: no checkpoint.eqx in {out.path}")
    start = time.perf_counter()
    from hopkur.experiments import figures, run_edit

    with out.opened():
        out.write_json("config.json", to_dict(settings))
        frozen, pmetrics, cached = pretrained(pconfig, data, settings, args.quiet)
        out.write_json("pretrained.json", {"cached": cached, **pmetrics})
        model, metrics, _ = run_edit(
            config,
            frozen,
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
                    {f"{config.task} {config.variant}": metrics["learning_curve"]},
                    "hopkur edit",
                ),
            )
            save_edit_figures(out, model, metrics, data)
        metrics = {
            "command": "edit",
            "config": {
                "edit": dataclasses.asdict(config),
                "pretrain": dataclasses.asdict(pconfig),
            },
            "original_test_accuracy": pmetrics["test_accuracy"],
            "pretrained_cached": cached,
            **metrics,
            "resumed": out.resume,
            "wall_time_s": time.perf_counter() - start,
            "environment": environment(),
        }
        bad = out.write_json("metrics.json", metrics)
        if bad:
            return non_finite_exit("edit", bad, out)
        out.complete()
    if not args.quiet:
        b, e = metrics["baseline"], metrics["edited"]
        print(
            f"hopkur edit: {config.task} {config.variant}: edited-task accuracy "
            f"{b['edited_task']:.4f} -> {e['edited_task']:.4f}; untouched digits "
            f"{b['untouched']:.4f} -> {e['untouched']:.4f}; "
            f"{metrics['parameters']} parameters vs N^2 = "
            f"{metrics['full_update_parameters']}\nresults in {out.path}",
            file=sys.stderr,
        )
    return 0
