"""`hopkur demo` (what `make demo` runs): the research note's memory-editing experiment
on the built-in digits, end to end.

Pre-trains the Hopfield classifier (or reuses the cached checkpoint), edits it to swap
0 and 1 with an oscillator correction — non-associatively and associatively — and
writes `metrics.json`, `table.txt` and figures to the output folder, with `COMPLETE`
last. The JSON schema is documented in docs/cli/demo.md.
"""

import argparse
import dataclasses
import sys
import time

from ._common import (
    add_common_flags,
    apply_config,
    atomic_write_bytes,
    HelpFormatter,
    OutputDir,
    setup_jax,
    UsageError,
)
from .classify import add_data_flags, environment, load_data
from .edit import (
    add_edit_flags,
    add_pretrain_flags,
    edit_config,
    pretrain_config,
    pretrained,
    save_edit_figures,
)


VARIANTS = ("non-associative", "associative")
SCHEMA_VERSION = 1


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="the headline experiment: pre-train a Hopfield classifier on digits and "
        "edit it (swap 0<->1) with oscillators",
        description=(
            "Pre-train a Hopfield classifier on the built-in digits (or reuse the "
            "cached one), edit it to swap 0 and 1 with a low-rank oscillator "
            "correction, non-associatively and associatively, print a table and write "
            "metrics.json, table.txt and figures to --out."
        ),
        formatter_class=HelpFormatter,
    )
    edit = parser.add_argument_group("edit (both variants)")
    edit.add_argument(
        "--task",
        choices=("swap", "conflate"),
        default="swap",
        help="swap 0 and 1, or conflate 1 into 0",
    )
    add_edit_flags(edit)
    edit.add_argument(
        "--optimiser", choices=("lion", "adam"), default="lion", help="optax optimiser"
    )
    edit.add_argument("--lr", type=float, default=3e-3, help="learning rate")
    edit.add_argument(
        "--decay-every", type=int, default=0, help="halve lr every N steps (0: never)"
    )
    edit.add_argument(
        "--steps", type=int, default=300, help="non-associative edit steps"
    )
    edit.add_argument(
        "--associative-steps", type=int, default=400, help="associative edit steps"
    )
    edit.add_argument("--batch-size", type=int, default=50, help="images per step")
    add_pretrain_flags(parser)
    add_data_flags(parser)
    parser.add_argument("--no-figures", action="store_true", help="write no figures")
    add_common_flags(parser, default_out="outputs/demo")
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


def _pct(x) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


def format_table(pmetrics: dict, edits: list[dict]) -> str:
    """The demo's table as text."""
    lines = [
        f"original task (frozen Hopfield classifier): test accuracy "
        f"{_pct(pmetrics['test_accuracy'])} %",
        "",
        "edit                       | edited task %   | untouched digits % | "
        "parameters (vs N^2)    | time",
        "                           | before -> after | before -> after    | "
        "                       |",
        "-" * 98,
    ]
    for e in edits:
        b, a = e["baseline"], e["edited"]
        ratio = e["parameters"] / e["full_update_parameters"]
        lines.append(
            f"{e['task'] + ' ' + e['variant']:<26} | "
            f"{_pct(b['edited_task'])} -> {_pct(a['edited_task'])} | "
            f"{_pct(b['untouched'])} -> {_pct(a['untouched'])}     | "
            f"{e['parameters']:>6} / {e['full_update_parameters']:<6} "
            f"({100 * ratio:4.1f}%) | {e['train_seconds']:5.0f} s"
        )
        if e["variant"] == "associative":
            lines.append(
                f"{'  context a 1 / other':<26} | "
                f"{_pct(a['context_one'])} / {_pct(a['context_other'])} |"
            )
    return "\n".join(lines) + "\n"


def run_command(args: argparse.Namespace) -> int:
    args = apply_config(args._parser, args)
    pconfig = pretrain_config(args)
    configs = [edit_config(args, variant) for variant in VARIANTS]
    configs[1] = dataclasses.replace(configs[1], steps=args.associative_steps)
    if args.associative_steps < 0:
        raise UsageError(
            f"--associative-steps must be at least 0; got {args.associative_steps}"
        )
    setup_jax(args)
    out = OutputDir(args.out, overwrite=args.overwrite)
    start = time.perf_counter()
    try:
        from hopkur.experiments import figures, run_edit

        data = load_data(pconfig)
        out.write_json(
            "config.json",
            {
                "pretrain": dataclasses.asdict(pconfig),
                "edits": [dataclasses.asdict(c) for c in configs],
            },
        )
        frozen, pmetrics, cached = pretrained(pconfig, data, args)
        edits = []
        curves = {}
        if "loss" in pmetrics.get("learning_curve", {}):
            curves["pre-training"] = pmetrics["learning_curve"]
        for config in configs:
            model, metrics, _ = run_edit(config, frozen, data, progress=not args.quiet)
            curves[f"{config.task} {config.variant}"] = metrics["learning_curve"]
            metrics["parameter_ratio"] = (
                metrics["parameters"] / metrics["full_update_parameters"]
            )
            edits.append(metrics)
            if not args.no_figures:
                suffix = "_" + config.variant.replace("-", "_")
                save_edit_figures(
                    out,
                    model,
                    metrics,
                    data,
                    suffix=suffix,
                    title=f" ({config.variant})",
                )
        if not args.no_figures:
            out.save_figure(
                "learning_curves.png",
                figures.learning_curves(curves, "hopkur demo: learning curves"),
            )
        table = format_table(pmetrics, edits)
        atomic_write_bytes(out.file("table.txt"), table.encode())
        wall = time.perf_counter() - start
        result = {
            "command": "demo",
            "schema_version": SCHEMA_VERSION,
            "config": {
                "pretrain": dataclasses.asdict(pconfig),
                "edits": [dataclasses.asdict(c) for c in configs],
            },
            "pretrained": {
                "cached": cached,
                "train_accuracy": pmetrics["train_accuracy"],
                "test_accuracy": pmetrics["test_accuracy"],
                "train_seconds": None if cached else pmetrics["train_seconds"],
                "confusion": pmetrics["confusion"],
                "parameters": pmetrics["parameters"],
                "num_units": pmetrics["num_units"],
            },
            "edits": edits,
            "wall_time_s": wall,
            "environment": environment(),
        }
        out.write_json("metrics.json", result)
        out.complete()
    except BaseException:
        out.abandon()
        raise
    print(table, end="")
    load = result["environment"]["load_average"]
    load_text = "" if load is None else f" (load average {load[0]:.2f})"
    print(
        f"wall time {wall:.0f} s{load_text}; pre-trained network "
        f"{'from the cache' if cached else 'trained now'}\nresults in {out.path}",
        file=sys.stderr if args.quiet else sys.stdout,
    )
    return 0
