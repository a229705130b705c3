"""AKOrN Sudoku: does a lower energy mean a correct board? (the hard set)

For every hard puzzle and random start of the shipped checkpoint (or of the per-start
data written by `scripts/sudoku_hard_eval.py`, with `--data`), plots the start's final
energy, relative to the median over the puzzle's starts, against its number of violated
Sudoku constraints, marking the correct boards; and the rank of the correct starts
among their puzzle's starts (uniform if the energy carries no information about
correctness, piled at rank 1 if energy voting works). Writes
`docs/figures/sudoku_energy.png` and the numbers to `docs/figures/sudoku_energy.json`.

    python scripts/figures/sudoku_energy.py          # 500 puzzles x 256 starts, 32 its
    python scripts/figures/sudoku_energy.py --data runs/sudoku-hard-eval/starts-m4.npz
    python scripts/figures/sudoku_energy.py --fast   # 10 puzzles x 4 starts
"""

import argparse
import json
import time
from pathlib import Path

import jax.random as jr
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hopkur.data.sudoku import hard_set
from hopkur.experiments.sudoku_eval import run_starts, score_starts, wilson_interval
from hopkur.experiments.sudoku_run import load_shipped_model


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"


def _starts(args) -> dict:
    if args.data is not None:
        with np.load(args.data) as data:
            return {k: data[k] for k in data.files} | {
                "source": f"per-start data {Path(args.data).name}"
            }
    n, starts, multiplier = (10, 4, 1) if args.fast else (500, 256, 4)
    model, config = load_shipped_model()
    blocks = multiplier * int(config["blocks"])
    puzzles, solutions = hard_set(n)
    result = run_starts(model, puzzles, key=jr.key(0), starts=starts, blocks=blocks)
    correct, violations, wrong = score_starts(result["boards"], puzzles, solutions)
    return {
        "final_energy": result["final_energy"],
        "summed_energy": result["summed_energy"],
        "correct": correct,
        "violations": violations,
        "wrong_cells": wrong,
        "blocks": blocks,
        "source": "shipped checkpoint, seed 0",
    }


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a few puzzles only")
    parser.add_argument("--data", type=Path, help="a starts-m*.npz file")
    args = parser.parse_args()
    t0, c0 = time.perf_counter(), time.process_time()
    data = _starts(args)
    energy, correct = data["final_energy"], data["correct"].astype(bool)
    violations = data["violations"]
    n, s = correct.shape
    relative = energy - np.median(energy, axis=1, keepdims=True)
    rank = np.argsort(np.argsort(energy, axis=1, kind="stable"), axis=1) + 1
    best = np.argmin(energy, axis=1)
    voted = int(correct[np.arange(n), best].sum())
    reachable = int(correct.any(axis=1).sum())
    within = [
        float(np.corrcoef(energy[i], violations[i])[0, 1])
        for i in range(n)
        if energy[i].std() > 0 and violations[i].std() > 0
    ]
    summary = {
        "source": data["source"],
        "blocks": int(data["blocks"]),
        "puzzles": n,
        "starts": s,
        "correct_starts": int(correct.sum()),
        "voted_solved": voted,
        "voted_interval": wilson_interval(voted, n),
        "any_correct": reachable,
        "any_interval": wilson_interval(reachable, n),
        "mean_rank_of_correct_starts": float(rank[correct].mean())
        if correct.any()
        else None,
        "rank_if_uninformative": (s + 1) / 2,
        "mean_energy_vs_violations_correlation": float(np.mean(within))
        if within
        else None,
        "fast": args.fast,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
    }
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "sudoku_energy.json").write_text(json.dumps(summary, indent=2) + "\n")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, violations.shape)
    ax = axes[0]
    ax.scatter(
        violations[~correct] + jitter[~correct],
        relative[~correct],
        s=3,
        alpha=0.3,
        color="tab:gray",
        label="wrong board",
    )
    ax.scatter(
        violations[correct] + jitter[correct],
        relative[correct],
        s=12,
        color="tab:red",
        label="correct board",
    )
    ax.set_xlabel("violated constraints of the start's board")
    ax.set_ylabel("final energy - puzzle's median")
    ax.legend(fontsize=8)
    ax.set_title("per start", fontsize=10)
    ax = axes[1]
    if correct.any():
        ax.hist(rank[correct], bins=np.arange(1, s + 2) - 0.5, color="tab:red")
    ax.axhline(correct.sum() / s, color="k", ls="--", lw=1, label="no information")
    ax.set_xlabel(f"energy rank among the puzzle's {s} starts (1 = lowest)")
    ax.set_ylabel("correct starts")
    ax.legend(fontsize=8)
    ax.set_title("where the correct starts rank", fontsize=10)
    low, high = summary["voted_interval"]
    fig.suptitle(
        f"Shipped AKOrN checkpoint, {n} hard puzzles x {s} starts, "
        f"T_eval = {summary['blocks']}: energy vote {100 * voted / n:.1f}% "
        f"[{100 * low:.1f}, {100 * high:.1f}], some start correct "
        f"{100 * reachable / n:.1f}%",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(FIGURES / "sudoku_energy.png", dpi=120)
    print(f"wrote {FIGURES / 'sudoku_energy.png'} in {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
