"""Every `hopkur ...` command in a fenced code block of docs/reproducing.md is a recipe:
the default run checks that each is accepted by its command's parser (every flag
exists, every value is valid); the slow run executes each with the steps, data and
output cut down, so that the page cannot drift from the code."""

import re
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest

from hopkur.cli import build_parser, main


PAGE = Path(__file__).resolve().parents[1] / "docs" / "reproducing.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def recipes(text: str) -> list[str]:
    """The `hopkur` commands of the fenced code blocks of `text`, continuation lines
    joined and comments dropped."""
    commands = []
    for block in FENCE.findall(text):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("$ "):
                line = line[2:]
            if line.startswith("hopkur "):
                commands.append(" ".join(line.split()))
    return commands


RECIPES = recipes(PAGE.read_text(encoding="utf-8"))


def _subparser(name: str):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name]  # pyright: ignore


def test_the_page_has_recipes():
    assert len(RECIPES) >= 2
    assert {shlex.split(r)[1] for r in RECIPES} >= {"classify", "edit"}


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_parses(recipe, capsys):
    """Every flag of the recipe exists and every value is accepted by the parser."""
    args = shlex.split(recipe)[1:]
    try:
        namespace = build_parser().parse_args(args)
    except SystemExit as e:
        error = capsys.readouterr().err.strip().splitlines()[-1:]
        pytest.fail(f"`{recipe}` is refused by the parser: {error}")
        raise AssertionError from e
    assert namespace.command == args[0]


# The reductions appended to a recipe (argparse keeps the last value of a flag); only
# the flags the command has are appended.
SMALL = {
    "--steps": "2",
    "--associative-steps": "2",
    "--pretrain-steps": "2",
    "--batch-size": "8",
    "--pretrain-batch-size": "8",
    "--train-limit": "40",
    "--test-limit": "20",
    "--eval-every": "0",
    "--max-steps": "64",
}
# --x64: the test session enables float64 globally (conftest.py), as --x64 does.
SWITCHES = ("--no-figures", "--quiet", "--overwrite", "--x64")


def _fake_mnist(folder: Path) -> Path:
    """Four IDX files of 28×28 images, 40 training and 20 test images, every digit."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array, code in (("images", images, 3), ("labels", labels, 1)):
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
            header += struct.pack(f">{array.ndim}I", *array.shape)
            path = folder / f"{prefix}-{kind}-idx{code}-ubyte"
            path.write_bytes(header + array.tobytes())
    return folder


def reduced(recipe: str, out: Path, mnist: Path) -> list[str]:
    """The recipe's arguments with the steps, data and output cut down."""
    args = shlex.split(recipe)[1:]
    flags = {s for a in _subparser(args[0])._actions for s in a.option_strings}
    args = [str(mnist) if a.startswith("~/") else a for a in args]
    for flag, value in SMALL.items():
        if flag in flags:
            args += [flag, value]
    args += [s for s in SWITCHES if s in flags]
    return [*args, "--out", str(out)]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs(recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HOPKUR_CACHE", str(tmp_path / "cache"))
    args = reduced(recipe, tmp_path / "out", _fake_mnist(tmp_path / "mnist"))
    assert main(args) == 0, f"`{recipe}` (reduced: {shlex.join(args)}) failed"
    assert (tmp_path / "out" / "COMPLETE").exists()
