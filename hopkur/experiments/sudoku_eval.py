"""Evaluating AKOrN Sudoku solvers: many random starts, energy voting, intervals.

[`hopkur.experiments.sudoku_eval.run_starts`][] runs a model from `starts` random
initial oscillator states per puzzle and keeps, for every start, the board, its final
energy and its energy summed over the steps. The random start `j` of puzzle `i` is
drawn from `fold_in(fold_in(key, j), i)`: it does not depend on the batching, on the
number of starts or on the other puzzles, so the first 16 starts of a 256-start run are
the starts of a 16-start run. [`hopkur.experiments.sudoku_eval.voting_curve`][] then
votes among the first `K` starts for several `K` (nested: the information grows with
`K`), by either energy, and reports every board accuracy with a Wilson 95% interval
([`hopkur.experiments.sudoku_eval.wilson_interval`][]).
[`hopkur.experiments.sudoku_eval.solve_with_restarts`][] solves one puzzle in rounds of
voted starts until a board is a valid Sudoku (`hopkur sudoku solve`).
"""

import math
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import ArrayLike, Bool, Float, Int, Int8

from ..data.sudoku import constraint_violations, is_valid_solution, violated_units


# The energies voting can rank starts by (the keys of `run_starts`' result).
ENERGIES = {"final": "final_energy", "summed": "summed_energy"}


def checked_scores(violations: ArrayLike, energies: ArrayLike) -> np.ndarray:
    """Scores that rank a puzzle's starts by their number of violated Sudoku
    constraints, ties broken by energy (lower wins in both).

    A board with no violated constraint that keeps the givens is a solution, which
    anyone can check; ranking by the check is what `hopkur sudoku solve` does, and the
    reference that energy voting is measured against.

    **Arguments:**

    - `violations`: `(n, s)` violated constraints per start (see
        [`hopkur.experiments.sudoku_eval.score_starts`][]).
    - `energies`: `(n, s)` energies.

    **Returns:**

    `(n, s)` scores for [`hopkur.experiments.sudoku_eval.voting_curve`][]: the
    violations plus the start's energy rank within its puzzle, scaled into `[0, 1)`.
    The ranks are over all `s` starts, so they order every prefix of starts as the
    energies do.
    """
    violations = np.asarray(violations, dtype=np.float64)
    energies = np.asarray(energies)
    if violations.shape != energies.shape or violations.ndim != 2:
        raise ValueError(
            "`checked_scores(violations, energies)` needs two arrays of the same "
            f"shape (n, s); got {violations.shape} and {energies.shape}."
        )
    ranks = np.argsort(np.argsort(energies, axis=1, kind="stable"), axis=1)
    return violations + ranks / energies.shape[1]


def wilson_interval(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float, float]:
    r"""The Wilson score interval of a binomial proportion.

    With $\hat p = s / n$ and $z$ the standard normal quantile of
    $(1 + \text{confidence}) / 2$, the interval is
    $\big(\hat p + \tfrac{z^2}{2n} \pm z \sqrt{\hat p (1 - \hat p)/n + z^2/(4n^2)}\big)
    / (1 + z^2/n)$. Unlike the normal approximation it stays inside $[0, 1]$ and is
    not empty at $s = 0$ or $s = n$.

    **Arguments:**

    - `successes`: the number of successes $s$, in `0..n`.
    - `n`: the number of trials (positive).
    - `confidence`: the coverage, in `(0, 1)`.

    **Returns:**

    `(low, high)`, with `0 <= low <= s / n <= high <= 1`.
    """
    if n < 1:
        raise ValueError(f"`wilson_interval(n=...)` must be >= 1; got {n}.")
    if not 0 <= successes <= n:
        raise ValueError(
            f"`wilson_interval(successes=...)` must be in 0..{n}; got {successes}."
        )
    if not 0 < confidence < 1:
        raise ValueError(
            f"`wilson_interval(confidence=...)` must be in (0, 1); got {confidence}."
        )
    z = statistics.NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    low, high = (centre - spread) / scale, (centre + spread) / scale
    # Exact ends at s = 0 and s = n (rounding would leave 1e-17 off).
    low = 0.0 if successes == 0 else max(0.0, min(low, p))
    high = 1.0 if successes == n else min(1.0, max(high, p))
    return low, high


def _trace(model, puzzle, key, blocks, steps):
    """Logits of the last iteration, the final energy and the summed energy."""
    if hasattr(model, "trace"):
        logits, energies = model.trace(puzzle, key=key, blocks=blocks, steps=steps)
        # Energies of the states after each step (x^(1)..x^(T)) of every iteration.
        return logits[-1], energies[-1, -1], jnp.sum(energies[:, 1:])
    logits, energy = model(puzzle, key=key, blocks=blocks, steps=steps)
    return logits[-1], energy, energy


@eqx.filter_jit
def _starts_batch(model, puzzles, indices, start_ids, key, blocks, steps):
    # puzzles (p, 81), indices (p,), start_ids (s,) -> boards (s, p, 81), energies.
    def one(puzzle, index, start):
        k = jr.fold_in(jr.fold_in(key, start), index)
        logits, final, summed = _trace(model, puzzle, k, blocks, steps)
        digits = jnp.argmax(logits, axis=-1).astype(puzzle.dtype) + 1
        return jnp.where(puzzle > 0, puzzle, digits), final, summed

    per_start = jax.vmap(one, in_axes=(0, 0, None))
    return jax.vmap(per_start, in_axes=(None, None, 0))(puzzles, indices, start_ids)


def run_starts(
    model,
    puzzles: Int[ArrayLike, "n 81"],
    *,
    key,
    starts: int,
    first_start: int = 0,
    blocks: int | None = None,
    steps: int | None = None,
    batch: int = 50,
    start_batch: int = 16,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Runs a Sudoku model from `starts` random initial states per puzzle.

    **Arguments:**

    - `model`: a [`hopkur.experiments.sudoku_model.SudokuAKOrN`][] (or a
        [`hopkur.experiments.sudoku_model.SudokuTransformer`][], whose energies are 0).
    - `puzzles`: integer array `(n, 81)`, `0` for blanks.
    - `key`: a `jax.random.key`; start `j` of puzzle `i` uses
        `fold_in(fold_in(key, j), i)`. (Keyword only argument.)
    - `starts`: random starts per puzzle. (Keyword only argument.)
    - `first_start`: the index `j` of the first start (to continue a run with more
        starts). (Keyword only argument.)
    - `blocks`, `steps`: iterations and Kuramoto steps per iteration (default: the
        model's). (Keyword only arguments.)
    - `batch`, `start_batch`: puzzles and starts per compiled call (memory, not
        results). (Keyword only arguments.)
    - `progress`: show a progress bar. (Keyword only argument.)

    **Returns:**

    A dictionary of numpy arrays: `"boards"` `(n, starts, 81)` (`int8`, givens
    copied), `"final_energy"` and `"summed_energy"` `(n, starts)`: the energy of the
    final state, and the sum over all iterations of the energies of the states after
    each Kuramoto step (each under its iteration's stimulus).
    """
    if starts < 1:
        raise ValueError(f"`run_starts(starts=...)` must be >= 1; got {starts}.")
    if first_start < 0:
        raise ValueError(
            f"`run_starts(first_start=...)` must be >= 0; got {first_start}."
        )
    puzzles = np.asarray(puzzles).reshape(-1, 81).astype(np.int32)
    n = puzzles.shape[0]
    batch = max(1, min(batch, n))
    start_batch = max(1, min(start_batch, starts))
    boards = np.zeros((n, starts, 81), dtype=np.int8)
    final = np.zeros((n, starts), dtype=np.float64)
    summed = np.zeros((n, starts), dtype=np.float64)
    chunks = [
        (p0, s0) for p0 in range(0, n, batch) for s0 in range(0, starts, start_batch)
    ]
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="sudoku starts", unit="chunk")
    for p0, s0 in chunks:
        # Pad to fixed shapes, so that one compilation serves every chunk.
        index = np.minimum(np.arange(p0, p0 + batch), n - 1)
        start_ids = first_start + np.arange(s0, s0 + start_batch)
        b, e, s = _starts_batch(
            model,
            jnp.asarray(puzzles[index]),
            jnp.asarray(index),
            jnp.asarray(start_ids),
            key,
            blocks,
            steps,
        )
        p1, s1 = min(p0 + batch, n), min(s0 + start_batch, starts)
        b = np.asarray(b).transpose(1, 0, 2)
        boards[p0:p1, s0:s1] = b[: p1 - p0, : s1 - s0]
        final[p0:p1, s0:s1] = np.asarray(e).T[: p1 - p0, : s1 - s0]
        summed[p0:p1, s0:s1] = np.asarray(s).T[: p1 - p0, : s1 - s0]
    return {"boards": boards, "final_energy": final, "summed_energy": summed}


def score_starts(
    boards: Int8[np.ndarray, "n s 81"],
    puzzles: Int[ArrayLike, "n 81"],
    solutions: Int[ArrayLike, "n 81"],
) -> tuple[Bool[np.ndarray, "n s"], Int[np.ndarray, "n s"], Int[np.ndarray, "n s"]]:
    """Scores every start's board.

    **Arguments:**

    - `boards`: `(n, s, 81)` boards, as [`hopkur.experiments.sudoku_eval.run_starts`][]
        returns.
    - `puzzles`, `solutions`: `(n, 81)`.

    **Returns:**

    `(correct, violations, wrong_cells)`, each `(n, s)`: whether the board is the
    solution, its number of broken Sudoku constraints (see
    [`hopkur.data.sudoku.constraint_violations`][]) and its number of wrong cells.
    """
    boards = np.asarray(boards)
    n, s = boards.shape[:2]
    solutions = np.asarray(solutions)[:, None, :]
    wrong = np.sum(boards != solutions, axis=-1)
    violations = np.asarray(constraint_violations(boards.reshape(n * s, 81)))
    return wrong == 0, violations.reshape(n, s), wrong


def voting_curve(
    energies: Float[ArrayLike, "n s"],
    correct: Bool[ArrayLike, "n s"],
    votes: list[int] | tuple[int, ...],
    *,
    blank_right: Float[ArrayLike, "n s"] | None = None,
    confidence: float = 0.95,
) -> list[dict[str, float | int]]:
    """Energy voting among the first `K` starts, for each `K` in `votes`.

    **Arguments:**

    - `energies`: `(n, s)` energies (lower wins).
    - `correct`: `(n, s)` whether each start's board is the solution.
    - `votes`: the values of `K` (each in `1..s`).
    - `blank_right`: optional `(n, s)` fraction of blanks right per start, to report
        the cell accuracy of the voted boards. (Keyword only argument.)
    - `confidence`: of the intervals. (Keyword only argument.)

    **Returns:**

    One dictionary per `K`: `votes`, `n`, `solved` (boards whose lowest-energy start
    is correct), `board_accuracy` and its interval `low`, `high`; `any_correct` (the
    puzzles with a correct start among the first `K`: what a perfect ranking would
    reach) with its interval `any_low`, `any_high`; and `cell_accuracy` if
    `blank_right` is given.
    """
    energies, correct = np.asarray(energies), np.asarray(correct, dtype=bool)
    n, s = correct.shape
    rows: list[dict[str, float | int]] = []
    for k in votes:
        if not 1 <= k <= s:
            raise ValueError(f"`voting_curve(votes=...)` must be in 1..{s}; got {k}.")
        best = np.argmin(energies[:, :k], axis=1)
        solved = int(correct[np.arange(n), best].sum())
        reachable = int(correct[:, :k].any(axis=1).sum())
        low, high = wilson_interval(solved, n, confidence)
        any_low, any_high = wilson_interval(reachable, n, confidence)
        row: dict[str, float | int] = {
            "votes": int(k),
            "n": int(n),
            "solved": solved,
            "board_accuracy": solved / n,
            "low": low,
            "high": high,
            "any_correct": reachable,
            "any_low": any_low,
            "any_high": any_high,
        }
        if blank_right is not None:
            cells = np.asarray(blank_right)[np.arange(n), best]
            row["cell_accuracy"] = float(np.mean(cells))
        rows.append(row)
    return rows


def solve_with_restarts(
    model,
    puzzle: Int[ArrayLike, "81"],
    *,
    key,
    votes: int,
    max_starts: int,
    time_limit: float,
    blocks: int | None = None,
) -> dict:
    """Solves one puzzle with the network in rounds of `votes` random starts (the
    starts of [`hopkur.experiments.sudoku_eval.run_starts`][], numbered on from round
    to round), until a start's board is a valid Sudoku agreeing with the givens (a check
    of the constraints, never the exact solver's answer), `max_starts` starts have run,
    or the next round would end after `time_limit` seconds (judged by the last round).

    **Arguments:**

    - `model`: a Sudoku model, as for `run_starts`.
    - `puzzle`: integer array `(81,)`, `0` for blanks.
    - `key`: a `jax.random.key`. (Keyword only argument.)
    - `votes`, `max_starts`, `time_limit`: starts per round, at most this many starts,
        and seconds. (Keyword only arguments.)
    - `blocks`: iterations (default: the model's). (Keyword only argument.)

    **Returns:**

    A dictionary: `"solved"` (whether `"board"` is a valid Sudoku), `"board"` (`int8`
    `(81,)`: the first valid board, else the lowest-energy board of all starts),
    `"energy"` (its final energy), `"start"` (its start index) and `"starts"` (how many
    starts ran).
    """
    if votes < 1 or max_starts < 1:
        raise ValueError(
            f"`solve_with_restarts` needs votes >= 1 and max_starts >= 1; got {votes} "
            f"and {max_starts}."
        )
    puzzle = np.asarray(puzzle).reshape(81)
    t0 = time.perf_counter()
    best = None  # (board, energy, start index) of the lowest-energy start so far
    done, last_round = 0, 0.0
    while done < max_starts:
        if done and time.perf_counter() - t0 + last_round > time_limit:
            break
        t_round = time.perf_counter()
        count = min(votes, max_starts - done)
        runs = run_starts(
            model, puzzle[None], key=key, starts=count, first_start=done, blocks=blocks
        )
        boards, energies = runs["boards"][0], runs["final_energy"][0]
        order = np.argsort(energies, kind="stable")
        if best is None or energies[order[0]] < best[1]:
            best = (boards[order[0]], float(energies[order[0]]), done + int(order[0]))
        valid = np.asarray(is_valid_solution(boards, puzzle))[order]
        done += count
        if valid.any():
            j = int(order[np.argmax(valid)])
            board, energy, start = boards[j], float(energies[j]), done - count + j
            return {
                "solved": True,
                "board": board,
                "energy": energy,
                "start": start,
                "starts": done,
            }
        last_round = time.perf_counter() - t_round
    assert best is not None
    board, energy, start = best
    return {
        "solved": False,
        "board": board,
        "energy": energy,
        "start": start,
        "starts": done,
    }


def describe_faults(
    board: Int[ArrayLike, "81"], puzzle: Int[ArrayLike, "81"]
) -> list[str]:
    """What is wrong with a board the network returned for `puzzle`, one line per kind
    of fault: rows, columns and boxes with a repeated digit (the digits in brackets),
    changed givens, cells left blank."""
    board, puzzle = np.asarray(board).reshape(81), np.asarray(puzzle).reshape(81)
    units = violated_units(board)
    lines = []
    for kind, plural in (("row", "rows"), ("column", "columns"), ("box", "boxes")):
        found = [(i, d) for k, i, d in units if k == kind]
        if found:
            listed = ", ".join(f"{i} ({'/'.join(map(str, d))})" for i, d in found)
            lines.append(f"  {plural} with a repeated digit: {listed}")
    changed = np.flatnonzero((puzzle > 0) & (board != puzzle))
    cells = ", ".join(
        f"r{c // 9 + 1}c{c % 9 + 1} {puzzle[c]}->{board[c]}" for c in changed
    )
    lines.append(f"  givens changed: {cells or 'none'}")
    blanks = int(np.sum(board == 0))
    if blanks:
        lines.append(f"  cells left blank: {blanks}")
    return lines
