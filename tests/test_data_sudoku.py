import time

import numpy as np
import pytest

import hopkur.data.sudoku as sudoku
from hopkur.data.sudoku import (
    augment,
    board_to_string,
    constraint_violations,
    count_solutions,
    default_cache_dir,
    format_grid,
    generate_solution,
    is_valid_solution,
    make_puzzle,
    parse_puzzle,
    solve_exact,
    sudoku_dataset,
)


# The newspaper-style example puzzle (30 givens) from the Wikipedia article "Sudoku".
CLASSIC = """
53..7....
6..195...
.98....6.
8...6...3
4..8.3..1
7...2...6
.6....28.
...419..5
....8..79
"""

# A 17-given puzzle, the minimum number for a unique solution.
SEVENTEEN = (
    "000000010400000000020000000000050407008000300001090000300400200050100000000806000"
)


def _assert_sudoku_rules(board, puzzle):
    """Checks every constraint directly, independently of `is_valid_solution`."""
    grid = np.asarray(board).reshape(9, 9)
    digits = set(range(1, 10))
    for k in range(9):
        assert set(grid[k, :].tolist()) == digits, f"row {k}"
        assert set(grid[:, k].tolist()) == digits, f"column {k}"
        r, c = 3 * (k // 3), 3 * (k % 3)
        assert set(grid[r : r + 3, c : c + 3].ravel().tolist()) == digits, f"box {k}"
    givens = np.asarray(puzzle) != 0
    np.testing.assert_array_equal(np.asarray(board)[givens], np.asarray(puzzle)[givens])


@pytest.fixture(scope="module")
def classic_solution():
    solution = solve_exact(parse_puzzle(CLASSIC))
    assert solution is not None
    return solution


# ------------------------------------------------------------------------------- text


def test_parse_formats():
    board = parse_puzzle(CLASSIC)
    assert board.shape == (81,) and board.dtype == np.int8
    assert (board != 0).sum() == 30
    assert board[0] == 5 and board[1] == 3 and board[2] == 0 and board[80] == 9
    # '.' and '0' are interchangeable; whitespace is ignored.
    zeros = CLASSIC.replace(".", "0")
    np.testing.assert_array_equal(parse_puzzle(zeros), board)
    np.testing.assert_array_equal(parse_puzzle("  ".join(zeros.split())), board)


def test_round_trips(classic_solution):
    for board in (parse_puzzle(CLASSIC), classic_solution, np.zeros(81, np.int8)):
        text = board_to_string(board)
        assert len(text) == 81 and set(text) <= set("0123456789")
        np.testing.assert_array_equal(parse_puzzle(text), board)
        grid = format_grid(board)
        lines = grid.splitlines()
        assert len(lines) == 11
        assert lines[3] == lines[7] == "------+-------+------"
        assert all(
            line.count("|") == 2 for i, line in enumerate(lines) if i not in (3, 7)
        )
        np.testing.assert_array_equal(parse_puzzle(grid), board)


@pytest.mark.parametrize(
    "text, match",
    [
        ("1" + "0" * 79, "expects 81 cells; got 80"),
        ("0" * 82, "expects 81 cells; got 82"),
        ("x" + "0" * 80, "got 'x' at cell 1"),
        ("0" * 40 + "a" + "0" * 40, "got 'a' at cell 41"),
        ("55" + "0" * 79, "digit 5 appears 2 times in row 1"),
        ("0" * 9 + "7" + "0" * 7 + "7" + "0" * 63, "digit 7 appears 2 times in row 2"),
        (
            "3" + "0" * 8 + "0" * 63 + "3" + "0" * 8,
            "digit 3 appears 2 times in column 1",
        ),
        ("0" * 60 + "9" + "0" * 10 + "9" + "0" * 9, "digit 9 appears 2 times in box 9"),
    ],
)
def test_parse_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_puzzle(text)


def test_parse_error_is_one_line():
    with pytest.raises(ValueError) as info:
        parse_puzzle("1" * 81)
    message = str(info.value)
    assert "\n" not in message and message.startswith("`parse_puzzle(text)`")


# ----------------------------------------------------------------------------- solver


def test_solve_classic():
    puzzle = parse_puzzle(CLASSIC)
    solution = solve_exact(puzzle)
    assert solution is not None and solution.dtype == np.int8
    _assert_sudoku_rules(solution, puzzle)
    assert is_valid_solution(solution, puzzle)
    assert count_solutions(puzzle) == 1
    # The input is not modified.
    np.testing.assert_array_equal(puzzle, parse_puzzle(CLASSIC))


def test_solve_seventeen_fast():
    puzzle = parse_puzzle(SEVENTEEN)
    start = time.perf_counter()
    solution = solve_exact(puzzle)
    count = count_solutions(puzzle, limit=2)
    elapsed = time.perf_counter() - start
    assert solution is not None
    _assert_sudoku_rules(solution, puzzle)
    assert count == 1
    assert elapsed < 1.0


def test_solve_pathological_fast():
    # Norvig's "hardest" puzzle: many solutions, and minutes for a naive search.
    puzzle = parse_puzzle(
        ".....6....59.....82....8....45........3........6..3.54...325..6.................."
    )
    start = time.perf_counter()
    assert count_solutions(puzzle, limit=2) == 2
    assert time.perf_counter() - start < 2.0


def test_count_multiple_solutions(classic_solution):
    # Removing too many givens: an empty board and the classic puzzle with its first
    # twelve givens blanked have several solutions.
    assert count_solutions(np.zeros(81, np.int8)) == 2
    assert count_solutions(np.zeros(81, np.int8), limit=5) == 5
    assert count_solutions(np.zeros(81, np.int8), limit=1) == 1
    sparse = parse_puzzle(CLASSIC)
    sparse[np.flatnonzero(sparse)[:12]] = 0
    assert count_solutions(sparse) == 2
    solution = solve_exact(sparse)
    assert solution is not None
    _assert_sudoku_rules(solution, sparse)


def test_count_deadly_rectangle():
    # A full grid with a rectangle a b / b a in two rows of one band and two columns
    # of different stacks: blanking the four cells leaves exactly two solutions.
    rng = np.random.default_rng(0)
    for _ in range(200):
        grid = generate_solution(rng).reshape(9, 9)
        for r1 in range(9):
            for r2 in range(r1 + 1, 3 * (r1 // 3) + 3):
                for c1 in range(9):
                    for c2 in range(c1 + 1, 9):
                        if c1 // 3 == c2 // 3:
                            continue
                        a, b = grid[r1, c1], grid[r1, c2]
                        if grid[r2, c1] == b and grid[r2, c2] == a:
                            board = grid.copy()
                            board[[r1, r1, r2, r2], [c1, c2, c1, c2]] = 0
                            assert count_solutions(board.ravel(), limit=10) == 2
                            return
    raise AssertionError("no rectangle found in 200 grids")


def test_count_contradictory(classic_solution):
    # Same digit twice in a row.
    board = parse_puzzle(CLASSIC)
    board[2] = 5
    assert count_solutions(board) == 0
    assert solve_exact(board) is None
    # Consistent givens but no solution: row 1 holds 1..8 and column 9 already a 9.
    board = np.zeros(81, np.int8)
    board[:8] = np.arange(1, 9)
    board[9 * 5 + 8] = 9
    assert count_solutions(board) == 0
    assert solve_exact(board) is None
    # A full valid grid has exactly one solution, itself.
    assert count_solutions(classic_solution) == 1
    np.testing.assert_array_equal(solve_exact(classic_solution), classic_solution)


def test_solver_bad_input():
    with pytest.raises((ValueError, TypeError)):
        count_solutions(np.zeros(80, np.int8))
    with pytest.raises(ValueError, match="values in 0..9"):
        count_solutions(np.full(81, 10, np.int8))
    with pytest.raises(ValueError, match="limit"):
        count_solutions(np.zeros(81, np.int8), limit=0)


# ----------------------------------------------------------------------------- checks


def test_constraint_violations(classic_solution):
    assert constraint_violations(classic_solution) == 0
    assert constraint_violations(classic_solution, count_blanks=True) == 0
    assert constraint_violations(np.zeros(81, np.int8)) == 0
    assert constraint_violations(np.zeros(81, np.int8), count_blanks=True) == 81
    puzzle = parse_puzzle(CLASSIC)
    assert constraint_violations(puzzle, count_blanks=True) == 81 - 30
    # Changing one cell duplicates a digit in its row, column and box.
    wrong = classic_solution.copy()
    wrong[40] = wrong[40] % 9 + 1
    assert constraint_violations(wrong) == 3
    # Three copies of a digit in one row count twice; nothing else conflicts.
    row = np.zeros(81, np.int8)
    row[[0, 4, 8]] = 6
    assert constraint_violations(row) == 2
    batch = np.stack([classic_solution, wrong, row, np.zeros(81, np.int8)])
    counts = constraint_violations(batch, count_blanks=True)
    np.testing.assert_array_equal(counts, [0, 3, 2 + 78, 81])


def test_is_valid_solution(classic_solution):
    puzzle = parse_puzzle(CLASSIC)
    assert is_valid_solution(classic_solution)
    assert is_valid_solution(classic_solution, puzzle)
    assert not is_valid_solution(puzzle)
    assert puzzle[2] == 0
    wrong_givens = puzzle.copy()
    wrong_givens[2] = classic_solution[2] % 9 + 1
    assert not is_valid_solution(classic_solution, wrong_givens)
    wrong = classic_solution.copy()
    wrong[40] = wrong[40] % 9 + 1
    blank = classic_solution.copy()
    blank[0] = 0
    batch = np.stack([classic_solution, wrong, blank])
    np.testing.assert_array_equal(is_valid_solution(batch), [True, False, False])
    np.testing.assert_array_equal(
        is_valid_solution(batch, puzzle), [True, False, False]
    )
    relabelled = (classic_solution % 9 + 1).astype(np.int8)
    assert is_valid_solution(relabelled)
    assert not is_valid_solution(relabelled, puzzle)


# ------------------------------------------------------------------------- generation


@pytest.mark.parametrize("seed", range(10))
def test_generate_solution(seed):
    solution = generate_solution(np.random.default_rng(seed))
    assert solution.shape == (81,) and solution.dtype == np.int8
    _assert_sudoku_rules(solution, np.zeros(81, np.int8))
    again = generate_solution(np.random.default_rng(seed))
    np.testing.assert_array_equal(solution, again)
    other = generate_solution(np.random.default_rng(seed + 100))
    assert not np.array_equal(solution, other)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target", [33, 36, 40])
def test_make_puzzle(seed, target):
    rng = np.random.default_rng(seed)
    solution = generate_solution(rng)
    puzzle = make_puzzle(solution, rng, target_givens=target)
    assert puzzle.dtype == np.int8
    assert (puzzle != 0).sum() == target
    assert count_solutions(puzzle, limit=2) == 1
    np.testing.assert_array_equal(solve_exact(puzzle), solution)
    assert is_valid_solution(solution, puzzle)


@pytest.mark.parametrize("seed", range(2))
def test_make_puzzle_minimal(seed):
    rng = np.random.default_rng(seed)
    solution = generate_solution(rng)
    puzzle = make_puzzle(solution, rng, minimal=True)
    givens = np.flatnonzero(puzzle)
    assert 17 <= len(givens) <= 30
    assert count_solutions(puzzle) == 1
    np.testing.assert_array_equal(solve_exact(puzzle), solution)
    for cell in givens:
        reduced = puzzle.copy()
        reduced[cell] = 0
        assert count_solutions(reduced, limit=2) == 2


def test_make_puzzle_errors(classic_solution):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="complete valid Sudoku grid"):
        make_puzzle(parse_puzzle(CLASSIC), rng)
    with pytest.raises(ValueError, match="target_givens"):
        make_puzzle(classic_solution, rng, target_givens=16)


# ----------------------------------------------------------------------- augmentation


@pytest.fixture(scope="module")
def small_test_set():
    return sudoku_dataset("test", 6, seed=1, cache=False)


@pytest.mark.parametrize("seed", range(20))
def test_augment_batch(seed, small_test_set):
    rng = np.random.default_rng(seed)
    puzzles, solutions = small_test_set
    new_p, new_s = augment(puzzles, solutions, rng)
    assert new_p.shape == (6, 81) and new_p.dtype == np.int8
    assert new_s.shape == (6, 81) and new_s.dtype == np.int8
    assert np.all(is_valid_solution(new_s, new_p))
    np.testing.assert_array_equal((new_p != 0).sum(1), (puzzles != 0).sum(1))
    assert not np.array_equal(new_s, solutions)
    # Blanks move with the same cell permutation in puzzle and solution, so the
    # augmented puzzle still determines its solution.
    for k in range(2):
        assert count_solutions(new_p[k]) == 1
        np.testing.assert_array_equal(solve_exact(new_p[k]), new_s[k])


@pytest.mark.parametrize("seed", range(20))
def test_augment_single_and_structure(seed, classic_solution):
    rng = np.random.default_rng(seed)
    puzzle = parse_puzzle(CLASSIC)
    new_p, new_s = augment(puzzle, classic_solution, rng)
    assert new_p.shape == (81,) and new_s.shape == (81,)
    _assert_sudoku_rules(new_s, new_p)
    # The digit histogram of the givens is permuted, not changed.
    counts = np.bincount(puzzle, minlength=10)
    new_counts = np.bincount(new_p, minlength=10)
    assert new_counts[0] == counts[0]
    assert sorted(new_counts[1:]) == sorted(counts[1:])
    # Without transposes, the blank pattern of each band stays within one band.
    new_p, _ = augment(puzzle, classic_solution, rng, transpose=False)
    band_blanks = sorted((puzzle.reshape(3, 27) == 0).sum(1))
    assert sorted((new_p.reshape(3, 27) == 0).sum(1)) == band_blanks


def test_augment_varies_per_sample(classic_solution):
    puzzle = parse_puzzle(CLASSIC)
    batch = np.tile(puzzle, (50, 1))
    new_p, new_s = augment(
        batch, np.tile(classic_solution, (50, 1)), np.random.default_rng(0)
    )
    assert len({board_to_string(p) for p in new_p}) == 50
    assert np.all(is_valid_solution(new_s, new_p))
    # Transposes happen: some outputs keep the 3 band blank counts of the input's
    # stacks rather than its bands (the classic puzzle's two differ).
    band = sorted((puzzle.reshape(3, 27) == 0).sum(1))
    stack = sorted((puzzle.reshape(9, 3, 3) == 0).sum(axis=(0, 2)))
    assert band != stack
    out_bands = [sorted((p.reshape(3, 27) == 0).sum(1)) for p in new_p]
    assert band in out_bands and stack in out_bands


def test_augment_shape_error(classic_solution):
    with pytest.raises((ValueError, TypeError)):
        augment(
            np.zeros((2, 81), np.int8),
            np.zeros((3, 81), np.int8),
            np.random.default_rng(0),
        )


# -------------------------------------------------------------------------- data sets


def _check_split(puzzles, solutions, n, low, high):
    assert puzzles.shape == solutions.shape == (n, 81)
    assert puzzles.dtype == solutions.dtype == np.int8
    assert np.all(is_valid_solution(solutions, puzzles))
    givens = (puzzles != 0).sum(1)
    assert givens.min() >= low and givens.max() <= high
    for puzzle in puzzles:
        assert count_solutions(puzzle) == 1


def test_dataset_splits(tmp_path):
    train = sudoku_dataset("train", 30, seed=0, cache_dir=tmp_path)
    test = sudoku_dataset("test", 30, seed=0, cache_dir=tmp_path)
    hard = sudoku_dataset("hard", 3, seed=0, cache_dir=tmp_path)
    _check_split(*train, 30, 33, 40)
    _check_split(*test, 30, 33, 40)
    _check_split(*hard, 3, 17, 30)
    # Targets are drawn per puzzle, so given counts vary.
    assert len(set((train[0] != 0).sum(1).tolist())) > 2
    # Hard puzzles are minimal and have fewer givens than any in-distribution one.
    assert (hard[0] != 0).sum(1).max() < 33
    puzzle = hard[0][0]
    for cell in np.flatnonzero(puzzle):
        reduced = puzzle.copy()
        reduced[cell] = 0
        assert count_solutions(reduced) == 2
    # No puzzle or solution is shared between splits.
    strings = {
        name: {board_to_string(p) for p in data[0]}
        for name, data in [("train", train), ("test", test), ("hard", hard)]
    }
    assert not strings["train"] & strings["test"]
    train_solutions = {board_to_string(s) for s in train[1]}
    assert not train_solutions & {board_to_string(s) for s in test[1]}
    assert len(strings["train"]) == 30


def test_dataset_deterministic():
    a = sudoku_dataset("test", 8, seed=3, cache=False)
    b = sudoku_dataset("test", 8, seed=3, cache=False)
    c = sudoku_dataset("test", 8, seed=4, cache=False)
    d = sudoku_dataset("train", 8, seed=3, cache=False)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.any(np.all(a[0] == c[0], axis=1))
    assert not np.any(np.all(a[1][:, None] == d[1][None], axis=-1))
    # A smaller data set is a prefix of a larger one.
    e = sudoku_dataset("test", 5, seed=3, cache=False)
    np.testing.assert_array_equal(e[0], a[0][:5])
    np.testing.assert_array_equal(e[1], a[1][:5])
    assert sudoku_dataset("hard", 0, seed=0, cache=False)[0].shape == (0, 81)


def test_dataset_augment_factor():
    puzzles, solutions = sudoku_dataset(
        "train", 11, seed=0, cache=False, augment_factor=4
    )
    _check_split(puzzles, solutions, 11, 33, 40)
    # Base puzzles at 0, 4, 8; each followed by distinct variants with the same
    # number of givens.
    assert len({board_to_string(p) for p in puzzles}) == 11
    givens = (puzzles != 0).sum(1)
    for start in (0, 4, 8):
        assert len(set(givens[start : start + 4].tolist())) == 1
    base = sudoku_dataset("train", 3, seed=0, cache=False)
    np.testing.assert_array_equal(puzzles[[0, 4, 8]], base[0])
    # The variants stay in the train split: none is a test puzzle's solution twin.
    test = sudoku_dataset("test", 11, seed=0, cache=False, augment_factor=4)
    assert not {board_to_string(s) for s in solutions} & {
        board_to_string(s) for s in test[1]
    }


def test_dataset_cache(tmp_path, monkeypatch):
    first = sudoku_dataset("test", 6, seed=7, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    name = files[0].name
    assert name.endswith(".npz") and "test" in name and "n6" in name and "seed7" in name
    assert f"v{sudoku._FORMAT_VERSION}" in name

    # A cache hit does not generate anything.
    def _fail(*args, **kwargs):
        raise AssertionError("generated despite a cache hit")

    with monkeypatch.context() as patch:
        patch.setattr(sudoku, "_generate_item", _fail)
        second = sudoku_dataset("test", 6, seed=7, cache_dir=tmp_path)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])

    # A corrupted file is regenerated (with a warning) and rewritten.
    files[0].write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="regenerating"):
        third = sudoku_dataset("test", 6, seed=7, cache_dir=tmp_path)
    np.testing.assert_array_equal(first[0], third[0])
    np.testing.assert_array_equal(first[1], third[1])
    with np.load(files[0]) as data:
        np.testing.assert_array_equal(data["puzzles"], first[0])

    # So is a readable file with the wrong contents.
    np.savez(files[0], puzzles=first[0][:3], solutions=first[1][:3])
    with pytest.warns(UserWarning, match="regenerating"):
        fourth = sudoku_dataset("test", 6, seed=7, cache_dir=tmp_path)
    np.testing.assert_array_equal(first[0], fourth[0])
    # No temporary files are left behind.
    assert [f.name for f in tmp_path.iterdir()] == [name]


def test_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOPKUR_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    sudoku_dataset("hard", 1, seed=0)
    assert len(list((tmp_path / "cache").glob("sudoku-hard-n1-seed0-*.npz"))) == 1
    monkeypatch.delenv("HOPKUR_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "hopkur")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="valid", n=1, seed=0), "split"),
        (dict(split="test", n=-1, seed=0), "n=..."),
        (dict(split="test", n=1, seed=-1), "seed"),
        (dict(split="test", n=1, seed=0, augment_factor=0), "augment_factor"),
    ],
)
def test_dataset_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sudoku_dataset(cache=False, **kwargs)


def test_dataset_progress(capsys):
    puzzles, _ = sudoku_dataset("test", 2, seed=0, cache=False, progress=True)
    assert puzzles.shape == (2, 81)
    assert "sudoku test" in capsys.readouterr().err
