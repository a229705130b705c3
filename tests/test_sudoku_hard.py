"""The hard Sudoku set, minimality, violated units and the evaluation helpers
(`hopkur.experiments.sudoku_eval`)."""

import statistics
from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from hopkur.data import sudoku
from hopkur.data.sudoku import (
    constraint_violations,
    count_solutions,
    hard_set,
    is_minimal,
    parse_puzzle,
    sudoku_dataset,
    violated_units,
)
from hopkur.experiments.sudoku_eval import (
    checked_scores,
    describe_faults,
    run_starts,
    score_starts,
    solve_with_restarts,
    voting_curve,
    wilson_interval,
)
from hopkur.experiments.sudoku_model import SudokuAKOrN


# Widely circulated "hardest" puzzles (see docs/cli/sudoku.md): the first 17-given
# puzzle of Gordon Royle's collection and Arto Inkala's 2012 21-given puzzle.
ROYLE_17 = (
    "000000010400000000020000000000050407008000300001090000300400200050100000000806000"
)
INKALA_21 = (
    "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4.."
)


@pytest.mark.parametrize("text, givens", [(ROYLE_17, 17), (INKALA_21, 21)])
def test_famous_puzzles_are_unique_and_minimal(text, givens):
    puzzle = parse_puzzle(text)
    assert int(np.count_nonzero(puzzle)) == givens
    assert count_solutions(puzzle) == 1
    assert is_minimal(puzzle)


def test_hard_set_properties(tmp_path):
    puzzles, solutions = hard_set(4, cache_dir=tmp_path)
    givens = np.count_nonzero(puzzles, axis=1)
    assert givens.min() >= 17 and givens.max() <= 30
    assert np.all(sudoku.is_valid_solution(solutions, puzzles))
    rng = np.random.default_rng(0)
    for puzzle, solution in zip(puzzles, solutions):
        assert is_minimal(puzzle)
        # Removing any given loses uniqueness, adding a digit loses minimality.
        cell = rng.choice(np.flatnonzero(puzzle))
        fewer = puzzle.copy()
        fewer[cell] = 0
        assert count_solutions(fewer) == 2 and not is_minimal(fewer)
        blank = rng.choice(np.flatnonzero(puzzle == 0))
        more = puzzle.copy()
        more[blank] = solution[blank]
        assert count_solutions(more) == 1 and not is_minimal(more)
    # Deterministic in the seed, cached under a name carrying the version keys, and
    # a smaller set is a prefix of a larger one.
    (path,) = tmp_path.glob("sudoku-hard-n4-seed0-*.npz")
    assert f"v{sudoku._FORMAT_VERSION}h{sudoku._HARD_VERSION}" in path.name
    again = sudoku_dataset("hard", 2, seed=0, cache=False)
    assert np.array_equal(again[0], puzzles[:2])
    other = sudoku_dataset("hard", 2, seed=1, cache=False)
    assert not np.array_equal(other[0], puzzles[:2])


@pytest.mark.parametrize("seed", range(3))
def test_violated_units_agree_with_constraint_violations(seed):
    rng = np.random.default_rng(seed)
    board = sudoku.generate_solution(rng)
    assert violated_units(board) == []
    broken = board.copy()
    cells = rng.choice(81, size=3, replace=False)
    broken[cells] = rng.integers(1, 10, size=3)
    units = violated_units(broken)
    assert bool(units) == (constraint_violations(broken) > 0)
    extra = 0
    for kind, index, digits in units:
        grid = broken.reshape(9, 9)
        values = {
            "row": grid[index - 1],
            "column": grid[:, index - 1],
            "box": grid[
                3 * ((index - 1) // 3) : 3 * ((index - 1) // 3) + 3,
                3 * ((index - 1) % 3) : 3 * ((index - 1) % 3) + 3,
            ].ravel(),
        }[kind]
        counts = np.bincount(values, minlength=10)
        assert digits == [d for d in range(1, 10) if counts[d] > 1]
        extra += sum(int(counts[d]) - 1 for d in digits)
    # Every repeated digit is listed: the extra copies are the violations.
    assert extra == constraint_violations(broken)


@pytest.mark.parametrize("n", [1, 7, 50, 500])
def test_wilson_interval(n):
    z = statistics.NormalDist().inv_cdf(0.975)
    for s in sorted({0, 1, n // 3, n - 1, n}):
        low, high = wilson_interval(s, n)
        p = s / n
        assert 0 <= low <= p <= high <= 1
        # Mirror symmetry, and the ends solve the score equation
        # |p - q| = z sqrt(q (1 - q) / n).
        m_low, m_high = wilson_interval(n - s, n)
        assert np.isclose(low, 1 - m_high) and np.isclose(high, 1 - m_low)
        for q in (low, high):
            if 0 < q < 1:
                assert np.isclose(abs(p - q), z * np.sqrt(q * (1 - q) / n))
        # A higher confidence gives a wider interval.
        wide = wilson_interval(s, n, 0.99)
        assert wide[0] <= low and wide[1] >= high
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(n + 1, n)


def test_run_starts_are_nested_and_votes_consistent():
    model = SudokuAKOrN(8, 4, steps=1, blocks=2, coupling="attention", key=jr.key(0))
    puzzles, solutions = sudoku_dataset("test", 3, seed=0, cache=False)
    key = jr.key(5)
    # One compiled shape (2 puzzles x 2 starts) for every call, padded differently.
    many = run_starts(model, puzzles, key=key, starts=4, batch=2, start_batch=2)
    few = run_starts(model, puzzles[:2], key=key, starts=2, batch=2, start_batch=2)
    tail = run_starts(
        model, puzzles, key=key, starts=2, first_start=2, batch=2, start_batch=2
    )
    for name in ("boards", "final_energy", "summed_energy"):
        assert np.allclose(many[name][:2, :2], few[name], rtol=1e-5, atol=1e-5)
        assert np.allclose(many[name][:, 2:], tail[name], rtol=1e-5, atol=1e-5)
    # Starts differ from each other.
    assert not np.allclose(many["final_energy"][:, 0], many["final_energy"][:, 1])
    # The final energy is the model's own; the summed one sums every step.
    logits, energies = model.trace(
        jnp.asarray(puzzles[1], jnp.int32),
        key=jr.fold_in(jr.fold_in(key, 3), 1),
    )
    assert np.isclose(many["final_energy"][1, 3], energies[-1, -1], rtol=1e-5)
    assert np.isclose(many["summed_energy"][1, 3], energies[:, 1:].sum(), rtol=1e-5)
    givens = np.broadcast_to(puzzles[:, None] > 0, many["boards"].shape)
    assert np.array_equal(
        many["boards"][givens], np.broadcast_to(puzzles[:, None], givens.shape)[givens]
    )
    del logits
    correct, violations, wrong = score_starts(many["boards"], puzzles, solutions)
    assert np.array_equal(correct, wrong == 0)
    assert np.all(violations[correct] == 0)


def test_solve_with_restarts_rounds_and_failure():
    # An untrained model fails: the rounds (2 + 2 + 1 starts) continue the numbering of
    # the starts, and the answer is the lowest-energy board of all of them.
    model = SudokuAKOrN(8, 4, steps=1, blocks=1, coupling="attention", key=jr.key(0))
    puzzle = parse_puzzle(ROYLE_17)
    key = jr.key(2)
    found = solve_with_restarts(
        model, puzzle, key=key, votes=2, max_starts=5, time_limit=1e6
    )
    every = run_starts(model, puzzle[None], key=key, starts=5)
    assert not found["solved"] and found["starts"] == 5
    best = int(np.argmin(every["final_energy"][0]))
    assert found["start"] == best
    assert np.array_equal(found["board"], every["boards"][0, best])
    assert np.isclose(found["energy"], every["final_energy"][0, best], rtol=1e-5)
    # No time: one round only.
    once = solve_with_restarts(
        model, puzzle, key=key, votes=2, max_starts=5, time_limit=0.0
    )
    assert once["starts"] == 2
    lines = describe_faults(found["board"], puzzle)
    assert lines[-1].startswith("  givens changed: none")
    assert any("with a repeated digit" in line for line in lines)
    with pytest.raises(ValueError, match="votes >= 1"):
        solve_with_restarts(
            model, puzzle, key=key, votes=0, max_starts=5, time_limit=1.0
        )


@pytest.mark.parametrize("seed", range(3))
def test_voting_curve(seed):
    rng = np.random.default_rng(seed)
    energies = rng.normal(size=(40, 16))
    correct = rng.random((40, 16)) < 0.2
    rows = voting_curve(energies, correct, [1, 4, 16])
    assert rows[0]["solved"] == int(correct[:, 0].sum())
    reach = [r["any_correct"] for r in rows]
    assert reach == sorted(reach)
    for r in rows:
        assert r["solved"] <= r["any_correct"]
        assert r["low"] <= r["board_accuracy"] <= r["high"]
    # If the correct starts have the lowest energies, voting reaches "any correct".
    ranked = voting_curve(np.where(correct, -1.0, 1.0), correct, [1, 4, 16])
    assert [r["solved"] for r in ranked] == reach
    with pytest.raises(ValueError, match="votes"):
        voting_curve(energies, correct, [17])


@pytest.mark.parametrize("seed", range(3))
def test_checked_scores_rank_by_violations_then_energy(seed):
    rng = np.random.default_rng(seed)
    violations = rng.integers(0, 4, size=(30, 12))
    energies = rng.normal(size=(30, 12))
    scores = checked_scores(violations, energies)
    for k in (1, 5, 12):
        best = np.argmin(scores[:, :k], axis=1)
        for i, j in enumerate(best):
            v, e = violations[i, :k], energies[i, :k]
            fewest = np.flatnonzero(v == v.min())
            # The fewest violations win; among them, the lowest energy.
            assert j == fewest[np.argmin(e[fewest])]
    # With correct boards the only ones without violations, voting by the check
    # finds a correct start whenever one exists.
    correct = violations == 0
    rows = voting_curve(scores, correct, [1, 4, 12])
    assert all(r["solved"] == r["any_correct"] for r in rows)
    with pytest.raises(ValueError, match="same shape"):
        checked_scores(violations[:, :3], energies)


@pytest.mark.slow  # three Python processes compiling the model (about a minute)
def test_hard_eval_script_workers_share_the_starts(tmp_path):
    # Two worker processes, each a share of the starts, give one process's table.
    import json
    import subprocess
    import sys

    import equinox as eqx

    from hopkur.experiments import sudoku_run

    folder = tmp_path / "run"
    folder.mkdir()
    config = {**sudoku_run.DEFAULTS, "channels": 8, "blocks": 1, "steps": 1, "heads": 2}
    (folder / "config.json").write_text(json.dumps(config))
    eqx.tree_serialise_leaves(
        str(folder / "checkpoint.eqx"), sudoku_run.build_model(config, key=jr.key(0))
    )
    script = Path(__file__).parents[1] / "scripts" / "sudoku_hard_eval.py"
    tables = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        subprocess.run(
            [
                sys.executable,
                str(script),
                "--checkpoint",
                str(folder),
                "--split",
                "test",
                "--n",
                "2",
                "--votes",
                "1,3",
                "--multipliers",
                "1",
                "--batch",
                "2",
                "--quiet",
                "--workers",
                str(workers),
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        tables[workers] = np.load(out / "starts-m1.npz")
    for name in ("final_energy", "summed_energy", "violations", "wrong_cells"):
        assert tables[1][name].shape == (2, 3)
        assert np.allclose(tables[1][name], tables[2][name], rtol=1e-5, atol=1e-5)
