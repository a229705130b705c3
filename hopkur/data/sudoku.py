"""Locally generated Sudoku puzzles for the AKOrN Sudoku experiment.

Everything here is plain numpy and Python; nothing is downloaded.

This module is long because it is one self-contained subject: the board format, the
exact solver, the generator (which calls the solver to keep every puzzle uniquely
solvable), the checks, the augmentation and the cached data sets share the bit tables
and board checks below, and nothing else in hopkur uses them.

**Board format.** A board is a numpy `int8` array of shape `(81,)` (one board) or
`(n, 81)` (a batch), read row by row: cell `9 * r + c` holds row `r`, column `c`.
`0` is a blank and `1, ..., 9` are digits. A *puzzle* is a board with blanks; a
*solution* is a full board in which every row, column and 3x3 box holds each digit
once. Text boards (see [`hopkur.data.sudoku.parse_puzzle`][]) are 81 characters, with
`0` or `.` for a blank.

**Data sets.** [`hopkur.data.sudoku.sudoku_dataset`][] returns `(puzzles, solutions)`,
two `int8` arrays of shape `(n, 81)`, for three splits:

- `"train"` and `"test"`: in-distribution puzzles with 33 to 40 givens (the target
  drawn uniformly per puzzle), each with exactly one solution;
- `"hard"`: out-of-distribution *minimal* puzzles (no given can be removed without
  losing uniqueness), 17 to 30 givens (typically 22 to 27). Each is checked by the
  exact solver when it is generated: unique, and minimal given by given (see
  [`hopkur.data.sudoku.is_minimal`][]). [`hopkur.data.sudoku.hard_set`][] is the
  evaluation set of the AKOrN experiment: its first 500 puzzles, seed 0.

Each split is deterministic in `seed`. Puzzle `i` of a split is built from its own
generator seeded with `(seed, split, i)`, so a smaller data set is a prefix of a larger
one with the same seed (without augmentation). Splits are disjoint by construction:
every solution grid is assigned to exactly one split by a hash of its digits, and a
puzzle with a unique solution determines that solution, so no puzzle can occur in two
splits. Data sets are cached as `.npz` files, by default in `$HOPKUR_CACHE` or
`~/.cache/hopkur`.

**Augmentation.** [`hopkur.data.sudoku.augment`][] applies a random element of the
Sudoku symmetry group (digit relabelling, band/stack permutations, row/column
permutations within bands/stacks, optional transpose) to puzzles and their solutions
together; validity and uniqueness are preserved.
"""

import hashlib
import math
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from jaxtyping import ArrayLike, Bool, Int, Int8, Integer


# Bump whenever the generated data would change for the same arguments.
_FORMAT_VERSION = 1

# Bump whenever the "hard" split alone would change (its cache files carry it too);
# version 2: every puzzle verified minimal and unique, with 17 to 30 givens.
_HARD_VERSION = 2

# Ranges of givens per split (inclusive).
_IN_DISTRIBUTION_GIVENS = (33, 40)
_HARD_GIVENS = (17, 30)
HARD_SET_SIZE = 500
_SPLIT_IDS = {"train": 0, "test": 1, "hard": 2}

# --------------------------------------------------------------------------------------
# Geometry and bit tables shared by the solver.
# --------------------------------------------------------------------------------------

_ALL = 0x1FF  # bits 0..8 set: digits 1..9 all possible
_ROW = tuple(i // 9 for i in range(81))
_COL = tuple(i % 9 for i in range(81))
_BOX = tuple((i // 27) * 3 + (i % 9) // 3 for i in range(81))
_ROW_CELLS = tuple(tuple(9 * r + c for c in range(9)) for r in range(9))
_COL_CELLS = tuple(tuple(9 * r + c for r in range(9)) for c in range(9))
_BOX_CELLS = tuple(
    tuple(9 * (3 * (b // 3) + i) + 3 * (b % 3) + j for i in range(3) for j in range(3))
    for b in range(9)
)
# Units as (kind, index, cells) with kind 0 = row, 1 = column, 2 = box.
_UNITS = (
    tuple((0, k, cells) for k, cells in enumerate(_ROW_CELLS))
    + tuple((1, k, cells) for k, cells in enumerate(_COL_CELLS))
    + tuple((2, k, cells) for k, cells in enumerate(_BOX_CELLS))
)
_POPCOUNT = tuple(bin(m).count("1") for m in range(512))
_BIT_DIGIT = {1 << d: d + 1 for d in range(9)}
_MASK_BITS = tuple(tuple(1 << d for d in range(9) if m >> d & 1) for m in range(512))


# --------------------------------------------------------------------------------------
# Text conversion.
# --------------------------------------------------------------------------------------


def _first_conflict(board: np.ndarray) -> str | None:
    """Describes the first repeated digit among the givens of one board, if any."""
    grid = board.reshape(9, 9)
    units = (
        [("row", r + 1, grid[r, :]) for r in range(9)]
        + [("column", c + 1, grid[:, c]) for c in range(9)]
        + [("box", b + 1, board[list(_BOX_CELLS[b])]) for b in range(9)]
    )
    for kind, index, values in units:
        counts = np.bincount(values.ravel(), minlength=10)
        for digit in range(1, 10):
            if counts[digit] > 1:
                return f"digit {digit} appears {counts[digit]} times in {kind} {index}"
    return None


def parse_puzzle(text: str) -> Int8[np.ndarray, " 81"]:
    """Parses a Sudoku board written as text.

    **Arguments:**

    - `text`: 81 cells read row by row; `1`-`9` are digits and `0` or `.` a blank.
        Whitespace (including newlines) is ignored, as are the box separators `|`, `-`
        and `+` written by [`hopkur.data.sudoku.format_grid`][], so its output parses
        back.

    **Returns:**

    An `int8` array of shape `(81,)`, `0` for blanks.

    **Raises:**

    `ValueError` if there are not 81 cells, a character is not allowed, or the givens
    contradict each other (a digit twice in a row, column or box; rows, columns and
    boxes are numbered 1 to 9, boxes row by row).
    """
    cells = [ch for ch in text if not ch.isspace() and ch not in "|-+"]
    for position, ch in enumerate(cells):
        if ch not in "0123456789.":
            raise ValueError(
                "`parse_puzzle(text)` accepts only the characters 1-9, 0 and '.'; got "
                f"{ch!r} at cell {position + 1}."
            )
    if len(cells) != 81:
        raise ValueError(f"`parse_puzzle(text)` expects 81 cells; got {len(cells)}.")
    board = np.array([0 if ch == "." else int(ch) for ch in cells], dtype=np.int8)
    conflict = _first_conflict(board)
    if conflict is not None:
        raise ValueError(
            f"`parse_puzzle(text)` expects givens that do not contradict; {conflict}."
        )
    return board


def _check_board(name: str, board: ArrayLike, *, batch: bool = False) -> np.ndarray:
    """Converts `board` to an `int8` array and checks its shape and values."""
    array = np.asarray(board)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array; got dtype {array.dtype}.")
    if batch:
        if array.ndim not in (1, 2) or array.shape[-1] != 81:
            raise ValueError(
                f"{name} must have shape (81,) or (n, 81); got {array.shape}."
            )
    elif array.shape != (81,):
        raise ValueError(f"{name} must have shape (81,); got {array.shape}.")
    if array.size and (array.min() < 0 or array.max() > 9):
        raise ValueError(
            f"{name} must hold values in 0..9; got values in "
            f"{array.min()}..{array.max()}."
        )
    return array.astype(np.int8)


def board_to_string(board: Integer[ArrayLike, " 81"]) -> str:
    """Writes a board as 81 characters, `0` for blanks.

    **Arguments:**

    - `board`: an integer array of shape `(81,)` with values in `0..9`.

    **Returns:**

    A string of 81 digits that [`hopkur.data.sudoku.parse_puzzle`][] reads back.
    """
    array = _check_board("`board_to_string(board)`", board)
    return "".join(str(int(v)) for v in array)


def format_grid(board: Integer[ArrayLike, " 81"]) -> str:
    """Writes a board as a 9-line grid with box separators, `.` for blanks.

    **Arguments:**

    - `board`: an integer array of shape `(81,)` with values in `0..9`.

    **Returns:**

    A string of 9 rows of digits, with `|` between stacks and a `------+-------+------`
    line between bands (11 lines in all). [`hopkur.data.sudoku.parse_puzzle`][] reads
    it back.
    """
    array = _check_board("`format_grid(board)`", board)
    lines = []
    for r in range(9):
        if r in (3, 6):
            lines.append("------+-------+------")
        chars = ["." if v == 0 else str(int(v)) for v in array[9 * r : 9 * r + 9]]
        lines.append(" | ".join(" ".join(chars[3 * s : 3 * s + 3]) for s in range(3)))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Exact solver: bitmask constraint propagation (naked and hidden singles) and
# backtracking on the cell with the fewest candidates.
# --------------------------------------------------------------------------------------


def _place(grid, rows, cols, boxes, cell, bit) -> None:
    grid[cell] = _BIT_DIGIT[bit]
    rows[_ROW[cell]] |= bit
    cols[_COL[cell]] |= bit
    boxes[_BOX[cell]] |= bit


def _search(grid, rows, cols, boxes, limit, solutions, rng) -> int:
    """Counts solutions (up to `limit`) of a consistent partial grid, in place.

    `grid` is a list of 81 ints; `rows`, `cols`, `boxes` hold bitmasks of the digits
    used in each unit. Found solutions are appended to `solutions` (if not `None`).
    `rng` (if not `None`) shuffles the order in which branches are tried.
    """
    unit_masks = (rows, cols, boxes)
    while True:
        # Sweep: candidates of every blank cell; place naked singles at once.
        changed = False
        cand = [0] * 81
        best_cell, best_count = -1, 10
        for cell in range(81):
            if grid[cell]:
                continue
            m = _ALL & ~(rows[_ROW[cell]] | cols[_COL[cell]] | boxes[_BOX[cell]])
            if not m:
                return 0
            n = _POPCOUNT[m]
            if n == 1:
                _place(grid, rows, cols, boxes, cell, m)
                changed = True
            else:
                cand[cell] = m
                if n < best_count:
                    best_cell, best_count = cell, n
        if changed:
            continue
        if best_cell < 0:
            # Grid full (and consistent, as every placement avoided used digits).
            if solutions is not None:
                solutions.append(list(grid))
            return 1
        # Hidden singles: a digit with one possible cell in a unit goes there. The
        # candidate masks are fresh (no placement since the sweep), so the unit
        # analysis is exact; after placing in one unit, sweep again. On the way,
        # note a digit with exactly two possible cells in some unit, a cheaper
        # branching point than a cell with three or more candidates.
        pair_unit, pair_bit = None, 0
        for kind, index, cells in _UNITS:
            once = twice = thrice = 0
            for cell in cells:
                m = cand[cell]
                thrice |= twice & m
                twice |= once & m
                once |= m
            used = unit_masks[kind][index]
            if (once | used) != _ALL:
                return 0  # some digit has nowhere to go in this unit
            hidden = once & ~twice
            if hidden:
                for cell in cells:
                    bits = cand[cell] & hidden
                    if not bits:
                        continue
                    if _POPCOUNT[bits] > 1:
                        return 0  # one cell would need two digits
                    fresh = _ALL & ~(
                        rows[_ROW[cell]] | cols[_COL[cell]] | boxes[_BOX[cell]]
                    )
                    if not fresh & bits:
                        return 0
                    _place(grid, rows, cols, boxes, cell, bits)
                changed = True
                break
            if pair_unit is None and best_count > 2:
                pairs = twice & ~thrice
                if pairs:
                    pair_unit, pair_bit = cells, pairs & -pairs
        if not changed:
            break
    # Branch, Algorithm X style, on the smallest exhaustive set of alternatives:
    # the candidates of the cell with the fewest, or the two cells of a digit that
    # has only two places left in a unit.
    if pair_unit is None:
        branches = [(best_cell, bit) for bit in _MASK_BITS[cand[best_cell]]]
    else:
        branches = [(cell, pair_bit) for cell in pair_unit if cand[cell] & pair_bit]
    if rng is not None:
        branches = [branches[k] for k in rng.permutation(len(branches))]
    count = 0
    for cell, bit in branches:
        g, r, c, b = list(grid), list(rows), list(cols), list(boxes)
        _place(g, r, c, b, cell, bit)
        count += _search(g, r, c, b, limit - count, solutions, rng)
        if count >= limit:
            break
    return count


def _init_state(board: np.ndarray):
    """Unit bitmasks of a board, or `None` if its givens contradict each other."""
    grid = [int(v) for v in board]
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    for cell, v in enumerate(grid):
        if v:
            bit = 1 << (v - 1)
            r, c, b = _ROW[cell], _COL[cell], _BOX[cell]
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return None
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
    return grid, rows, cols, boxes


def count_solutions(board: Integer[ArrayLike, " 81"], limit: int = 2) -> int:
    """Counts the solutions of a puzzle, stopping once `limit` have been found.

    **Arguments:**

    - `board`: an integer array of shape `(81,)`, `0` for blanks.
    - `limit`: the count at which to stop searching (a positive integer). The
        default `2` is enough to decide uniqueness.

    **Returns:**

    `min(number of solutions, limit)`; `0` if the givens contradict each other or the
    puzzle has no solution.
    """
    if limit < 1:
        raise ValueError(f"`count_solutions(limit=...)` must be >= 1; got {limit}.")
    array = _check_board("`count_solutions(board)`", board)
    state = _init_state(array)
    if state is None:
        return 0
    return _search(*state, limit, None, None)


def solve_exact(board: Integer[ArrayLike, " 81"]) -> Int8[np.ndarray, " 81"] | None:
    """Solves a puzzle exactly.

    Uses bitmask constraint propagation (naked and hidden singles) and depth-first
    search on the blank with the fewest candidates; a hard 17-given puzzle takes
    milliseconds.

    **Arguments:**

    - `board`: an integer array of shape `(81,)`, `0` for blanks.

    **Returns:**

    A full board (`int8`, shape `(81,)`) agreeing with the givens, or `None` if there
    is no solution. If there are several, the first one found is returned; use
    [`hopkur.data.sudoku.count_solutions`][] to check uniqueness.
    """
    array = _check_board("`solve_exact(board)`", board)
    state = _init_state(array)
    if state is None:
        return None
    solutions: list[list[int]] = []
    if _search(*state, 1, solutions, None) == 0:
        return None
    return np.asarray(solutions[0], dtype=np.int8)


# --------------------------------------------------------------------------------------
# Checking boards (vectorised over a batch).
# --------------------------------------------------------------------------------------


def _units(boards: np.ndarray) -> np.ndarray:
    """The 27 units (rows, columns, boxes) of each board: shape `(n, 27, 9)`."""
    n = boards.shape[0]
    grid = boards.reshape(n, 9, 9)
    boxes = grid.reshape(n, 3, 3, 3, 3).transpose(0, 1, 3, 2, 4).reshape(n, 9, 9)
    return np.concatenate([grid, grid.transpose(0, 2, 1), boxes], axis=1)


def constraint_violations(
    board: Integer[ArrayLike, "*batch 81"], *, count_blanks: bool = False
) -> int | Int[np.ndarray, " n"]:
    """Counts broken Sudoku constraints on a (possibly partial) board.

    For each of the 27 units (rows, columns, boxes) and each digit appearing $k > 1$
    times among the unit's filled cells, $k - 1$ conflicts are counted (the number of
    cells to clear to remove the duplicate).

    **Arguments:**

    - `board`: an integer array of shape `(81,)` or `(n, 81)`, `0` for blanks.
    - `count_blanks`: if `True`, add the number of blank cells, so that `0` means
        "a valid complete solution". (Keyword only argument.)

    **Returns:**

    An `int` for one board, or an integer array of shape `(n,)` for a batch.
    """
    array = _check_board("`constraint_violations(board)`", board, batch=True)
    boards = array.reshape(-1, 81)
    # In each sorted unit, a filled cell equal to its left neighbour is one extra
    # copy of a digit: summing these counts (k - 1) for each digit seen k times.
    units = np.sort(_units(boards), axis=-1)
    repeats = (units[..., 1:] == units[..., :-1]) & (units[..., 1:] != 0)
    violations = repeats.sum(axis=(1, 2))
    if count_blanks:
        violations = violations + (boards == 0).sum(axis=1)
    violations = violations.astype(np.int64)
    return int(violations[0]) if array.ndim == 1 else violations


def violated_units(
    board: Integer[ArrayLike, " 81"],
) -> list[tuple[str, int, list[int]]]:
    """The rows, columns and boxes of one board in which a digit appears twice or more.

    **Arguments:**

    - `board`: an integer array of shape `(81,)`, `0` for blanks.

    **Returns:**

    A list of `(kind, index, digits)`: `kind` is `"row"`, `"column"` or `"box"`,
    `index` its number from 1 to 9 (boxes row by row) and `digits` the repeated
    digits, in the order rows, columns, boxes. Empty if no digit repeats.
    """
    array = _check_board("`violated_units(board)`", board)
    names = ("row", "column", "box")
    found = []
    for unit, values in enumerate(_units(array[None])[0]):
        counts = np.bincount(values, minlength=10)[1:]
        digits = [int(d) + 1 for d in np.flatnonzero(counts > 1)]
        if digits:
            found.append((names[unit // 9], unit % 9 + 1, digits))
    return found


def is_valid_solution(
    board: Integer[ArrayLike, "*batch 81"],
    puzzle: Integer[ArrayLike, "*pbatch 81"] | None = None,
) -> bool | Bool[np.ndarray, " n"]:
    """Checks that a board is a complete valid Sudoku agreeing with a puzzle's givens.

    **Arguments:**

    - `board`: the candidate solution(s), shape `(81,)` or `(n, 81)`.
    - `puzzle`: the puzzle(s) with `0` for blanks, same shape as `board` (or `(81,)`,
        broadcast over a batch). If `None`, only validity is checked.

    **Returns:**

    A `bool` for one board, or a boolean array of shape `(n,)` for a batch.
    """
    array = _check_board("`is_valid_solution(board)`", board, batch=True)
    valid = np.asarray(constraint_violations(array, count_blanks=True)) == 0
    if puzzle is not None:
        given = _check_board("`is_valid_solution(puzzle)`", puzzle, batch=True)
        if given.shape != array.shape and given.shape != (81,):
            raise ValueError(
                "`is_valid_solution(board, puzzle)` needs `puzzle` of shape "
                f"{array.shape} or (81,); got {given.shape}."
            )
        agree = np.all((given == 0) | (given == array), axis=-1)
        valid = valid & agree
    return bool(valid) if array.ndim == 1 else np.asarray(valid, dtype=bool)


# --------------------------------------------------------------------------------------
# Generation.
# --------------------------------------------------------------------------------------


def generate_solution(rng: np.random.Generator) -> Int8[np.ndarray, " 81"]:
    """Draws a random complete Sudoku grid.

    The three boxes on the diagonal are filled with random permutations of the digits
    and the rest is completed by depth-first search with randomly ordered branches.

    **Arguments:**

    - `rng`: a `numpy.random.Generator`; the only source of randomness.

    **Returns:**

    A valid full board, `int8` of shape `(81,)`.
    """
    board = np.zeros(81, dtype=np.int8)
    # The three diagonal boxes share no row, column or box: fill them freely.
    for b in (0, 4, 8):
        board[list(_BOX_CELLS[b])] = rng.permutation(9) + 1
    state = _init_state(board)
    assert state is not None, "diagonal boxes cannot conflict; please report"
    solutions: list[list[int]] = []
    found = _search(*state, 1, solutions, rng)
    assert found == 1, "every diagonal-box filling completes; please report"
    return np.asarray(solutions[0], dtype=np.int8)


def _has_other_solution(puzzle: np.ndarray, cell: int, digit: int) -> bool:
    """Whether `puzzle` (unique, solved by `digit` at `cell`) has a solution when
    `cell` is blanked, other than the original one.

    Equivalent to `count_solutions(puzzle with cell blanked) >= 2`, but cheaper: it
    searches only for a solution with another digit at `cell`.
    """
    state = _init_state(puzzle)
    assert state is not None, "puzzle givens must be consistent; please report"
    grid, rows, cols, boxes = state
    # Blank the cell, then try each other digit that fits there.
    bit = 1 << (digit - 1)
    grid[cell] = 0
    rows[_ROW[cell]] &= ~bit
    cols[_COL[cell]] &= ~bit
    boxes[_BOX[cell]] &= ~bit
    free = _ALL & ~(rows[_ROW[cell]] | cols[_COL[cell]] | boxes[_BOX[cell]]) & ~bit
    for other in _MASK_BITS[free]:
        g, r, c, b = list(grid), list(rows), list(cols), list(boxes)
        _place(g, r, c, b, cell, other)
        if _search(g, r, c, b, 1, None, None):
            return True
    return False


def make_puzzle(
    solution: Integer[ArrayLike, " 81"],
    rng: np.random.Generator,
    target_givens: int = 36,
    minimal: bool = False,
) -> Int8[np.ndarray, " 81"]:
    """Carves a puzzle with a unique solution out of a full grid.

    Cells are visited in random order; each is blanked if the puzzle keeps exactly one
    solution (as `count_solutions(puzzle, limit=2) == 1` would say; the check used
    searches only for a solution with another digit in that cell), and otherwise
    restored. Since blanking more cells can only add solutions, a cell that cannot be
    blanked once can never be blanked later. The result's uniqueness is verified
    before it is returned.

    **Arguments:**

    - `solution`: a valid full board, shape `(81,)`.
    - `rng`: a `numpy.random.Generator` choosing the order of removal.
    - `target_givens`: stop as soon as this many givens remain (in `17..81`). If the
        puzzle becomes minimal first, it keeps more givens than the target.
    - `minimal`: if `True`, ignore `target_givens` and keep removing until no given
        can be removed (a minimal puzzle; typically 22-27 givens).

    **Returns:**

    A puzzle (`int8`, shape `(81,)`, `0` for blanks) whose unique solution is
    `solution`.
    """
    full = _check_board("`make_puzzle(solution)`", solution)
    if not is_valid_solution(full):
        raise ValueError(
            "`make_puzzle(solution)` must be a complete valid Sudoku grid; got one "
            f"with {constraint_violations(full, count_blanks=True)} violations."
        )
    if not 17 <= target_givens <= 81:
        raise ValueError(
            "`make_puzzle(target_givens=...)` must be in 17..81 (no Sudoku with fewer "
            f"than 17 givens has a unique solution); got {target_givens}."
        )
    puzzle = full.copy()
    givens = 81
    for cell in rng.permutation(81):
        if not minimal and givens <= target_givens:
            break
        if not _has_other_solution(puzzle, int(cell), int(full[cell])):
            puzzle[cell] = 0
            givens -= 1
    assert count_solutions(puzzle) == 1, "carved puzzle is not unique; please report"
    return puzzle


def is_minimal(board: Integer[ArrayLike, " 81"]) -> bool:
    """Checks that a puzzle is *minimal*: uniquely solvable, and no longer so once any
    one of its givens is removed.

    Runs the exact solver once for uniqueness, then once per given, searching for a
    solution with another digit in that cell (equivalent to
    `count_solutions(board with the given blanked) >= 2`, but cheaper). A 25-given
    puzzle takes a few milliseconds.

    **Arguments:**

    - `board`: an integer array of shape `(81,)`, `0` for blanks.

    **Returns:**

    `True` if the puzzle has exactly one solution and each given is needed for that.
    """
    array = _check_board("`is_minimal(board)`", board)
    if count_solutions(array) != 1:
        return False
    return all(
        _has_other_solution(array, int(cell), int(array[cell]))
        for cell in np.flatnonzero(array)
    )


# --------------------------------------------------------------------------------------
# Augmentation.
# --------------------------------------------------------------------------------------


def _random_line_permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-sample permutations of 9 lines that keep bands (or stacks) together."""
    groups = rng.permuted(np.tile(np.arange(3), (n, 1)), axis=1)  # (n, 3)
    within = rng.permuted(np.tile(np.arange(3), (n, 3, 1)), axis=2)  # (n, 3, 3)
    return (3 * groups[:, :, None] + within).reshape(n, 9)


def augment(
    puzzle: Integer[ArrayLike, "*batch 81"],
    solution: Integer[ArrayLike, "*batch 81"],
    rng: np.random.Generator,
    *,
    transpose: bool = True,
) -> tuple[Int8[np.ndarray, "*batch 81"], Int8[np.ndarray, "*batch 81"]]:
    """Applies a random validity-preserving symmetry to puzzles and their solutions.

    Each board gets its own transform, the same for its puzzle and its solution: a
    random relabelling of the digits 1-9, a permutation of the three bands and of the
    three stacks, of the rows within each band and of the columns within each stack,
    and (if `transpose`) a transpose with probability 1/2. Blanks stay blank, so a
    puzzle's number of givens and the uniqueness of its solution are unchanged.

    **Arguments:**

    - `puzzle`: puzzles, shape `(81,)` or `(n, 81)`.
    - `solution`: their solutions, same shape.
    - `rng`: a `numpy.random.Generator`.
    - `transpose`: whether to include random transposes. (Keyword only argument.)

    **Returns:**

    The transformed `(puzzle, solution)`, `int8` arrays of the input shape.
    """
    puzzles = _check_board("`augment(puzzle)`", puzzle, batch=True)
    solutions = _check_board("`augment(solution)`", solution, batch=True)
    if puzzles.shape != solutions.shape:
        raise ValueError(
            "`augment(puzzle, solution)` needs arrays of the same shape; got "
            f"{puzzles.shape} and {solutions.shape}."
        )
    single = puzzles.ndim == 1
    puzzles, solutions = puzzles.reshape(-1, 81), solutions.reshape(-1, 81)
    n = puzzles.shape[0]
    row_perm = _random_line_permutation(rng, n)
    col_perm = _random_line_permutation(rng, n)
    # Source cell of each output cell (r, c): (row_perm[r], col_perm[c]), or
    # (row_perm[c], col_perm[r]) when transposed.
    source = 9 * row_perm[:, :, None] + col_perm[:, None, :]  # (n, 9, 9)
    if transpose:
        flip = rng.random(n) < 0.5
        source = np.where(flip[:, None, None], source.transpose(0, 2, 1), source)
    source = source.reshape(n, 81)
    relabel = np.zeros((n, 10), dtype=np.int8)
    relabel[:, 1:] = rng.permuted(np.tile(np.arange(1, 10), (n, 1)), axis=1)

    def _apply(boards):
        moved = np.take_along_axis(boards, source, axis=1)
        return np.take_along_axis(relabel, moved.astype(np.intp), axis=1)

    new_puzzles, new_solutions = _apply(puzzles), _apply(solutions)
    if single:
        return new_puzzles[0], new_solutions[0]
    return new_puzzles, new_solutions


# --------------------------------------------------------------------------------------
# Data sets.
# --------------------------------------------------------------------------------------


def _split_of_solution(solution: np.ndarray) -> int:
    """The split (0 train, 1 test, 2 hard) that owns a solution grid, by hash."""
    digest = hashlib.blake2b(solution.astype(np.int8).tobytes(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") % len(_SPLIT_IDS)


def _owned_solution(rng: np.random.Generator, split_id: int) -> np.ndarray:
    """Draws a solution grid belonging to split `split_id`.

    Relabels the digits of a random grid at random until its hash selects the split
    (cheaper than drawing new grids).
    """
    solution = generate_solution(rng)
    while _split_of_solution(solution) != split_id:
        solution = (rng.permutation(9) + 1).astype(np.int8)[solution - 1]
    return solution


def _generate_item(
    seed: int, split: str, index: int, copies: int
) -> tuple[np.ndarray, np.ndarray]:
    """Puzzle `index` of a split and `copies - 1` augmented variants of it."""
    split_id = _SPLIT_IDS[split]
    rng = np.random.default_rng([seed, split_id, index, _FORMAT_VERSION])
    solution = _owned_solution(rng, split_id)
    if split == "hard":
        puzzle = make_puzzle(solution, rng, minimal=True)
        attempt = 0
        while not _HARD_GIVENS[0] <= np.count_nonzero(puzzle) <= _HARD_GIVENS[1]:
            # Rare (random carving almost always stops at 20 to 28 givens): draw
            # again from a generator of its own, so other puzzles do not move.
            attempt += 1
            rng = np.random.default_rng(
                [seed, split_id, index, _FORMAT_VERSION, attempt]
            )
            solution = _owned_solution(rng, split_id)
            puzzle = make_puzzle(solution, rng, minimal=True)
        assert is_minimal(puzzle), "carved puzzle is not minimal; please report"
    else:
        low, high = _IN_DISTRIBUTION_GIVENS
        target = int(rng.integers(low, high + 1))
        puzzle = make_puzzle(solution, rng, target_givens=target)
    puzzles, solutions = [puzzle[None]], [solution[None]]
    need = copies - 1
    while need > 0:
        # Keep only variants whose solution belongs to this split, so that splits
        # stay disjoint (about a third of them); draw them in vectorised batches.
        draws = 3 * need + 4
        new_p, new_s = augment(
            np.tile(puzzle, (draws, 1)), np.tile(solution, (draws, 1)), rng
        )
        keep = np.flatnonzero([_split_of_solution(x) == split_id for x in new_s])
        keep = keep[:need]
        puzzles.append(new_p[keep])
        solutions.append(new_s[keep])
        need -= len(keep)
    return np.concatenate(puzzles), np.concatenate(solutions)


def default_cache_dir() -> Path:
    """The directory where data sets are cached by default.

    **Returns:**

    `$HOPKUR_CACHE` if that environment variable is set and non-empty, otherwise
    `~/.cache/hopkur`.
    """
    from .._cache import cache_dir

    return cache_dir()


def _cache_path(cache_dir: Path, split: str, n: int, seed: int, factor: int) -> Path:
    aug = f"-aug{factor}" if factor > 1 else ""
    hard = f"h{_HARD_VERSION}" if split == "hard" else ""
    name = f"sudoku-{split}-n{n}-seed{seed}{aug}-v{_FORMAT_VERSION}{hard}.npz"
    return cache_dir / name


def _load_cache(path: Path, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Reads a cached data set; `None` (with a warning) if it is unreadable or wrong."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            puzzles, solutions = data["puzzles"], data["solutions"]
        for array in (puzzles, solutions):
            if array.shape != (n, 81) or array.dtype != np.int8:
                raise ValueError(f"unexpected array {array.dtype}{array.shape}")
        if not np.all(is_valid_solution(solutions, puzzles)):
            raise ValueError("puzzles and solutions do not match")
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        warnings.warn(
            f"Sudoku cache file {path} is unreadable ({error}); regenerating it.",
            stacklevel=3,
        )
        return None
    return puzzles, solutions


def _save_cache(path: Path, puzzles: np.ndarray, solutions: np.ndarray) -> None:
    """Writes a data set atomically: temporary file in the same directory, then
    `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, puzzles=puzzles, solutions=solutions)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def sudoku_dataset(
    split: str,
    n: int,
    *,
    seed: int,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    augment_factor: int = 1,
    progress: bool = False,
) -> tuple[Int8[np.ndarray, "n 81"], Int8[np.ndarray, "n 81"]]:
    """Builds (or loads from cache) a split of the locally generated Sudoku data set.

    Every puzzle has exactly one solution. `"train"` and `"test"` puzzles have 33 to 40
    givens (target uniform per puzzle); `"hard"` puzzles are minimal, typically 22 to
    27 givens, and are out of distribution for a model trained on `"train"`. The
    splits never share a puzzle (see the module docstring).

    **Arguments:**

    - `split`: `"train"`, `"test"` or `"hard"`.
    - `n`: the number of puzzles (a non-negative integer).
    - `seed`: a non-negative integer; the data are a deterministic function of
        `(split, n, seed, augment_factor)`. (Keyword only argument.)
    - `cache_dir`: where to cache the arrays as `.npz`; defaults to
        [`hopkur.data.sudoku.default_cache_dir`][]. A corrupted cache file is
        regenerated (with a warning). (Keyword only argument.)
    - `cache`: set to `False` to neither read nor write a cache. (Keyword only
        argument.)
    - `augment_factor`: if greater than 1, generate `ceil(n / augment_factor)` base
        puzzles and fill the data set with each base puzzle followed by
        `augment_factor - 1` random symmetric variants of it (see
        [`hopkur.data.sudoku.augment`][]), which is much faster for large training
        sets. Variants of one puzzle are adjacent, so shuffle before batching.
        (Keyword only argument.)
    - `progress`: show a `tqdm` progress bar while generating. (Keyword only
        argument.)

    **Returns:**

    `(puzzles, solutions)`, `int8` arrays of shape `(n, 81)`; `0` marks blanks.

    !!! example

        ```python
        puzzles, solutions = sudoku_dataset("test", 1000, seed=0)
        assert is_valid_solution(solutions, puzzles).all()
        ```
    """
    if split not in _SPLIT_IDS:
        raise ValueError(
            f"`sudoku_dataset(split=...)` must be one of {sorted(_SPLIT_IDS)}; "
            f"got {split!r}."
        )
    if n < 0:
        raise ValueError(f"`sudoku_dataset(n=...)` must be >= 0; got {n}.")
    if seed < 0:
        raise ValueError(f"`sudoku_dataset(seed=...)` must be >= 0; got {seed}.")
    if augment_factor < 1:
        raise ValueError(
            f"`sudoku_dataset(augment_factor=...)` must be >= 1; got {augment_factor}."
        )
    path = None
    if cache:
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = _cache_path(directory, split, n, seed, augment_factor)
        loaded = _load_cache(path, n)
        if loaded is not None:
            return loaded

    base = math.ceil(n / augment_factor)
    indices: Iterable[int] = range(base)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(range(base), desc=f"sudoku {split}", unit="puzzle")
    puzzles = np.zeros((n, 81), dtype=np.int8)
    solutions = np.zeros((n, 81), dtype=np.int8)
    for index in indices:
        start = index * augment_factor
        copies = min(augment_factor, n - start)
        p, s = _generate_item(seed, split, index, copies)
        puzzles[start : start + copies] = p
        solutions[start : start + copies] = s

    if path is not None:
        _save_cache(path, puzzles, solutions)
    return puzzles, solutions


def hard_set(
    n: int = HARD_SET_SIZE,
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[Int8[np.ndarray, "n 81"], Int8[np.ndarray, "n 81"]]:
    """The hard evaluation set: minimal puzzles with 17 to 30 givens.

    `sudoku_dataset("hard", n, seed=seed)`: every puzzle was verified unique and
    minimal by the exact solver when generated (see
    [`hopkur.data.sudoku.is_minimal`][]). Cached on disk like every split (generating
    the 500 puzzles takes about a minute on one core).

    **Arguments:**

    - `n`: the number of puzzles; the default is the size every hard-set figure is
        measured on. A smaller set is a prefix of a larger one.
    - `seed`: the data seed. (Keyword only argument.)
    - `cache_dir`: see [`hopkur.data.sudoku_dataset`][]. (Keyword only argument.)
    - `progress`: show a progress bar while generating. (Keyword only argument.)

    **Returns:**

    `(puzzles, solutions)`, `int8` arrays of shape `(n, 81)`.
    """
    return sudoku_dataset("hard", n, seed=seed, cache_dir=cache_dir, progress=progress)
