"""AKOrN Sudoku on the hard set: test-time iterations and energy voting, with intervals.

Runs a checkpoint (default: the one shipped with hopkur) from `max(--votes)` random
starts per puzzle, for each T_eval = m * T_train with m in `--multipliers`, on the first
`--n` puzzles of a split (default: the hard set, 500 minimal puzzles). The starts are
nested (start j of puzzle i does not depend on how many starts are run), so the K = 16
vote uses the first 16 of the K = 256 starts and the gain curve compares the same
puzzles and the same starts. Votes rank starts by the final energy and by the energy
summed over the steps, and (the reference, what `hopkur sudoku solve` does) by the
number of violated Sudoku constraints, ties broken by the final energy ("checked").
Every board accuracy comes with a Wilson 95% interval; the
"any correct" column is the share of puzzles with a correct board among the first K
starts (what a perfect ranking would give).

Writes to `--out`: `eval.json` (every row, settings, timings), `eval.md` (the table)
and, per multiplier, `starts-m{m}.npz` (per puzzle and start: `final_energy`,
`summed_energy`, `correct`, `violations`, `wrong_cells`; the data of
`scripts/figures/sudoku_energy.py`).

    python scripts/sudoku_hard_eval.py --votes 1,16 --multipliers 4       # small
    python scripts/sudoku_hard_eval.py --votes 1,16,64,256 --multipliers 1,4,8

`--workers W` runs the starts in W processes (W shares of the starts, one per core;
the results are those of one process, since the starts are nested).
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import time
from pathlib import Path

import jax.random as jr
import numpy as np

from hopkur.data.sudoku import sudoku_dataset
from hopkur.experiments import sudoku_run
from hopkur.experiments.sudoku_eval import (
    checked_scores,
    ENERGIES,
    run_starts,
    score_starts,
    voting_curve,
)


def _ints(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    return values


def _load(checkpoint: str | None):
    if checkpoint is None:
        return sudoku_run.load_shipped_model()
    return sudoku_run.load_model(checkpoint)


def _run_share(checkpoint, puzzles, seed, first_start, starts, blocks, steps, batch):
    # One worker's share of the starts (a separate process: loads the model itself).
    model, _ = _load(checkpoint)
    return run_starts(
        model,
        puzzles,
        key=jr.key(seed),
        starts=starts,
        first_start=first_start,
        blocks=blocks,
        steps=steps,
        batch=batch,
    )


def _run_starts_in(workers: int, args, model, puzzles, starts, blocks, steps):
    """`run_starts` over `workers` processes, each a share of the starts, joined."""
    if workers == 1:
        return run_starts(
            model,
            puzzles,
            key=jr.key(args.seed),
            starts=starts,
            blocks=blocks,
            steps=steps,
            batch=args.batch,
            progress=not args.quiet,
        )
    bounds = np.linspace(0, starts, workers + 1).round().astype(int)
    shares = [(a, b - a) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        len(shares), mp_context=context
    ) as pool:
        futures = [
            pool.submit(
                _run_share,
                args.checkpoint,
                puzzles,
                args.seed,
                int(first),
                int(count),
                blocks,
                steps,
                args.batch,
            )
            for first, count in shares
        ]
        parts = [f.result() for f in futures]
    return {name: np.concatenate([p[name] for p in parts], axis=1) for name in parts[0]}


def markdown(rows: list[dict], split: str, n: int) -> str:
    """The table of `rows` (as in `eval.json`) in markdown."""
    lines = [
        f"Split `{split}`, {n} puzzles; 95% Wilson intervals in brackets.",
        "",
        "| iterations x steps | energy | K | boards solved | any start correct | "
        "blank cells |",
        "|---:|:---|---:|:---|:---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['blocks']} x {r['steps']} ({r['multiplier']}x) | {r['energy']} | "
            f"{r['votes']} | "
            f"{100 * r['board_accuracy']:.1f}% [{100 * r['low']:.1f}, "
            f"{100 * r['high']:.1f}] ({r['solved']}/{r['n']}) | "
            f"{100 * r['any_correct'] / r['n']:.1f}% [{100 * r['any_low']:.1f}, "
            f"{100 * r['any_high']:.1f}] | {100 * r['cell_accuracy']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(
        prog="sudoku_hard_eval.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", help="run folder (default: shipped model)")
    parser.add_argument("--split", default="hard", choices=("hard", "test"))
    parser.add_argument("--n", type=int, default=500, help="puzzles (first n)")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the starts")
    parser.add_argument("--votes", type=_ints, default=[1, 16, 64, 256])
    parser.add_argument(
        "--multipliers", type=_ints, default=[4], help="T_eval / T_train"
    )
    parser.add_argument(
        "--extend",
        choices=("blocks", "steps"),
        default="blocks",
        help="what the multiplier lengthens: the recurrent iterations, or the "
        "Kuramoto steps of each (for one-iteration models, as AKOrN's T_eval)",
    )
    parser.add_argument("--batch", type=int, default=50, help="puzzles per call")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes sharing the starts"
    )
    parser.add_argument("--out", default="runs/sudoku-hard-eval")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1; got {args.n}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1; got {args.workers}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    model, config = _load(args.checkpoint)
    puzzles, solutions = sudoku_dataset(args.split, args.n, seed=args.data_seed)
    blanks = np.maximum(1, np.sum(puzzles == 0, axis=1))
    starts = max(args.votes)
    rows, timings = [], {}
    for m in args.multipliers:
        blocks, steps = int(config["blocks"]), int(config["steps"])
        if args.extend == "blocks":
            blocks *= m
        else:
            steps *= m
        t1 = time.perf_counter()
        result = _run_starts_in(
            args.workers, args, model, puzzles, starts, blocks, steps
        )
        timings[str(m)] = time.perf_counter() - t1
        correct, violations, wrong = score_starts(result["boards"], puzzles, solutions)
        blank_right = 1 - wrong / blanks[:, None]
        np.savez_compressed(
            out / f"starts-m{m}.npz",
            final_energy=result["final_energy"],
            summed_energy=result["summed_energy"],
            correct=correct,
            violations=violations,
            wrong_cells=wrong,
            blocks=blocks,
            steps=steps,
        )
        rankings = {energy: result[name] for energy, name in ENERGIES.items()}
        # The reference: rank by the checkable constraints, then by final energy.
        rankings["checked"] = checked_scores(violations, result["final_energy"])
        for energy, scores in rankings.items():
            curve = voting_curve(scores, correct, args.votes, blank_right=blank_right)
            for row in curve:
                rows.append(
                    {
                        "blocks": blocks,
                        "steps": steps,
                        "multiplier": m,
                        "energy": energy,
                        **row,
                    }
                )
                if not args.quiet:
                    print(
                        f"T_eval {blocks:4d} {energy:6s} K {row['votes']:4d}: "
                        f"{100 * row['board_accuracy']:.1f}% "
                        f"[{100 * row['low']:.1f}, {100 * row['high']:.1f}]",
                        file=sys.stderr,
                    )
    summary = {
        "split": args.split,
        "n": args.n,
        "data_seed": args.data_seed,
        "seed": args.seed,
        "votes": args.votes,
        "multipliers": args.multipliers,
        "extend": args.extend,
        "workers": args.workers,
        "checkpoint": args.checkpoint or "shipped",
        "config": config,
        "rows": rows,
        "seconds": {"total": time.perf_counter() - t0, "per_multiplier": timings},
        "cpu_seconds": time.process_time() - c0,
    }
    (out / "eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "eval.md").write_text(markdown(rows, args.split, args.n))
    print(markdown(rows, args.split, args.n), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
