"""`hopkur capacity`: memory retrieval against load in Hebbian Hopfield networks.

Runs `hopkur.capacity_sweep` and writes `metrics.json` (the table and the critical
load), `capacity.png` and `COMPLETE` to the output folder.
"""

import argparse
import sys
import time

from ._common import (
    add_common_flags,
    apply_config,
    HelpFormatter,
    OutputDir,
    setup_jax,
    UsageError,
)


VARIANTS = ("sign", "sign-sync", "tanh")


def _loads(text: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"--loads must be comma-separated numbers; got {text!r}"
        ) from None
    if not values or min(values) <= 0:
        raise UsageError(f"--loads must be positive numbers; got {text!r}")
    return values


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "capacity",
        help="memory retrieval versus load P/N of Hebbian Hopfield networks",
        description=(
            "Store P random +-1 patterns with Hebb's rule in a Hopfield network of N "
            "units, cue it with corrupted copies, and measure retrieval against the "
            "load P/N (hopkur.capacity_sweep). Writes metrics.json and capacity.png."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--n", type=int, default=500, help="number of units N")
    parser.add_argument(
        "--loads",
        default="0.02,0.05,0.08,0.1,0.12,0.14,0.16,0.18,0.2,0.25,0.3",
        help="comma-separated loads P/N",
    )
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="sign",
        help="sign: classical asynchronous sign updates; sign-sync: synchronous; "
        "tanh: continuous network dx/dt = gain W tanh(x) - x relaxed to a fixed point",
    )
    parser.add_argument(
        "--gain", type=float, default=10.0, help="tanh variant: the gain beta"
    )
    parser.add_argument(
        "--flip", type=float, default=0.1, help="fraction of each cue's signs flipped"
    )
    parser.add_argument(
        "--trials", type=int, default=2, help="independent pattern sets per load"
    )
    parser.add_argument("--cues", type=int, default=32, help="cues per trial")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.95,
        help="final overlap counted as a retrieval",
    )
    parser.add_argument(
        "--sweeps", type=int, default=20, help="sign variants: update sweeps"
    )
    parser.add_argument("--no-figures", action="store_true", help="write no PNG")
    add_common_flags(parser, default_out="outputs/capacity")
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


def _validate(args) -> list[float]:
    loads = _loads(args.loads)
    checks = [
        (args.n >= 2, f"--n must be at least 2; got {args.n}"),
        (args.trials >= 1, f"--trials must be at least 1; got {args.trials}"),
        (args.cues >= 1, f"--cues must be at least 1; got {args.cues}"),
        (args.sweeps >= 1, f"--sweeps must be at least 1; got {args.sweeps}"),
        (0 <= args.flip <= 1, f"--flip must be in [0, 1]; got {args.flip}"),
        (
            0 < args.threshold <= 1,
            f"--threshold must be in (0, 1]; got {args.threshold}",
        ),
        (args.gain > 0, f"--gain must be positive; got {args.gain}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    return loads


def run_command(args: argparse.Namespace) -> int:
    args = apply_config(args._parser, args)
    loads = _validate(args)
    setup_jax(args)

    import jax
    import jax.random as jr
    from tqdm import tqdm

    import hopkur

    start = time.perf_counter()
    out = OutputDir(args.out, overwrite=args.overwrite)
    try:
        with tqdm(total=len(loads), disable=args.quiet, unit="load") as bar:
            sweep = hopkur.capacity_sweep(
                args.n,
                loads,
                key=jr.key(args.seed),
                variant=args.variant,
                gain=args.gain,
                flip_fraction=args.flip,
                trials=args.trials,
                cues=args.cues,
                threshold=args.threshold,
                sweeps=args.sweeps,
                progress=lambda done, total: bar.update(1),
            )
        metrics = {
            "command": "capacity",
            "hopkur_version": hopkur.__version__,
            "config": {
                k: v
                for k, v in sorted(vars(args).items())
                if k
                not in {"run", "_parser", "command", "config", "overwrite", "quiet"}
            },
            "n": sweep.n,
            "variant": sweep.variant,
            "gain": sweep.gain,
            "loads": [float(v) for v in sweep.loads],
            "num_patterns": [int(v) for v in sweep.num_patterns],
            "mean_overlap": [float(v) for v in sweep.mean_overlap],
            "retrieved_fraction": [float(v) for v in sweep.retrieved_fraction],
            "critical_load": sweep.critical_load,
            "classical_critical_load": 0.138,
            "jax": {
                "version": jax.__version__,
                "backend": jax.default_backend(),
                "x64": bool(jax.config.read("jax_enable_x64")),
            },
        }
        if not args.no_figures:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(sweep.loads, sweep.retrieved_fraction, "-o", label="retrieved")
            ax.plot(sweep.loads, sweep.mean_overlap, "--s", label="mean overlap")
            ax.axvline(0.138, color="0.5", ls=":", label=r"$\alpha_c \approx 0.138$")
            ax.set(
                xlabel="load P/N",
                ylim=(-0.03, 1.03),
                title=f"Hebbian Hopfield, N = {sweep.n} ({sweep.variant})",
            )
            ax.legend()
            out.save_figure("capacity.png", fig)
        metrics["wall_time_s"] = time.perf_counter() - start
        out.write_json("metrics.json", metrics)
        out.complete()
    except BaseException:
        out.abandon()
        raise
    if not args.quiet:
        print(str(sweep) + f"\nresults in {out.path}", file=sys.stderr)
    return 0
