import json

import jax
import numpy as np
import pytest

from hopkur.cli import main
from hopkur.data.sudoku import is_valid_solution, parse_puzzle, sudoku_dataset


EASY = (
    "530070000600195000098000060800060003400803001700020006060000280000419005000080079"
)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("123", "expects 81 cells; got 3"),
        ("x" + EASY[1:], "accepts only the characters"),
        ("55" + EASY[2:], "digit 5 appears 2 times in row 1"),
    ],
)
def test_solve_rejects_bad_puzzles(text, fragment, capsys):
    assert main(["sudoku", "solve", text]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert err.startswith("hopkur sudoku: error:")


def test_solve_unsolvable_puzzle(capsys):
    # Givens consistent cell by cell, but cell (1, 9) has no candidate left.
    text = "12345678" + "0" * 8 + "9" + "0" * 64
    assert main(["sudoku", "solve", text]) == 2
    assert "no solution" in capsys.readouterr().err


def test_solve_exact_is_labelled(capsys):
    assert main(["sudoku", "solve", EASY, "--exact", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["solver"] == "exact"
    board = np.array([int(c) for c in result["board"]], dtype=np.int8)
    assert is_valid_solution(board, parse_puzzle(EASY))


def test_solve_network_reports_honestly(capsys):
    puzzles, _ = sudoku_dataset("test", 3, seed=0)
    for puzzle in puzzles:
        text = "".join(map(str, puzzle))
        code = main(
            ["sudoku", "solve", text, "--json", "--votes", "2", "--max-starts", "2"]
        )
        result = json.loads(capsys.readouterr().out)
        board = np.array([int(c) for c in result["board"]], dtype=np.int8)
        valid = bool(is_valid_solution(board, puzzle))
        assert result["solver"] == "network"
        assert result["solved"] == valid and code == (0 if valid else 1)
        if not valid:
            assert result["violations"] >= 0
    # The text output of an unsolved board never claims success.
    code = main(
        ["sudoku", "solve", "".join(map(str, puzzles[0])), "--votes", "2"]
        + ["--max-starts", "2"]
    )
    out = capsys.readouterr().out
    assert out.startswith("solved by the network") == (code == 0)
    assert out.startswith("NOT solved") == (code == 1)


def test_train_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "sudoku",
        "train",
        "--out",
        str(out),
        "--quiet",
        "--channels",
        "8",
        "--steps",
        "1",
        "--blocks",
        "2",
        "--batch",
        "4",
        "--train-size",
        "8",
        "--eval-size",
        "4",
        "--max-iters",
        "3",
    ]
    # optax's bias correction needs standard dtype promotion (see test_sudoku_model).
    with jax.numpy_dtype_promotion("standard"):
        assert main(args) == 0
    for name in ("config.json", "checkpoint.eqx", "metrics.json", "COMPLETE"):
        assert (out / name).exists()
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["iteration"] == 3
    # A second run into the same folder is refused without --overwrite.
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    ev = tmp_path / "eval"
    assert (
        main(
            [
                "sudoku",
                "eval",
                "--checkpoint",
                str(out),
                "--out",
                str(ev),
                "--quiet",
                "--n",
                "4",
                "--blocks",
                "1,2",
                "--votes",
                "1,2",
            ]
        )
        == 0
    )
    table = json.loads((ev / "eval.json").read_text())
    for row in table["rows"]:
        assert row["board_low"] <= row["board_accuracy"] <= row["board_high"]
    assert [(r["multiplier"], r["votes"]) for r in table["rows"]] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    assert (
        main(
            [
                "sudoku",
                "eval",
                "--checkpoint",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "e2"),
            ]
        )
        == 2
    )


def test_train_defaults_are_the_library_defaults_and_the_shipped_recipe():
    # `hopkur sudoku train` and `hopkur.experiments.sudoku.train(config)` build and
    # train the same model when nothing is overridden: the shipped checkpoint's.
    from importlib.resources import files

    from hopkur.cli import build_parser
    from hopkur.commands._settings import resolve, to_dict
    from hopkur.commands.sudoku import SudokuTrainSettings
    from hopkur.experiments import sudoku_run

    args = build_parser().parse_args(["sudoku", "train"])
    settings = to_dict(resolve(SudokuTrainSettings, args))
    settings.pop("x64")
    assert settings == {k: sudoku_run.DEFAULTS[k] for k in settings}
    shipped = json.loads(
        files("hopkur.checkpoints").joinpath("sudoku_akorn.json").read_text()
    )
    assert shipped == {k: sudoku_run.DEFAULTS[k] for k in shipped}


def _untrained_checkpoint(folder):
    # A tiny untrained model: it cannot solve a 17-given puzzle in one start.
    import equinox as eqx
    import jax.random as jr

    from hopkur.experiments import sudoku_run

    config = {**sudoku_run.DEFAULTS, "channels": 8, "blocks": 1, "steps": 1, "heads": 2}
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    eqx.tree_serialise_leaves(
        str(folder / "checkpoint.eqx"), sudoku_run.build_model(config, key=jr.key(0))
    )
    return folder


ROYLE_17 = (
    "000000010400000000020000000000050407008000300001090000300400200050100000000806000"
)


def test_solve_failure_lists_the_violated_constraints(tmp_path, capsys):
    from hopkur.data.sudoku import constraint_violations, violated_units

    folder = str(_untrained_checkpoint(tmp_path / "untrained"))
    tiny = [
        "--checkpoint",
        folder,
        "--votes",
        "2",
        "--max-starts",
        "2",
        "--blocks",
        "1",
    ]
    assert main(["sudoku", "solve", ROYLE_17, "--json", *tiny]) == 1
    result = json.loads(capsys.readouterr().out)
    board = np.array([int(c) for c in result["board"]], dtype=np.int8)
    puzzle = parse_puzzle(ROYLE_17)
    assert not result["solved"] and not is_valid_solution(board, puzzle)
    assert result["starts"] == 2 and result["violations"] > 0
    assert result["violations"] == constraint_violations(board)
    units = [(u["unit"], u["index"], u["digits"]) for u in result["violated_units"]]
    assert units == violated_units(board)
    assert result["changed_givens"] == []
    # The text output says so first, lists the faulty units, then the grid as
    # "NOT a solution".
    assert main(["sudoku", "solve", ROYLE_17, *tiny]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("NOT solved: no valid board in 2 random starts")
    assert "solved by" not in out
    assert any("givens changed: none" in line for line in lines)
    kinds = {kind for kind, _, _ in units}
    for kind, plural in (("row", "rows"), ("column", "columns"), ("box", "boxes")):
        listed = any(line.startswith(f"  {plural} with a repeated") for line in lines)
        assert listed == (kind in kinds)
    grid_start = next(i for i, line in enumerate(lines) if "NOT a solution" in line)
    digits = [int(ch) for ch in "".join(lines[grid_start + 1 :]) if ch.isdigit()]
    assert digits == board.tolist()


def test_solve_success_path(capsys):
    # An easy puzzle: a test solution with 6 blanks; rounds continue until a start's
    # board is valid.
    _, solutions = sudoku_dataset("test", 1, seed=3)
    puzzle = solutions[0].copy()
    puzzle[np.random.default_rng(0).choice(81, 6, replace=False)] = 0
    text = "".join(map(str, puzzle))
    flags = ["--votes", "2", "--blocks", "8", "--max-starts", "8"]
    assert main(["sudoku", "solve", text, "--json", *flags]) == 0
    result = json.loads(capsys.readouterr().out)
    board = np.array([int(c) for c in result["board"]], dtype=np.int8)
    assert result["solved"] and is_valid_solution(board, puzzle)
    assert result["violated_units"] == [] and result["changed_givens"] == []
    assert 1 <= result["start"] + 1 <= result["starts"] <= 8
    assert main(["sudoku", "solve", text, *flags]) == 0
    out = capsys.readouterr().out
    assert out.startswith("solved by the network") and "NOT" not in out
