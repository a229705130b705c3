"""`hopkur classify`: train an ODE-network classifier (Hopfield, Kuramoto or coupled
Hopfield-Kuramoto) on built-in digits or MNIST and report its accuracy.

Writes to the output folder: `config.json`, `checkpoint.eqx` (training state, for
`--resume`), `model.eqx` (the trained classifier), `metrics.json`, `learning_curve.png`,
`confusion.png`, and `COMPLETE` last. See docs/cli/classify.md.
"""

import argparse
import dataclasses
import json
import sys
import time

from ._common import (
    add_common_flags,
    apply_config,
    atomic_save_eqx,
    HelpFormatter,
    OutputDir,
    setup_jax,
    UsageError,
)


def add_model_flags(group, *, prefix: str = "", default_extra: int = 100) -> None:
    """Flags of the classifier (shared with `hopkur edit`'s pre-training)."""
    group.add_argument(
        f"--{prefix}extra",
        type=int,
        default=default_extra,
        help="hidden units besides the pixel and class units",
    )
    group.add_argument(
        f"--{prefix}lagrangian",
        choices=("tanh", "relu", "sigmoid", "identity"),
        default="tanh",
        help="Hopfield activation (its Lagrangian)",
    )


def add_data_flags(parser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        choices=("digits", "mnist"),
        default="digits",
        help="built-in 8x8 digits (no download; fixed split) or MNIST from --mnist-dir",
    )
    group.add_argument(
        "--mnist-dir",
        metavar="DIR",
        default=None,
        help="folder with the four MNIST IDX files (gzip or raw); implies --data mnist",
    )
    group.add_argument(
        "--train-limit",
        type=int,
        default=0,
        help="use only the first N training images",
    )
    group.add_argument(
        "--test-limit", type=int, default=0, help="use only the first N test images"
    )


def add_optimiser_flags(
    group,
    *,
    prefix: str = "",
    steps: int,
    lr: float,
    batch_size: int = 100,
    decay_every: int = 0,
) -> None:
    group.add_argument(
        f"--{prefix}optimiser",
        choices=("lion", "adam"),
        default="lion",
        help="optax optimiser",
    )
    group.add_argument(f"--{prefix}lr", type=float, default=lr, help="learning rate")
    group.add_argument(
        f"--{prefix}decay-every",
        type=int,
        default=decay_every,
        help="halve the learning rate every so many steps (0: constant)",
    )
    group.add_argument(
        f"--{prefix}steps", type=int, default=steps, help="optimiser steps"
    )
    group.add_argument(
        f"--{prefix}batch-size", type=int, default=batch_size, help="images per step"
    )


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
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        choices=("hopfield", "kuramoto", "hopfield-kuramoto"),
        default="hopfield",
        help="threshold units, oscillators, or both coupled",
    )
    add_model_flags(model)
    model.add_argument(
        "--dim", type=int, default=4, help="oscillator dimension D (>= 2)"
    )
    model.add_argument(
        "--graph-k",
        type=int,
        default=0,
        help="0: dense couplings; else neighbours of small-world graphs (even)",
    )
    model.add_argument(
        "--interaction",
        choices=("linear", "relu"),
        default="linear",
        help="oscillator interaction per edge (relu needs --graph-k)",
    )
    add_data_flags(parser)
    training = parser.add_argument_group("training")
    add_optimiser_flags(training, steps=3000, lr=1e-3, batch_size=50, decay_every=1000)
    training.add_argument(
        "--noise",
        type=float,
        default=0.25,
        help="std of Gaussian noise added to training images (regulariser; 0: none)",
    )
    training.add_argument(
        "--average",
        type=float,
        default=0.0,
        help="decay of an exponential moving average of the parameters, which is "
        "evaluated and saved (Polyak averaging; 0: off)",
    )
    training.add_argument(
        "--eval-every",
        type=int,
        default=250,
        help="steps between test evaluations for the learning curve (0: end only)",
    )
    training.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint",
    )
    parser.add_argument("--no-figures", action="store_true", help="write no figures")
    add_common_flags(parser, default_out="outputs/classify")
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


def at_least(name: str, value, minimum: int = 1) -> None:
    """Refuses `--name value` below `minimum` (shared by classify, edit and demo)."""
    if value < minimum:
        raise UsageError(f"--{name} must be at least {minimum}; got {value}")


def data_source(args) -> str:
    """`"digits"` or `"mnist"` from `--data` / `--mnist-dir` (checked)."""
    data = "mnist" if args.mnist_dir else args.data
    if data == "mnist" and not args.mnist_dir:
        raise UsageError("--data mnist needs --mnist-dir DIR")
    return data


def config_from_args(args):
    """The `ClassifyConfig` of the flags (checked)."""
    from hopkur.experiments import ClassifyConfig

    data = data_source(args)
    at_least("extra", args.extra, 0)
    at_least("dim", args.dim, 2)
    at_least("steps", args.steps, 0)
    at_least("batch-size", args.batch_size)
    at_least("train-limit", args.train_limit, 0)
    at_least("test-limit", args.test_limit, 0)
    at_least("eval-every", args.eval_every, 0)
    at_least("decay-every", args.decay_every, 0)
    if not args.lr > 0:
        raise UsageError(f"--lr must be positive; got {args.lr}")
    if args.noise < 0:
        raise UsageError(f"--noise must be >= 0; got {args.noise}")
    if not 0 <= args.average < 1:
        raise UsageError(f"--average must be in [0, 1); got {args.average}")
    if args.graph_k and (args.graph_k < 2 or args.graph_k % 2):
        raise UsageError(
            f"--graph-k must be 0 or an even number >= 2; got {args.graph_k}"
        )
    if args.interaction == "relu" and not args.graph_k:
        raise UsageError("--interaction relu needs a small-world graph (--graph-k)")
    return ClassifyConfig(
        model=args.model,
        data=data,
        mnist_dir=args.mnist_dir,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        extra=args.extra,
        dim=args.dim,
        graph_k=args.graph_k,
        lagrangian=args.lagrangian,
        interaction=args.interaction,
        optimiser=args.optimiser,
        lr=args.lr,
        decay_every=args.decay_every,
        steps=args.steps,
        batch_size=args.batch_size,
        noise=args.noise,
        average=args.average,
        eval_every=args.eval_every,
        seed=args.seed,
        x64=args.x64,
    )


def load_data(config):
    """`load_dataset` with file problems turned into one-line usage errors."""
    from hopkur.experiments import load_dataset

    try:
        return load_dataset(config)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None


def check_resume(out, config_dict: dict, resume: bool) -> bool:
    """Writes `config.json`, or on `--resume` checks it matches; returns whether a
    checkpoint is to be resumed."""
    path = out.file("config.json")
    if resume and path.exists():
        previous = json.loads(path.read_text())
        if previous != config_dict:
            changed = sorted(
                k
                for k in set(previous) | set(config_dict)
                if previous.get(k) != config_dict.get(k)
            )
            raise UsageError(
                f"--resume: the settings differ from the run in {out.path} "
                f"({', '.join(changed)}); use --overwrite to start again"
            )
        return out.file("checkpoint.eqx").exists()
    out.write_json("config.json", config_dict)
    return False


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
    args = apply_config(args._parser, args)
    config = config_from_args(args)
    setup_jax(args)
    out = OutputDir(args.out, overwrite=args.overwrite, resume=args.resume)
    start = time.perf_counter()
    try:
        from hopkur.experiments import figures, run_classify

        data = load_data(config)
        resume = check_resume(out, dataclasses.asdict(config), args.resume)
        model, metrics, _ = run_classify(
            config,
            data,
            checkpoint=out.file("checkpoint.eqx"),
            resume=resume,
            progress=not args.quiet,
        )
        atomic_save_eqx(out.file("model.eqx"), model)
        if not args.no_figures:
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
            "resumed": resume,
            "wall_time_s": time.perf_counter() - start,
            "environment": environment(),
        }
        out.write_json("metrics.json", metrics)
        out.complete()
    except BaseException:
        out.abandon()
        raise
    if not args.quiet:
        print(
            f"hopkur classify: {config.model} on {config.data}: test accuracy "
            f"{metrics['test_accuracy']:.4f} (train {metrics['train_accuracy']:.4f}), "
            f"{metrics['parameters']} parameters, {metrics['wall_time_s']:.0f} s\n"
            f"results in {out.path}",
            file=sys.stderr,
        )
    return 0
