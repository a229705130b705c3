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
    add_flags,
    HelpFormatter,
    resolve,
    RunFolder,
    seed_setting,
    setting,
    setup_jax,
    x64_setting,
)
from .classify import data_settings, environment, load_data, non_finite_exit
from .edit import (
    cache_dir_setting,
    check_cache_dir,
    check_edit,
    check_edit_data,
    edit_config,
    edit_setting,
    pretrain_config,
    pretrain_setting,
    pretrained,
    save_edit_figures,
)


VARIANTS = ("non-associative", "associative")
SCHEMA_VERSION = 1
GROUP = "edit (both variants)"


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """The settings of `hopkur demo`."""

    task: str = edit_setting("task", GROUP)
    mode: str = edit_setting("mode", GROUP)
    dim: int = edit_setting("dim", GROUP)
    graph_k: int = edit_setting("graph_k", GROUP)
    oscillator_k: int = edit_setting("oscillator_k", GROUP)
    alpha: float = edit_setting("alpha", GROUP)
    encoder_rank: int = edit_setting("encoder_rank", GROUP)
    optimiser: str = edit_setting("optimiser", GROUP)
    lr: float = edit_setting("lr", GROUP)
    decay_every: int = edit_setting("decay_every", GROUP)
    steps: int = edit_setting("steps", GROUP, help="non-associative edit steps")
    associative_steps: int = edit_setting(
        "steps", GROUP, default=400, help="associative edit steps"
    )
    batch_size: int = edit_setting("batch_size", GROUP)
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
    no_figures: bool = setting(False, "write no figures")

    def check(self) -> None:
        check_edit(self)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="the headline experiment: pre-train a Hopfield classifier on digits and "
        "edit it (swap 0<->1) with oscillators",
        description=(
            "Pre-train a Hopfield classifier on the built-in digits (or reuse the "
            "cached one), edit it to swap 0 and 1 with an oscillator correction, "
            "non-associatively and associatively, print a table and write "
            "metrics.json, table.txt and figures to --out."
        ),
        formatter_class=HelpFormatter,
    )
    add_flags(parser, DemoSettings)
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
    out = RunFolder(args.out, "demo", overwrite=args.overwrite)
    settings = resolve(DemoSettings, args)
    pconfig = pretrain_config(settings)
    configs = [
        edit_config(settings, VARIANTS[0]),
        edit_config(settings, VARIANTS[1], steps=settings.associative_steps),
    ]
    setup_jax(settings)
    data = load_data(pconfig)
    check_edit_data(settings, data, VARIANTS)
    check_cache_dir(settings.cache_dir)
    start = time.perf_counter()
    from hopkur.experiments import figures, run_edit

    with out.opened():
        out.write_json(
            "config.json",
            {
                "pretrain": dataclasses.asdict(pconfig),
                "edits": [dataclasses.asdict(c) for c in configs],
            },
        )
        frozen, pmetrics, cached = pretrained(pconfig, data, settings, args.quiet)
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
            if not settings.no_figures:
                suffix = "_" + config.variant.replace("-", "_")
                save_edit_figures(
                    out,
                    model,
                    metrics,
                    data,
                    suffix=suffix,
                    title=f" ({config.variant})",
                )
        if not settings.no_figures:
            out.save_figure(
                "learning_curves.png",
                figures.learning_curves(curves, "hopkur demo: learning curves"),
            )
        table = format_table(pmetrics, edits)
        out.write_bytes("table.txt", table.encode())
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
        bad = out.write_json("metrics.json", result)
        if bad:
            return non_finite_exit("demo", bad, out)
        out.complete()
    print(table, end="")
    load = result["environment"]["load_average"]
    load_text = "" if load is None else f" (load average {load[0]:.2f})"
    print(
        f"wall time {wall:.0f} s{load_text}; pre-trained network "
        f"{'from the cache' if cached else 'trained now'}\nresults in {out.path}",
        file=sys.stderr if args.quiet else sys.stdout,
    )
    return 0
