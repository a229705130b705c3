"""`hopkur capacity`: memory retrieval against load in Hebbian Hopfield networks.

Runs `hopkur.capacity_sweep` and writes `metrics.json` (the table and the critical
load), `capacity.png` and `COMPLETE` to the output folder.
"""

import argparse
import dataclasses
import math
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


VARIANTS = ("sign", "sign-sync", "tanh")
MAX_LOAD = 10.0


def parse_loads(text: str) -> list[float]:
    """The loads of `--loads` (comma-separated numbers in (0, MAX_LOAD])."""
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"--loads must be comma-separated numbers; got {text!r}"
        ) from None
    if not values:
        raise UsageError(f"--loads must list at least one load; got {text!r}")
    for v in values:
        if not (math.isfinite(v) and 0 < v <= MAX_LOAD):
            raise UsageError(
                f"--loads must be finite numbers in (0, {MAX_LOAD:g}]; got {v:g}"
            )
    return values


@dataclasses.dataclass(frozen=True)
class CapacitySettings:
    """The settings of `hopkur capacity`."""

    n: int = setting(500, "number of units N", minimum=2, maximum=100_000)
    loads: str = setting(
        "0.02,0.05,0.08,0.1,0.12,0.14,0.16,0.18,0.2,0.25,0.3",
        "comma-separated loads P/N",
    )
    variant: str = setting(
        "sign",
        "sign: classical asynchronous sign updates; sign-sync: synchronous; "
        "tanh: continuous network dx/dt = gain W tanh(x) - x relaxed to a fixed point",
        choices=VARIANTS,
    )
    gain: float = setting(10.0, "tanh variant: the gain beta", above=0, maximum=1e6)
    flip: float = setting(
        0.1, "fraction of each cue's signs flipped", minimum=0, maximum=1
    )
    trials: int = setting(
        2, "independent pattern sets per load", minimum=1, maximum=100_000
    )
    cues: int = setting(32, "cues per trial", minimum=1, maximum=1_000_000)
    threshold: float = setting(
        0.95, "final overlap counted as a retrieval", above=0, maximum=1
    )
    sweeps: int = setting(
        20, "sign variants: update sweeps", minimum=1, maximum=1_000_000
    )
    seed: int = seed_setting()
    x64: bool = x64_setting()
    no_figures: bool = setting(False, "write no PNG")

    def check(self) -> None:
        parse_loads(self.loads)


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
    add_flags(parser, CapacitySettings)
    add_common_flags(parser, default_out="outputs/capacity")
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


def run_command(args: argparse.Namespace) -> int:
    out = RunFolder(args.out, "capacity", overwrite=args.overwrite)
    settings = resolve(CapacitySettings, args)
    loads = parse_loads(settings.loads)
    setup_jax(settings)

    import jax
    import jax.random as jr
    from tqdm import tqdm

    import hopkur

    start = time.perf_counter()
    with out.opened():
        with tqdm(total=len(loads), disable=args.quiet, unit="load") as bar:
            sweep = hopkur.capacity_sweep(
                settings.n,
                loads,
                key=jr.key(settings.seed),
                variant=settings.variant,
                gain=settings.gain,
                flip_fraction=settings.flip,
                trials=settings.trials,
                cues=settings.cues,
                threshold=settings.threshold,
                sweeps=settings.sweeps,
                progress=lambda done, total: bar.update(1),
            )
        metrics = {
            "command": "capacity",
            "hopkur_version": hopkur.__version__,
            "config": to_dict(settings),
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
        if not settings.no_figures:
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
        bad = out.write_json("metrics.json", metrics)
        if bad:
            from .classify import non_finite_exit

            return non_finite_exit("capacity", bad, out)
        out.complete()
    if not args.quiet:
        print(str(sweep) + f"\nresults in {out.path}", file=sys.stderr)
    return 0
