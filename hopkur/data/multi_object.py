r"""Generated multi-object images with instance masks, for unsupervised object
discovery (AKOrN's binding experiment). Plain NumPy; nothing is downloaded.

Two data sets, each a function returning `(images, masks)`:

- [`hopkur.data.tetrominoes_like`][]: 32×32 RGB images holding 3 non-overlapping
  tetromino pieces, each one of the 19 fixed tetrominoes (the 7 pieces in all their
  distinct rotations, no reflections), made of 4×4-pixel squares and placed at any
  pixel position where it fits; each piece has its own saturated colour (HSV with
  saturation 1, value in $[0.7, 1]$, hues at least 36° apart within an image) on a black
  background. Pieces may touch but never share a pixel. Every piece covers 64 pixels.
- [`hopkur.data.shapes_like`][]: 40×40 greyscale images (one channel) holding 2 to 4
  hollow shapes (triangle, square, circle, diamond), drawn as 2-pixel-wide outlines at
  one grey level for all shapes, on a darker grey background, with uniform noise of
  ±0.1 added to every pixel: background pixels lie in $[0.3, 0.5]$ and outline pixels in
  $[0.8, 1]$, so a pixel's value says whether it is foreground but not which shape it
  belongs to. Shapes may overlap; the shape drawn last owns the pixels where outlines
  cross (the masks hold what is visible). Every shape keeps at least half of its own
  outline visible.

**Arrays.** `images` is `float32` of shape `(B, H, W, C)` with values in $[0, 1]$ (they
are multiples of 1/255: the generator quantises to 8 bits, the cache stores 8 bits);
`masks` is `int32` of shape `(B, H, W)`, `0` for the background and `1, ..., K` for the
objects, numbered in drawing order.

**Splits.** `"train"`, `"validation"` and `"test"` hold 60,000, 1,000 and 1,000 images
(`SPLIT_SIZES`). Images are generated in chunks of 1,000 (`CHUNK`), chunk $j$ of a split
from its own `numpy.random.Generator` seeded with (seed, data set, split, $j$), so
`n < SPLIT_SIZES[split]` returns a prefix of the full split, and two splits (or two
seeds) never share a random stream.

**Cache.** Each `(data set, split, n, seed)` is saved as an `.npz` file (8-bit arrays,
written atomically: a temporary file, then `os.replace`) in the `multi_object` folder of
hopkur's cache (`$HOPKUR_CACHE`, default `~/.cache/hopkur`) and read back on the next
call. The file name holds a hash of this module's source, so any change to the
generator makes a new file; an unreadable or inconsistent file is regenerated with a
warning.
"""

import functools as ft
import hashlib
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from jaxtyping import Float, Int


#: Images per split.
SPLIT_SIZES = {"train": 60_000, "validation": 1_000, "test": 1_000}

#: Images per generator chunk (a chunk has its own random stream).
CHUNK = 1_000

# Bump when the data for the same arguments change (it enters the random seeds); the
# cache key also holds a hash of this file, so a forgotten bump only costs a new file.
_FORMAT_VERSION = 1

_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
_DATASET_IDS = {"tetrominoes": 0, "shapes": 1}

# Tetrominoes.
_TETRO_SIZE = 32
_TETRO_SQUARE = 4
_TETRO_PIECES = 3
_MIN_HUE_GAP = 0.1  # in turns: 36 degrees

# Shapes.
_SHAPES_SIZE = 40
_SHAPES_MIN, _SHAPES_MAX = 2, 4
_SHAPE_KINDS = ("triangle", "square", "circle", "diamond")
_SHAPE_HALF_WIDTH = (5.0, 8.0)  # half the shape's width, in pixels
_OUTLINE_HALF = 1.0  # half the outline's thickness, in pixels
_BACKGROUND, _OUTLINE, _NOISE = 0.4, 0.9, 0.1
_MIN_VISIBLE = 0.5  # fraction of a shape's own outline left visible


# --------------------------------------------------------------------------------------
# Tetrominoes.
# --------------------------------------------------------------------------------------


@ft.cache
def _tetromino_cells() -> np.ndarray:
    """The 19 fixed tetrominoes: `int` of shape `(19, 4, 2)`, the (row, column) of each
    piece's 4 squares, counted in squares from the piece's top-left corner."""
    free = (
        ((0, 0), (0, 1), (0, 2), (0, 3)),  # I
        ((0, 0), (0, 1), (1, 0), (1, 1)),  # O
        ((0, 0), (0, 1), (0, 2), (1, 1)),  # T
        ((0, 1), (0, 2), (1, 0), (1, 1)),  # S
        ((0, 0), (0, 1), (1, 1), (1, 2)),  # Z
        ((0, 0), (1, 0), (1, 1), (1, 2)),  # J
        ((0, 2), (1, 0), (1, 1), (1, 2)),  # L
    )
    fixed = []
    for piece in free:
        cells = np.array(piece)
        for _ in range(4):
            cells = np.stack([cells[:, 1], -cells[:, 0]], axis=1)  # rotate by 90°
            cells = cells - cells.min(axis=0)
            key = tuple(sorted(map(tuple, cells.tolist())))
            if key not in fixed:
                fixed.append(key)
    assert len(fixed) == 19, "the 19 fixed tetrominoes; please report"
    return np.array(fixed, dtype=np.int64)


def _hsv_to_rgb(hue: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Fully saturated colours: hue in turns, value in [0, 1]; RGB on a last axis."""
    offsets = np.array([0.0, 2.0 / 3.0, 1.0 / 3.0])
    k = (hue[..., None] + offsets) % 1.0
    rgb = np.clip(np.abs(6.0 * k - 3.0) - 1.0, 0.0, 1.0)
    return rgb * value[..., None]


def _distinct_hues(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Hues in turns, at least `_MIN_HUE_GAP` apart on the circle within each row."""
    hues = rng.random(shape)
    while True:
        s = np.sort(hues, axis=1)
        gaps = np.diff(np.concatenate([s, s[:, :1] + 1.0], axis=1), axis=1)
        bad = np.flatnonzero(gaps.min(axis=1) < _MIN_HUE_GAP)
        if bad.size == 0:
            return hues
        hues[bad] = rng.random((bad.size, shape[1]))


def _tetrominoes_chunk(rng: np.random.Generator, count: int):
    """`count` Tetrominoes-like images as `uint8` `(images, masks)`."""
    cells = _tetromino_cells() * _TETRO_SQUARE  # square corners, in pixels
    extents = cells.max(axis=1) + _TETRO_SQUARE  # (19, 2): height and width
    size, k, q = _TETRO_SIZE, _TETRO_PIECES, _TETRO_SQUARE
    squares = np.zeros((count, k, 4, 2), dtype=np.int64)  # each square's corner
    todo = np.arange(count)
    while todo.size:
        m = todo.size
        kinds = rng.integers(0, len(cells), size=(m, k))
        span = size - extents[kinds] + 1  # positions where the piece fits
        corner = (rng.random((m, k, 2)) * span).astype(np.int64)
        placed = corner[:, :, None, :] + cells[kinds]  # (m, k, 4, 2)
        # Two q-by-q squares overlap when both coordinates differ by less than q.
        overlap = np.zeros(m, dtype=bool)
        for i in range(k):
            for j in range(i + 1, k):
                gap = np.abs(placed[:, i, :, None, :] - placed[:, j, None, :, :])
                overlap |= np.all(gap < q, axis=-1).any(axis=(1, 2))
        squares[todo] = placed
        todo = todo[overlap]
    # Paint each square's q * q pixels with its piece's label; squares are disjoint.
    ar = np.arange(q)
    rows = squares[..., 0, None, None] + ar[:, None]  # (count, k, 4, q, 1)
    cols = squares[..., 1, None, None] + ar[None, :]  # (count, k, 4, 1, q)
    labels = np.broadcast_to(
        np.arange(1, k + 1, dtype=np.uint8)[:, None, None, None],
        rows.shape[1:-1] + (q,),
    )
    masks = np.zeros((count, size, size), dtype=np.uint8)
    masks[np.arange(count)[:, None, None, None, None], rows, cols] = labels
    hues = _distinct_hues(rng, (count, k))
    values = 0.7 + 0.3 * rng.random((count, k))
    palette = np.zeros((count, k + 1, 3))
    palette[:, 1:] = _hsv_to_rgb(hues, values)
    palette = np.round(palette * 255.0).astype(np.uint8)
    images = palette[np.arange(count)[:, None, None], masks]
    return images, masks


# --------------------------------------------------------------------------------------
# Shapes.
# --------------------------------------------------------------------------------------


def _shape_outline(kind, half_width, centre, size):
    """Outline membership of each pixel for each shape.

    **Arguments:**

    - `kind`: `int` of shape `(S,)`, an index into `_SHAPE_KINDS`.
    - `half_width`: `float32` of shape `(S,)`.
    - `centre`: `float32` of shape `(S, 2)`, (row, column) of the shape's centre (the
        centroid for a triangle).
    - `size`: the image side.

    **Returns:**

    `bool` of shape `(S, size, size)`.
    """
    axis = np.arange(size, dtype=np.float32)
    dy = axis[None, :, None] - centre[:, 0, None, None]  # (S, size, 1): rows point down
    dx = axis[None, None, :] - centre[:, 1, None, None]  # (S, 1, size)
    out = np.zeros((len(kind), size, size), dtype=bool)
    s3 = np.float32(np.sqrt(3.0))
    for index, name in enumerate(_SHAPE_KINDS):
        (here,) = np.nonzero(kind == index)
        if here.size == 0:
            continue
        y, x, h = dy[here], dx[here], half_width[here, None, None]
        # A level function that is the distance to the centre for a circle, and for a
        # polygon the largest of n.d over its edges' outward normals n, whose level set
        # at the inradius is the polygon's boundary.
        if name == "circle":
            level, radius = np.sqrt(y**2 + x**2), h
        elif name == "square":
            level, radius = np.maximum(np.abs(y), np.abs(x)), h
        elif name == "diamond":  # vertices at the half-width
            level, radius = np.abs(y) + np.abs(x), h  # sqrt(2) n.d, sqrt(2) inradius
        else:  # triangle pointing up, side 2 * half-width, inradius h / sqrt(3)
            level = np.maximum(2 * y, s3 * np.abs(x) - y)  # 2 n.d
            radius = 2 * h / s3
        scale = np.float32(np.sqrt(2.0) if name == "diamond" else 1.0)
        if name == "triangle":
            scale = np.float32(2.0)
        out[here] = np.abs(level - radius) <= scale * _OUTLINE_HALF
    return out


def _shapes_chunk(rng: np.random.Generator, count: int):
    """`count` Shapes-like images as `uint8` `(images, masks)`."""
    size, k = _SHAPES_SIZE, _SHAPES_MAX
    # The top of a triangle lies 2/sqrt(3) half-widths above its centroid.
    reach = np.array([2.0 / np.sqrt(3.0), 1.0, 1.0, 1.0])
    masks = np.zeros((count, size, size), dtype=np.uint8)
    todo = np.arange(count)
    while todo.size:
        m = todo.size
        number = rng.integers(_SHAPES_MIN, _SHAPES_MAX + 1, size=m)
        kind = rng.integers(0, len(_SHAPE_KINDS), size=(m, k))
        low, high = _SHAPE_HALF_WIDTH
        half = low + (high - low) * rng.random((m, k))
        margin = reach[kind] * half + _OUTLINE_HALF
        centre = margin[..., None] + rng.random((m, k, 2)) * (
            size - 1 - 2 * margin[..., None]
        )
        active = np.arange(k)[None, :] < number[:, None]
        image, slot = np.nonzero(active)  # active shapes, image by image
        own = _shape_outline(
            kind[image, slot],
            half[image, slot].astype(np.float32),
            centre[image, slot].astype(np.float32),
            size,
        )
        # The last shape drawn owns a pixel: shapes are painted in slot order.
        label = np.zeros((m, size, size), dtype=np.uint8)
        for j in range(k):
            here = slot == j
            label[image[here]] = np.where(own[here], j + 1, label[image[here]])
        own_count = np.zeros((m, k), dtype=np.int64)
        own_count[image, slot] = np.count_nonzero(own, axis=(1, 2))
        flat = np.arange(m)[:, None, None] * (k + 1) + label
        seen = np.bincount(flat.ravel(), minlength=m * (k + 1)).reshape(m, k + 1)
        seen = seen[:, 1:]
        shown = (seen > 0) & (seen >= _MIN_VISIBLE * own_count)
        ok = np.all(shown | ~active, axis=1)
        masks[todo[ok]] = label[ok]
        todo = todo[~ok]
    noise = rng.random((count, size, size), dtype=np.float32)
    noise = np.float32(2 * _NOISE) * noise - np.float32(_NOISE)
    grey = np.array([_BACKGROUND] + [_OUTLINE] * k, dtype=np.float32)[masks]
    images = np.round(np.clip(grey + noise, 0, 1) * np.float32(255)).astype(np.uint8)
    return images[..., None], masks


# --------------------------------------------------------------------------------------
# Splits and the cache.
# --------------------------------------------------------------------------------------

_GENERATORS = {"tetrominoes": _tetrominoes_chunk, "shapes": _shapes_chunk}
_SHAPES = {"tetrominoes": (_TETRO_SIZE, 3), "shapes": (_SHAPES_SIZE, 1)}


@ft.cache
def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]


def _generate(name: str, split: str, n: int, seed: int):
    generator = _GENERATORS[name]
    images, masks = [], []
    for chunk in range(-(-n // CHUNK)):
        rng = np.random.default_rng(
            [seed, _DATASET_IDS[name], _SPLIT_IDS[split], chunk, _FORMAT_VERSION]
        )
        x, m = generator(rng, CHUNK)
        take = min(CHUNK, n - chunk * CHUNK)
        images.append(x[:take])
        masks.append(m[:take])
    size, channels = _SHAPES[name]
    if not images:
        return (
            np.zeros((0, size, size, channels), np.uint8),
            np.zeros((0, size, size), np.uint8),
        )
    return np.concatenate(images), np.concatenate(masks)


def _cache_path(directory: Path, name: str, split: str, n: int, seed: int) -> Path:
    file = f"{name}-{split}-n{n}-seed{seed}-v{_FORMAT_VERSION}-{_source_hash()}.npz"
    return directory / "multi_object" / file


def _load_cache(path: Path, name: str, n: int):
    """The cached 8-bit arrays, or `None` (with a warning) if unreadable or wrong."""
    if not path.exists():
        return None
    size, channels = _SHAPES[name]
    try:
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
            images, masks = data["images"], data["masks"]
        if images.shape != (n, size, size, channels) or images.dtype != np.uint8:
            raise ValueError(f"unexpected images {images.dtype}{images.shape}")
        if masks.shape != (n, size, size) or masks.dtype != np.uint8:
            raise ValueError(f"unexpected masks {masks.dtype}{masks.shape}")
        if n and masks.max() > max(_TETRO_PIECES, _SHAPES_MAX):
            raise ValueError("mask labels out of range")
    except (
        OSError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        zipfile.BadZipFile,
    ) as error:
        warnings.warn(
            f"cache file {path} is unreadable ({error}); regenerating it.",
            stacklevel=4,
        )
        return None
    return images, masks


def _save_cache(path: Path, images: np.ndarray, masks: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, images=images, masks=masks)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _dataset(caller, name, split, n, seed, cache, cache_dir):
    if split not in SPLIT_SIZES:
        raise ValueError(
            f"`{caller}(split=...)` must be one of {tuple(SPLIT_SIZES)}; got {split!r}."
        )
    size = SPLIT_SIZES[split]
    if n is None:
        n = size
    if not 0 <= n <= size:
        raise ValueError(
            f"`{caller}(n=...)` must be between 0 and {size} (the size of the "
            f"{split!r} split); got {n}."
        )
    if seed < 0:
        raise ValueError(f"`{caller}(seed=...)` must be >= 0; got {seed}.")
    path = None
    if cache:
        from .._cache import cache_dir as default

        directory = Path(cache_dir) if cache_dir is not None else default()
        path = _cache_path(directory, name, split, n, seed)
        loaded = _load_cache(path, name, n)
        if loaded is not None:
            images, masks = loaded
            return _as_float(images), masks.astype(np.int32)
    images, masks = _generate(name, split, n, seed)
    if path is not None:
        _save_cache(path, images, masks)
    return _as_float(images), masks.astype(np.int32)


def _as_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) * np.float32(1.0 / 255.0)


_Split = Literal["train", "validation", "test"]


def tetrominoes_like(
    split: _Split = "train",
    n: int | None = None,
    *,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Float[np.ndarray, "n 32 32 3"], Int[np.ndarray, "n 32 32"]]:
    """Tetrominoes-like images: 3 coloured tetromino pieces on black, 32×32 RGB.

    Each piece is one of the 19 fixed tetrominoes, made of four 4×4-pixel squares, at a
    random pixel position where it fits; the pieces never overlap (they may touch).
    Colours are saturated (HSV saturation 1, value in $[0.7, 1]$), with hues at least
    36° apart within an image. See [`hopkur.data.multi_object`][] for the splits and the
    cache.

    **Arguments:**

    - `split`: `"train"` (60,000 images), `"validation"` (1,000) or `"test"` (1,000).
    - `n`: the number of images, at most the split's size; `None` for all of them. A
        smaller `n` gives a prefix of the full split.
    - `seed`: a non-negative integer; the data are a deterministic function of
        `(split, n, seed)`. (Keyword only argument.)
    - `cache`: read and write the cache; `False` to generate afresh and save nothing.
        (Keyword only argument.)
    - `cache_dir`: the cache folder; defaults to `$HOPKUR_CACHE` or `~/.cache/hopkur`
        (the files go in its `multi_object` subfolder). (Keyword only argument.)

    **Returns:**

    `(images, masks)`: `float32` of shape `(n, 32, 32, 3)` in $[0, 1]$, and `int32` of
    shape `(n, 32, 32)`, `0` for the background and `1, 2, 3` for the pieces. Every
    piece covers 64 pixels, all of its colour; background pixels are black.

    !!! example

        ```python
        images, masks = hopkur.data.tetrominoes_like("test", 100)
        assert (masks.max(axis=(1, 2)) == 3).all()
        ```
    """
    return _dataset("tetrominoes_like", "tetrominoes", split, n, seed, cache, cache_dir)


def shapes_like(
    split: _Split = "train",
    n: int | None = None,
    *,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Float[np.ndarray, "n 40 40 1"], Int[np.ndarray, "n 40 40"]]:
    r"""Shapes-like images: 2 to 4 hollow grey shapes on a noisy grey background,
    40×40, one channel.

    Each image draws its number of shapes uniformly from {2, 3, 4}, and each shape's
    kind uniformly from triangle (equilateral, pointing up), square, circle and diamond,
    its half-width uniformly in [5, 8] pixels and its centre uniformly where it fits.
    Outlines are 2 pixels wide, all at grey level 0.9 on a background at 0.4, and every
    pixel gets uniform noise in $[-0.1, 0.1]$: the grey level tells foreground from
    background but not one shape from another. Shapes may overlap; where outlines
    cross, the shape drawn last (the highest label) owns the pixel, and every shape
    keeps at least half of its own outline visible (images are redrawn until they
    do). See [`hopkur.data.multi_object`][] for the splits and the cache.

    **Arguments:**

    - `split`: `"train"` (60,000 images), `"validation"` (1,000) or `"test"` (1,000).
    - `n`: the number of images, at most the split's size; `None` for all of them. A
        smaller `n` gives a prefix of the full split.
    - `seed`: a non-negative integer; the data are a deterministic function of
        `(split, n, seed)`. (Keyword only argument.)
    - `cache`: read and write the cache; `False` to generate afresh and save nothing.
        (Keyword only argument.)
    - `cache_dir`: the cache folder; defaults to `$HOPKUR_CACHE` or `~/.cache/hopkur`
        (the files go in its `multi_object` subfolder). (Keyword only argument.)

    **Returns:**

    `(images, masks)`: `float32` of shape `(n, 40, 40, 1)` in $[0, 1]$ (background
    pixels in $[0.3, 0.5]$, outline pixels in $[0.8, 1]$), and `int32` of shape
    `(n, 40, 40)`, `0` for the background and `1, ..., K` ($K \le 4$) for the visible
    outline pixels of each shape.
    """
    return _dataset("shapes_like", "shapes", split, n, seed, cache, cache_dir)


def load_objects(
    name: Literal["tetrominoes", "shapes"],
    split: _Split = "train",
    n: int | None = None,
    *,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Float[np.ndarray, "n h w c"], Int[np.ndarray, "n h w"]]:
    """One of the multi-object data sets by name: `"tetrominoes"` is
    [`hopkur.data.tetrominoes_like`][] and `"shapes"` is [`hopkur.data.shapes_like`][];
    the other arguments are theirs.
    """
    if name == "tetrominoes":
        function = tetrominoes_like
    elif name == "shapes":
        function = shapes_like
    else:
        raise ValueError(
            f"`load_objects(name=...)` must be 'tetrominoes' or 'shapes'; got {name!r}."
        )
    return function(split, n, seed=seed, cache=cache, cache_dir=cache_dir)
