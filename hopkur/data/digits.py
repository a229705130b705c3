r"""scikit-learn's built-in handwritten digits, with a fixed, stratified split.

The data set ships with scikit-learn (no download): 1797 grey-scale images of 8×8
pixels with integer intensities $0, \dots, 16$, about 180 per digit $0, \dots, 9$. It is
the small, always-available stand-in for MNIST in hopkur's tests, examples and
`hopkur demo`.
"""

import functools as ft
import operator
from collections.abc import Iterable
from typing import Literal

import numpy as np
from jaxtyping import Float, Int


#: Seed of the `numpy.random.Generator` (PCG64) that draws the fixed train/test split.
SPLIT_SEED = 0

#: Fraction of each class put in the test split (rounded half up per class).
TEST_FRACTION = 0.25

#: Number of pixels of one image (8×8).
NUM_PIXELS = 64

#: Largest raw pixel intensity; images are divided by it.
MAX_INTENSITY = 16.0

_SPLITS = ("train", "test", "all")


@ft.cache
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as _sklearn_load_digits

    bunch = _sklearn_load_digits()
    images = np.asarray(bunch.data, dtype=np.float64)  # pyright: ignore
    labels = np.asarray(bunch.target, dtype=np.int64)  # pyright: ignore
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@ft.cache
def _test_mask() -> np.ndarray:
    r"""Boolean mask over the 1797 samples: `True` for the test split.

    For each class (in increasing label order) the sample indices of that class are
    permuted by one shared `np.random.default_rng(SPLIT_SEED)`, and the first
    $\lfloor n_c/4 + 1/2 \rfloor$ of them go to the test split.
    """
    _, labels = _raw()
    rng = np.random.default_rng(SPLIT_SEED)
    mask = np.zeros(labels.shape, dtype=bool)
    for c in np.unique(labels):
        (index,) = np.nonzero(labels == c)
        num_test = int(np.floor(TEST_FRACTION * index.size + 0.5))
        mask[rng.permutation(index)[:num_test]] = True
    mask.setflags(write=False)
    return mask


def _check_classes(classes: Iterable[int | np.integer]) -> np.ndarray:
    try:
        wanted = np.array(sorted({operator.index(c) for c in classes}), dtype=np.int64)
    except TypeError:
        raise ValueError(
            "`load_digits(classes=...)` must be an iterable of integers in 0..9; got "
            f"{classes!r}."
        ) from None
    if wanted.size == 0:
        raise ValueError(
            "`load_digits(classes=...)` must name at least one digit in 0..9; got an "
            "empty collection."
        )
    bad = wanted[(wanted < 0) | (wanted > 9)]
    if bad.size > 0:
        raise ValueError(
            "`load_digits(classes=...)` must contain only digits 0..9; got "
            f"{bad.tolist()}."
        )
    return wanted


def load_digits(
    split: Literal["train", "test", "all"] = "train",
    *,
    classes: Iterable[int | np.integer] | None = None,
) -> tuple[Float[np.ndarray, "n 64"], Int[np.ndarray, " n"]]:
    r"""Loads scikit-learn's 8×8 handwritten digits with a fixed, stratified split.

    Pixel intensities $0, \dots, 16$ are divided by 16, so every pixel lies in
    $[0, 1]$; images are flattened row by row to 64 pixels.

    **The split** is stratified and deterministic: for each class $c$ with $n_c$
    samples, $\lfloor n_c/4 + 1/2 \rfloor$ samples (a test fraction of 0.25, rounded
    half up) are drawn without replacement by `numpy.random.default_rng(0)` and form the
    test split; the rest form the training split. The sizes are

    | split | samples | per class (digits 0, 1, …, 9) |
    |---|---|---|
    | `"train"` | 1346 | 133, 136, 133, 137, 136, 136, 136, 134, 130, 135 |
    | `"test"` | 451 | 45, 46, 44, 46, 45, 46, 45, 45, 44, 45 |
    | `"all"` | 1797 | 178, 182, 177, 183, 181, 182, 181, 179, 174, 180 |

    Samples keep the order of the original data set within each split (no shuffling;
    shuffle batches yourself). A sample's split never depends on `classes`.

    **Arguments:**

    - `split`: `"train"`, `"test"` or `"all"` (both splits, in the original order).
    - `classes`: if given, keep only the samples whose label is in this collection of
        digits (e.g. `(0, 1)`). Labels are *not* renumbered. (Keyword only argument.)

    **Returns:**

    A pair `(images, labels)`: `images` a float32 array of shape `(n, 64)` with values
    in $[0, 1]$, and `labels` an int32 array of shape `(n,)` with values in $0..9$.
    Fresh, writable copies on every call.
    """
    if split not in _SPLITS:
        raise ValueError(
            f"`load_digits(split=...)` must be one of {_SPLITS}; got {split!r}."
        )
    images, labels = _raw()
    if split == "all":
        keep = np.ones(labels.shape, dtype=bool)
    elif split == "test":
        keep = _test_mask()
    else:
        keep = ~_test_mask()
    if classes is not None:
        keep = keep & np.isin(labels, _check_classes(classes))
    out_images = (images[keep] / MAX_INTENSITY).astype(np.float32)
    out_labels = labels[keep].astype(np.int32)
    return out_images, out_labels
