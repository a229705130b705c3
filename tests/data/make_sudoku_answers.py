"""Writes `sudoku_shipped_answers.json`: the shipped Sudoku checkpoint's answers.

The file pins what `hopkur.experiments.sudoku_run.load_shipped_model()` and
`hopkur.experiments.sudoku.predict` answer on a few generated boards, so that a change
of the model code (e.g. moving the model between modules, or routing the Kuramoto layer
through the core's AKOrN step) can be checked to give the same answers
(`tests/test_sudoku_model.py::test_shipped_checkpoint_answers`).

Regenerated with the model code of its commit when the shipped checkpoint was replaced
(2026-12-08: 64 channels, the all-cell loss), under the test suite's JAX configuration:

    python tests/data/make_sudoku_answers.py

(The first version was generated with the code before the Sudoku models moved from
`hopkur.nn` to `hopkur.experiments`, commit 7175e6f.) Regenerate it only when the
answers are meant to change.
"""

import json
import sys
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

from hopkur.data.sudoku import sudoku_dataset  # noqa: E402
from hopkur.experiments import sudoku as S, sudoku_run  # noqa: E402


# (split, number of boards, predict settings): in-distribution boards at the training
# length and with test-time extension and voting, and a few hard boards.
CASES = [
    ("test", 6, {"blocks": None, "votes": 1}),
    ("test", 6, {"blocks": 32, "votes": 2}),
    ("hard", 3, {"blocks": 16, "votes": 1}),
]


def answers() -> dict:
    model, _ = sudoku_run.load_shipped_model()
    cases = []
    for split, n, settings in CASES:
        puzzles, _ = sudoku_dataset(split, n, seed=0, cache=False)
        boards, energies = S.predict(model, puzzles, key=jr.key(0), **settings)
        cases.append(
            {
                "split": split,
                **settings,
                "puzzles": ["".join(map(str, p)) for p in puzzles],
                "boards": ["".join(map(str, b)) for b in boards],
                "energies": [float(e) for e in np.asarray(energies)],
            }
        )
    return {"cases": cases}


if __name__ == "__main__":
    out = Path(__file__).with_name("sudoku_shipped_answers.json")
    out.write_text(json.dumps(answers(), indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
