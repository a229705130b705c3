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

from ._common import (
    add_common_flags,
    apply_config,
    atomic_save_eqx,
    HelpFormatter,
    OutputDir,
    setup_jax,
    UsageError,
)
from .classify import (
    add_data_flags,
    add_model_flags,
    add_optimiser_flags,
    at_least,
    check_resume,
    data_source,
    environment,
    load_data,
)


def add_edit_flags(group) -> None:
    """Flags of the oscillator correction (shared with `hopkur demo`)."""
    group.add_argument(
        "--mode",
        choices=("additive", "multiplicative"),
        default="multiplicative",
        help="c_ij = alpha M_ij (additive) or alpha M_ij (W_s)_ij (multiplicative)",
    )
    group.add_argument("--dim", type=int, default=4, help="oscillator dimension D")
    group.add_argument(
        "--graph-k",
        type=int,
        default=0,
        help="0: all-to-all coupling graph M (with --mode additive: the rank-<=D "
        "correction); else neighbours of a small-world coupling graph M (even)",
    )
    group.add_argument(
        "--oscillator-k",
        type=int,
        default=0,
        help="0: one mean-field coupling among oscillators; else neighbours of their "
        "small-world graph, one trained coupling per edge",
    )
    group.add_argument(
        "--alpha", type=float, default=0.1, help="initial alpha (non-zero)"
    )
    group.add_argument(
        "--encoder-rank",
        type=int,
        default=4,
        help="associative: bottleneck of the context encoder",
    )


def add_pretrain_flags(parser) -> None:
    group = parser.add_argument_group(
        "pre-training (the frozen Hopfield classifier; cached)"
    )
    add_model_flags(group, prefix="pretrain-")
    add_optimiser_flags(
        group,
        prefix="pretrain-",
        steps=3000,
        lr=1e-3,
        batch_size=50,
        decay_every=1000,
    )
    group.add_argument(
        "--pretrain-noise",
        type=float,
        default=0.25,
        help="std of Gaussian noise on pre-training images",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="where pre-trained networks are cached (default: $HOPKUR_CACHE or "
        "~/.cache/hopkur)",
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
    edit = parser.add_argument_group("edit")
    edit.add_argument(
        "--task",
        choices=("swap", "conflate"),
        default="swap",
        help="swap 0 and 1, or conflate 1 into 0",
    )
    edit.add_argument(
        "--variant",
        choices=("non-associative", "associative"),
        default="non-associative",
        help="always, or only with a context image of a 1",
    )
    add_edit_flags(edit)
    add_optimiser_flags(edit, steps=300, lr=3e-3, batch_size=50)
    edit.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="steps between test evaluations for the learning curve (0: end only)",
    )
    edit.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_pretrain_flags(parser)
    add_data_flags(parser)
    parser.add_argument("--no-figures", action="store_true", help="write no figures")
    add_common_flags(parser, default_out="outputs/edit")
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


def pretrain_config(args):
    """The `ClassifyConfig` of the frozen network."""
    from hopkur.experiments import ClassifyConfig

    data = data_source(args)
    at_least("pretrain-extra", args.pretrain_extra, 0)
    at_least("pretrain-steps", args.pretrain_steps, 0)
    at_least("pretrain-batch-size", args.pretrain_batch_size, 1)
    at_least("train-limit", args.train_limit, 0)
    at_least("test-limit", args.test_limit, 0)
    if not args.pretrain_lr > 0:
        raise UsageError(f"--pretrain-lr must be positive; got {args.pretrain_lr}")
    return ClassifyConfig(
        model="hopfield",
        data=data,
        mnist_dir=args.mnist_dir,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        extra=args.pretrain_extra,
        lagrangian=args.pretrain_lagrangian,
        optimiser=args.pretrain_optimiser,
        lr=args.pretrain_lr,
        decay_every=args.pretrain_decay_every,
        steps=args.pretrain_steps,
        batch_size=args.pretrain_batch_size,
        noise=args.pretrain_noise,
        eval_every=0,
        seed=args.seed,
        x64=args.x64,
    )


def edit_config(args, variant=None):
    """The `EditConfig` of the flags (checked)."""
    from hopkur.experiments import EditConfig

    at_least("dim", args.dim, 2)
    at_least("steps", args.steps, 0)
    at_least("batch-size", args.batch_size, 1)
    at_least("encoder-rank", args.encoder_rank, 1)
    at_least("eval-every", getattr(args, "eval_every", 0), 0)
    for name in ("graph_k", "oscillator_k"):
        k = getattr(args, name)
        if k and (k < 2 or k % 2):
            flag = name.replace("_", "-")
            raise UsageError(f"--{flag} must be 0 or an even number >= 2; got {k}")
    if not args.lr > 0:
        raise UsageError(f"--lr must be positive; got {args.lr}")
    if args.alpha == 0:
        raise UsageError(
            "--alpha must be non-zero (at alpha = 0 the oscillators get no gradient)"
        )
    return EditConfig(
        task=getattr(args, "task", "swap"),
        variant=variant or args.variant,
        mode=args.mode,
        dim=args.dim,
        graph_k=args.graph_k,
        oscillator_k=args.oscillator_k,
        alpha=args.alpha,
        encoder_rank=args.encoder_rank,
        optimiser=args.optimiser,
        lr=args.lr,
        decay_every=args.decay_every,
        steps=args.steps,
        batch_size=args.batch_size,
        eval_every=getattr(args, "eval_every", 0),
        seed=args.seed,
    )


def pretrained(pconfig, data, args):
    """The frozen network (cache or training) and its metrics."""
    from hopkur.experiments import pretrained_hopfield_classifier

    return pretrained_hopfield_classifier(
        pconfig, data, cache_dir=args.cache_dir, progress=not args.quiet
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
    args = apply_config(args._parser, args)
    pconfig = pretrain_config(args)
    config = edit_config(args)
    setup_jax(args)
    out = OutputDir(args.out, overwrite=args.overwrite, resume=args.resume)
    start = time.perf_counter()
    try:
        from hopkur.experiments import figures, run_edit

        data = load_data(pconfig)
        settings = {
            "edit": dataclasses.asdict(config),
            "pretrain": dataclasses.asdict(pconfig),
        }
        resume = check_resume(out, settings, args.resume)
        frozen, pmetrics, cached = pretrained(pconfig, data, args)
        out.write_json("pretrained.json", {"cached": cached, **pmetrics})
        model, metrics, _ = run_edit(
            config,
            frozen,
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
                    {f"{config.task} {config.variant}": metrics["learning_curve"]},
                    "hopkur edit",
                ),
            )
            save_edit_figures(out, model, metrics, data)
        metrics = {
            "command": "edit",
            "config": settings,
            "original_test_accuracy": pmetrics["test_accuracy"],
            "pretrained_cached": cached,
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
