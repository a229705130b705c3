"""The generated multi-object data sets (hopkur.data.multi_object): masks against
pixels, object counts, determinism, splits and the cache. Small `n` and `cache=False`
(or a temporary cache folder) throughout."""

import numpy as np
import pytest
import scipy.ndimage

import hopkur.data
from hopkur.data import multi_object


def _tetromino_pattern(piece: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """The cells of one piece's pixel mask, checked to be a union of aligned 4x4
    squares starting at the piece's top-left pixel."""
    rows, cols = np.nonzero(piece)
    crop = piece[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = crop.shape
    assert h % 4 == 0 and w % 4 == 0, crop.shape
    blocks = crop.reshape(h // 4, 4, w // 4, 4).sum(axis=(1, 3))
    assert set(np.unique(blocks).tolist()) <= {0, 16}, "squares are 4x4 and whole"
    return tuple(map(tuple, np.argwhere(blocks == 16).tolist()))


def _edge_connected(cells) -> bool:
    cells = set(cells)
    seen, stack = set(), [next(iter(cells))]
    while stack:
        r, c = stack.pop()
        if (r, c) in seen:
            continue
        seen.add((r, c))
        stack += [
            p for p in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if p in cells
        ]
    return seen == cells


@pytest.mark.parametrize("seed", range(3))
def test_tetrominoes_masks_match_pixels(seed):
    images, masks = hopkur.data.tetrominoes_like("train", 40, seed=seed, cache=False)
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.float32
    assert masks.shape == (40, 32, 32) and masks.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.all(images[masks == 0] == 0.0), "the background is black"
    for image, mask in zip(images, masks):
        assert set(np.unique(mask).tolist()) == {0, 1, 2, 3}
        colours = []
        for k in (1, 2, 3):
            pixels = image[mask == k]
            assert len(pixels) == 64, "4 squares of 4x4 pixels"
            assert np.all(pixels == pixels[0]), "one colour per piece"
            colour = pixels[0]
            assert colour.min() == 0.0 and colour.max() >= 0.7 - 1e-6, "saturated"
            colours.append(colour)
            cells = _tetromino_pattern(mask == k)
            assert len(cells) == 4 and _edge_connected(cells)
        colours = np.array(colours)
        assert (
            np.abs(colours[:, None] - colours[None])
            .sum(-1)[np.triu_indices(3, 1)]
            .min()
            > 0.1
        )


def test_tetrominoes_cover_the_19_fixed_pieces():
    _, masks = hopkur.data.tetrominoes_like("test", 300, seed=1, cache=False)
    patterns = {_tetromino_pattern(m == k) for m in masks for k in (1, 2, 3)}
    # 900 pieces: missing one of 19 equally likely pieces has probability < 1e-19.
    assert len(patterns) == 19
    assert all(_edge_connected(p) for p in patterns)
    # and pieces sit at every row and column offset, not only on a 4-pixel grid
    tops = {np.nonzero(m == k)[0].min() % 4 for m in masks for k in (1, 2, 3)}
    assert tops == {0, 1, 2, 3}


@pytest.mark.parametrize("seed", range(3))
def test_shapes_masks_match_pixels(seed):
    images, masks = hopkur.data.shapes_like("train", 60, seed=seed, cache=False)
    assert images.shape == (60, 40, 40, 1) and images.dtype == np.float32
    assert masks.shape == (60, 40, 40) and masks.dtype == np.int32
    grey = images[..., 0]
    eps = 1e-6
    assert grey[masks > 0].min() >= 0.8 - eps, "outlines are bright"
    assert grey[masks == 0].max() <= 0.5 + eps, "the background is darker"
    assert grey[masks == 0].min() >= 0.3 - eps
    assert grey[masks == 0].std() > 0.03, "the background is noisy"
    counts = masks.max(axis=(1, 2))
    assert counts.min() >= 2 and counts.max() <= 4
    for mask in masks:
        k = mask.max()
        assert set(np.unique(mask).tolist()) == set(range(k + 1)), "labels 1..K"
        # The shape drawn last is never hidden: its outline is closed and encloses
        # background (4-connected), so the shapes are hollow.
        parts = scipy.ndimage.label(mask != k)[1]  # pyright: ignore
        assert parts >= 2


def test_shapes_counts_and_overlaps_occur():
    _, masks = hopkur.data.shapes_like("train", 300, seed=0, cache=False)
    counts = masks.max(axis=(1, 2))
    assert set(counts.tolist()) == {2, 3, 4}
    # Overlaps happen: some shape has lost pixels to a later one, visible as an
    # outline broken where another crosses; at least the counts per object vary.
    sizes = [np.count_nonzero(m == k) for m in masks for k in range(1, m.max() + 1)]
    assert min(sizes) > 0 and max(sizes) > 2 * min(sizes)


@pytest.mark.parametrize(
    "function", [hopkur.data.tetrominoes_like, hopkur.data.shapes_like]
)
def test_deterministic_prefix_and_seeded(function):
    a = function("validation", 30, seed=3, cache=False)
    b = function("validation", 30, seed=3, cache=False)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    prefix = function("validation", 7, seed=3, cache=False)
    for x, y in zip(prefix, a):
        np.testing.assert_array_equal(x, y[:7])
    other = function("validation", 30, seed=4, cache=False)
    assert not np.array_equal(other[0], a[0])


@pytest.mark.parametrize("name", ["tetrominoes", "shapes"])
def test_splits_are_disjoint(name):
    splits = {
        split: hopkur.data.load_objects(name, split, 100, seed=0, cache=False)[0]
        for split in ("train", "validation", "test")
    }
    seen = {}
    for split, images in splits.items():
        for image in images:
            key = image.tobytes()
            assert seen.setdefault(key, split) == split, "an image in two splits"


def test_load_objects_dispatches():
    a = hopkur.data.load_objects("shapes", "test", 5, seed=2, cache=False)
    b = hopkur.data.shapes_like("test", 5, seed=2, cache=False)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_cache_is_written_and_read(tmp_path, monkeypatch):
    monkeypatch.setenv("HOPKUR_CACHE", str(tmp_path))
    images, masks = hopkur.data.tetrominoes_like("test", 12, seed=5)
    files = list((tmp_path / "multi_object").glob("*.npz"))
    assert len(files) == 1 and "tetrominoes-test-n12-seed5" in files[0].name
    assert not list((tmp_path / "multi_object").glob("*.tmp")), "no temporary left"

    def fail(*args):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(multi_object, "_generate", fail)
    again = hopkur.data.tetrominoes_like("test", 12, seed=5)
    np.testing.assert_array_equal(again[0], images)
    np.testing.assert_array_equal(again[1], masks)
    assert again[0].dtype == np.float32 and again[1].dtype == np.int32


def test_corrupt_cache_is_regenerated(tmp_path):
    images, masks = hopkur.data.shapes_like("test", 9, seed=1, cache_dir=tmp_path)
    (path,) = (tmp_path / "multi_object").glob("*.npz")
    for garbage in (b"not an npz file", path.read_bytes()[: path.stat().st_size // 2]):
        path.write_bytes(garbage)
        with pytest.warns(UserWarning, match="regenerating"):
            again = hopkur.data.shapes_like("test", 9, seed=1, cache_dir=tmp_path)
        np.testing.assert_array_equal(again[0], images)
        np.testing.assert_array_equal(again[1], masks)
    # the file was repaired: read without a warning
    hopkur.data.shapes_like("test", 9, seed=1, cache_dir=tmp_path)


def test_wrong_arrays_in_cache_are_regenerated(tmp_path):
    hopkur.data.tetrominoes_like("test", 4, cache_dir=tmp_path)
    (path,) = (tmp_path / "multi_object").glob("*.npz")
    np.savez(path, images=np.zeros((4, 8, 8, 3), np.uint8), masks=np.zeros((4, 8, 8)))
    with pytest.warns(UserWarning, match="regenerating"):
        images, _ = hopkur.data.tetrominoes_like("test", 4, cache_dir=tmp_path)
    assert images.shape == (4, 32, 32, 3)


def test_changing_the_generator_changes_the_cache_file(tmp_path, monkeypatch):
    hopkur.data.shapes_like("test", 3, cache_dir=tmp_path)
    monkeypatch.setattr(multi_object, "_source_hash", lambda: "0123456789")
    hopkur.data.shapes_like("test", 3, cache_dir=tmp_path)
    names = sorted(p.name for p in (tmp_path / "multi_object").glob("*.npz"))
    assert len(names) == 2 and any("0123456789" in n for n in names)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`tetrominoes_like\(n=...\)`"):
        hopkur.data.tetrominoes_like("test", 1001, cache=False)
    with pytest.raises(ValueError, match=r"`shapes_like\(n=...\)`"):
        hopkur.data.shapes_like("train", -1, cache=False)
    with pytest.raises(ValueError, match=r"`shapes_like\(seed=...\)`"):
        hopkur.data.shapes_like("train", 1, seed=-1, cache=False)
    # A bad split or name: ValueError, or TypeError from the tests' runtime type checks
    with pytest.raises((ValueError, TypeError), match="split|Literal"):
        hopkur.data.shapes_like("training", 1, cache=False)  # pyright: ignore
    with pytest.raises((ValueError, TypeError), match="name|Literal"):
        hopkur.data.load_objects("mnist", "test", 1, cache=False)  # pyright: ignore


def test_empty_request():
    images, masks = hopkur.data.shapes_like("test", 0, cache=False)
    assert images.shape == (0, 40, 40, 1) and masks.shape == (0, 40, 40)
