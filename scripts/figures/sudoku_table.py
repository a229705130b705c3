"""AKOrN Sudoku: test-time extension and energy voting with the shipped checkpoint.

Evaluates the small AKOrN checkpoint that ships with hopkur (`hopkur sudoku solve` uses
it) on locally generated puzzles: in distribution (~36 givens) and the harder minimal
puzzles (~24 givens), for T_eval in {T_train, 4 T_train} iterations and K in {1, 16}
random starts ranked by energy. Draws the cell and board accuracies as a table-like
heat map and writes the numbers to `docs/figures/sudoku_table.json`.

    python scripts/figures/sudoku_table.py           # 50 + 20 puzzles, ~3 minutes
    python scripts/figures/sudoku_table.py --fast    # 10 + 5 puzzles
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

from hopkur.data.sudoku import sudoku_dataset
from hopkur.experiments.sudoku import evaluate
from hopkur.experiments.sudoku_run import load_shipped_model


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a few puzzles only")
    args = parser.parse_args()
    sizes = {"test": 10, "hard": 5} if args.fast else {"test": 50, "hard": 20}

    t0 = time.perf_counter()
    model, config = load_shipped_model()
    t_train = int(config["blocks"])
    rows = []
    for split, n in sizes.items():
        puzzles, solutions = sudoku_dataset(split, n, seed=0)
        for multiplier in (1, 4):
            for votes in (1, 16):
                metrics = evaluate(
                    model,
                    puzzles,
                    solutions,
                    key=jr.key(0),
                    blocks=multiplier * t_train,
                    votes=votes,
                    batch=n,
                )
                row = {
                    "split": split,
                    "n": n,
                    "blocks": multiplier * t_train,
                    "votes": votes,
                    **metrics,
                }
                print(
                    f"{split:5s} T_eval = {row['blocks']:3d} K = {votes:2d}: cells "
                    f"{100 * row['cell_accuracy']:.1f} %, boards "
                    f"{100 * row['board_accuracy']:.1f} %"
                )
                rows.append(row)

    FIGURES.mkdir(parents=True, exist_ok=True)
    summary = {
        "config": config,
        "rows": rows,
        "fast": args.fast,
        "seconds": time.perf_counter() - t0,
    }
    (FIGURES / "sudoku_table.json").write_text(json.dumps(summary, indent=2) + "\n")

    columns = [(m * t_train, k) for m in (1, 4) for k in (1, 16)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
    for ax, key, title in (
        (axes[0], "cell_accuracy", "blank cells right (%)"),
        (axes[1], "board_accuracy", "boards solved (%)"),
    ):
        table = np.array(
            [
                [
                    100
                    * next(
                        r[key]
                        for r in rows
                        if r["split"] == split and (r["blocks"], r["votes"]) == col
                    )
                    for col in columns
                ]
                for split in sizes
            ]
        )
        ax.imshow(table, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        for (i, j), value in np.ndenumerate(table):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="w")
        ax.set_xticks(
            range(len(columns)), [f"T={t}\nK={k}" for t, k in columns], fontsize=8
        )
        ax.set_yticks(
            range(len(sizes)),
            [f"{s} ({n})" for s, n in sizes.items()],
            fontsize=8,
        )
        ax.set_title(title, fontsize=10)
    fig.suptitle(
        "Shipped AKOrN Sudoku checkpoint: test-time iterations T and energy-voted "
        f"starts K (T_train = {t_train})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(FIGURES / "sudoku_table.png", dpi=120)
    print(f"wrote {FIGURES / 'sudoku_table.png'} in {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
