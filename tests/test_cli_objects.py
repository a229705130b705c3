"""`hopkur objects train | eval | segment` with tiny models on tiny stand-in data, and
its bad-input handling (one line, exit code 2, no folder left looking complete)."""

import json

import numpy as np
import pytest

from hopkur.cli import main
from hopkur.experiments.objects import _training as T


def _standin(dataset, split, n, seed=0):
    # A tiny stand-in for the generated data: 3 coloured 8x8 squares on black.
    rng = np.random.default_rng([seed, len(split)])
    n = 16 if n is None else min(n, 16)
    images = np.zeros((n, 32, 32, 3), np.float32)
    masks = np.zeros((n, 32, 32), np.int32)
    for i in range(n):
        for k, (r, c) in enumerate(
            rng.permutation([(0, 0), (0, 16), (16, 0), (16, 16)])[:3]
        ):
            images[i, r : r + 8, c : c + 8] = rng.uniform(0.3, 1.0, 3)
            masks[i, r : r + 8, c : c + 8] = k + 1
    return images, masks


TINY = [
    "--channels",
    "8",
    "--dim",
    "4",
    "--steps",
    "1",
    "--heads",
    "2",
    "--batch",
    "4",
    "--train-steps",
    "3",
    "--eval-every",
    "3",
    "--eval-size",
    "4",
    "--train-size",
    "16",
    "--checkpoint-every",
    "2",
    "--quiet",
]


def _write_run(folder, **changes):
    # A run folder as `objects train` leaves it, without training (fast).
    import equinox as eqx
    import jax.numpy as jnp
    import jax.random as jr

    from hopkur.commands._folder import MARKER

    config = {
        **T.DEFAULTS,
        "task": "objects",
        "channels": 8,
        "dim": 4,
        "steps": 1,
        "heads": 2,
        **changes,
    }
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("{}")
    (folder / "config.json").write_text(json.dumps(config))
    model = T.build_model(config, key=jr.key(0), dtype=jnp.float32)
    eqx.tree_serialise_leaves(folder / "model.eqx", model)
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _write_run(tmp_path_factory.mktemp("objects") / "run")


@pytest.fixture(autouse=True)
def standin_data(monkeypatch):
    monkeypatch.setattr(T, "load_data", _standin)


@pytest.mark.slow
def test_train_resume_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["objects", "train", "--out", str(out), *TINY]) == 0
    for name in (
        "config.json",
        "model.eqx",
        "train_state.eqx",
        "metrics.json",
        "history.json",
        "COMPLETE",
    ):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_steps"] == 3 and 0 <= metrics["val_mbo"] <= 1
    assert json.loads((out / "config.json").read_text())["task"] == "objects"
    assert main(["objects", "train", "--out", str(out), "--resume", "--quiet"]) == 0
    capsys.readouterr()
    code = main(
        [
            "objects",
            "train",
            "--out",
            str(out),
            "--resume",
            "--channels",
            "16",
            "--quiet",
        ]
    )
    assert code == 2 and "other settings" in capsys.readouterr().err
    dest = tmp_path / "eval"
    code = main(
        [
            "objects",
            "eval",
            "--checkpoint",
            str(out),
            "--out",
            str(dest),
            "--n",
            "4",
            "--steps",
            "1,2",
            "--quiet",
        ]
    )
    assert code == 0
    m = json.loads((dest / "metrics.json").read_text())
    assert [r["steps"] for r in m["rows"]] == [1, 2]
    assert set(m["references"]) == {"colour", "position"}
    for v in (m["fg_ari"], m["references"]["colour"]["fg_ari"]):
        assert -1 <= v <= 1
    assert (dest / "COMPLETE").exists()


def test_segment_writes_masks_and_figure(checkpoint, tmp_path, capsys):
    out = checkpoint
    images, _ = _standin("tetrominoes", "test", 3)
    path = tmp_path / "images.npy"
    np.save(path, images)
    dest = tmp_path / "seg"
    code = main(
        [
            "objects",
            "segment",
            "--images",
            str(path),
            "--checkpoint",
            str(out),
            "--out",
            str(dest),
            "--clusters",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    masks = np.load(dest / "masks.npy")
    assert masks.shape == (3, 32, 32) and np.issubdtype(masks.dtype, np.integer)
    assert masks.min() >= 0 and masks.max() < 3
    assert (dest / "segments.png").stat().st_size > 0 and (dest / "COMPLETE").exists()


def test_segment_with_the_shipped_checkpoint(tmp_path, capsys):
    # No --checkpoint: the small trained model shipped in hopkur/checkpoints; its
    # masks must segment the stand-in squares better than chance.
    from hopkur.experiments.objects import fg_ari

    model, config = T.load_shipped_model()
    images, true = _standin(config["dataset"], "test", 4)
    path = tmp_path / "images.npy"
    np.save(path, images)
    dest = tmp_path / "seg"
    code = main(["objects", "segment", "--images", str(path), "--out", str(dest)])
    assert code == 0
    masks = np.load(dest / "masks.npy")
    assert masks.shape == true.shape and (dest / "COMPLETE").exists()
    assert fg_ari(true, masks) > 0.5


@pytest.mark.parametrize(
    "array, flags, fragment",
    [
        (np.zeros((2, 32, 32), np.float32), [], "rank 4"),
        (np.zeros((2, 32, 32, 1), np.float32), [], "3 channel"),
        (np.zeros((2, 40, 40, 3), np.float32), [], "32x32"),
        (np.full((2, 32, 32, 3), 1.5, np.float32), [], "[0, 1]"),
        (np.full((2, 32, 32, 3), np.nan, np.float32), [], "non-finite"),
        (np.zeros((2, 32, 32, 3), np.float32), ["--clusters", "0"], "at least 1"),
    ],
)
def test_segment_bad_input(checkpoint, tmp_path, capsys, array, flags, fragment):
    out = checkpoint
    path = tmp_path / "bad.npy"
    np.save(path, array)
    dest = tmp_path / "seg"
    code = main(
        [
            "objects",
            "segment",
            "--images",
            str(path),
            "--checkpoint",
            str(out),
            "--out",
            str(dest),
            *flags,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and fragment in err
    assert err.startswith("hopkur objects: error:")
    assert not dest.exists()


def test_segment_refuses_another_models_checkpoint(checkpoint, tmp_path, capsys):
    out = checkpoint
    images, _ = _standin("tetrominoes", "test", 2)
    path = tmp_path / "images.npy"
    np.save(path, images)
    # a folder of another command
    other = tmp_path / "sudoku"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model": "akorn", "channels": 8}))
    (other / "model.eqx").write_bytes(b"x")
    # an objects run whose checkpoint belongs to other settings
    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    config = json.loads((out / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps({**config, "channels": 16}))
    (mismatched / "model.eqx").write_bytes((out / "model.eqx").read_bytes())
    for folder, fragment in (
        (other, "not a `hopkur objects` run"),
        (mismatched, "of another model"),
        (tmp_path / "missing", "no such run folder"),
    ):
        dest = tmp_path / "seg"
        code = main(
            [
                "objects",
                "segment",
                "--images",
                str(path),
                "--checkpoint",
                str(folder),
                "--out",
                str(dest),
            ]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and fragment in err, err
        assert not dest.exists()


def test_segment_rejects_unreadable_files(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy")
    both = tmp_path / "both.npz"
    np.savez(both, a=np.zeros(2), b=np.zeros(2))
    for path, fragment in (
        (bad, "not a NumPy"),
        (tmp_path / "none.npy", "no such"),
        (both, "several arrays"),
    ):
        code = main(
            [
                "objects",
                "segment",
                "--images",
                str(path),
                "--out",
                str(tmp_path / "seg"),
            ]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and fragment in err and len(err.splitlines()) == 1


def test_train_rejects_bad_settings(tmp_path, capsys):
    for flags, fragment in (
        (["--patch", "3"], "must divide"),
        (["--channels", "6"], "multiple of --dim"),
        (["--coupling", "conv", "--kernel-size", "4"], "odd"),
    ):
        dest = tmp_path / "t"
        code = main(["objects", "train", "--out", str(dest), *flags])
        err = capsys.readouterr().err.strip()
        assert code == 2 and fragment in err and len(err.splitlines()) == 1
        assert not dest.exists()
