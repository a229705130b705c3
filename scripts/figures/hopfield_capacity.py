"""Hebbian Hopfield networks: retrieval against load P/N.

`hopkur.capacity_sweep`: store P random +-1 patterns with Hebb's rule, cue the network
with copies of them with 10% of the signs flipped, and count a cue as retrieved when the
final state overlaps its pattern by at least 0.95. The classical network (asynchronous
sign updates) at two sizes, against the critical load alpha_c ~ 0.138 and the
retrieval overlap m(alpha) of the Amit-Gutfreund-Sompolinsky (1985) T = 0 equations
(`hopkur.theory.hopfield_critical_load`, `hopkur.theory.ags_overlap`); and the
continuous network dx/dt = beta W tanh(x) - x
(`hopkur.Hopfield(beta * W, 0, lagrangian_tanh)`, relaxed with `hopkur.relax`) at
several gains beta. Also writes docs/figures/hopfield_capacity.json (the measured
critical loads beside alpha_c).

    python scripts/figures/hopfield_capacity.py          # N = 1000 (sign), 400 (tanh)
    python scripts/figures/hopfield_capacity.py --fast   # N = 200, 100
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.random as jr
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import hopkur
import hopkur.theory as theory


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"
ALPHA_C = theory.hopfield_critical_load()


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small, quick run")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)

    if args.fast:
        sign_sizes, tanh_n, gains = (200,), 100, (4.0, 20.0)
        loads = np.arange(0.025, 0.31, 0.05).tolist()
        tanh_loads, trials, cues = loads, 1, 32
    else:
        sign_sizes, tanh_n, gains = (250, 1000), 400, (2.0, 4.0, 20.0)
        loads = np.arange(0.02, 0.301, 0.02).tolist()
        tanh_loads, trials, cues = np.arange(0.02, 0.301, 0.04).tolist(), 2, 64

    results = []
    for n in sign_sizes:
        start = time.perf_counter()
        sweep = hopkur.capacity_sweep(
            n, loads, key=jr.key(n), trials=trials + 1, cues=cues
        )
        print(sweep)
        print(f"({time.perf_counter() - start:.1f} s)\n")
        results.append((f"sign, N = {n}", sweep))
    for gain in gains:
        start = time.perf_counter()
        sweep = hopkur.capacity_sweep(
            tanh_n,
            tanh_loads,
            key=jr.key(int(gain)),
            variant="tanh",
            gain=gain,
            trials=trials,
            cues=cues // 2,
        )
        print(sweep)
        print(f"({time.perf_counter() - start:.1f} s)\n")
        results.append((f"tanh, N = {tanh_n}, gain {gain:g}", sweep))

    print("critical loads (retrieved fraction < 1/2):")
    for label, sweep in results:
        crit = sweep.critical_load
        print(f"  {label:28s} {'not reached' if crit is None else f'{crit:.3f}'}")

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, sweep in results:
        style = "-o" if label.startswith("sign") else "--s"
        ax.plot(sweep.loads, sweep.retrieved_fraction, style, ms=4, label=label)
        bx.plot(sweep.loads, sweep.mean_overlap, style, ms=4, label=label)
    grid = np.linspace(0.001, max(loads), 400)
    bx.plot(
        grid,
        np.nan_to_num(theory.ags_overlap(grid)),
        "k-",
        lw=1.5,
        label="AGS retrieval overlap m($\\alpha$), T = 0",
    )
    bx.legend(fontsize=8, loc="lower left")
    for axis in (ax, bx):
        axis.axvline(ALPHA_C, color="0.5", ls=":", lw=1)
        axis.set_xlabel("load P/N")
    ax.text(
        ALPHA_C + 0.004,
        0.9,
        f"AGS $\\alpha_c$ = {ALPHA_C:.4f}",
        color="0.4",
        fontsize=8,
    )
    ax.set(
        ylabel="fraction retrieved (overlap >= 0.95)",
        ylim=(-0.03, 1.03),
        title="retrieval from 10%-corrupted cues",
    )
    bx.set(
        ylabel="mean final overlap",
        ylim=(0, 1.03),
        title="overlap with the cued pattern",
    )
    ax.legend(fontsize=8, loc="lower left")
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGURES / "hopfield_capacity.png", dpi=120)
    record = {
        "alpha_c_ags": ALPHA_C,
        "critical_load": {label: sweep.critical_load for label, sweep in results},
        "loads": {label: list(map(float, sweep.loads)) for label, sweep in results},
        "retrieved_fraction": {
            label: list(map(float, sweep.retrieved_fraction))
            for label, sweep in results
        },
        "mean_overlap": {
            label: list(map(float, sweep.mean_overlap)) for label, sweep in results
        },
        "ags_overlap": {
            label: np.nan_to_num(theory.ags_overlap(np.asarray(sweep.loads))).tolist()
            for label, sweep in results
            if label.startswith("sign")
        },
    }
    (FIGURES / "hopfield_capacity.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {FIGURES / 'hopfield_capacity.png'} and .json")


if __name__ == "__main__":
    main()
