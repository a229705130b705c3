"""Tests of the data sets, loaders, pattern generators and encoders in `hopkur.data`."""

import gzip
import struct

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from hopkur import corrupt_patterns as corrupt
from hopkur.data.digits import load_digits
from hopkur.data.encoders import (
    encode_hopfield,
    encode_oscillators,
    reference_oscillator,
)
from hopkur.data.mnist import (
    IDXFormatError,
    load_idx,
    load_mnist,
    MNISTFormatError,
    MNISTNotFoundError,
)
from hopkur.data.patterns import (
    hebbian_weights,
    overlap,
    random_binary_patterns,
)


# --------------------------------------------------------------------------------------
# Digits


def _sorted_rows(images, labels):
    rows = np.concatenate([images, labels[:, None].astype(np.float32)], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def test_digits_split_sizes_and_partition():
    train_x, train_y = load_digits("train")
    test_x, test_y = load_digits("test")
    all_x, all_y = load_digits("all")
    assert train_x.shape == (1346, 64) and train_y.shape == (1346,)
    assert test_x.shape == (451, 64) and test_y.shape == (451,)
    assert all_x.shape == (1797, 64) and all_y.shape == (1797,)
    # train ∪ test is the whole data set, as a multiset of (image, label) rows.
    union = _sorted_rows(
        np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    )
    np.testing.assert_array_equal(union, _sorted_rows(all_x, all_y))


def test_digits_stratified():
    _, all_y = load_digits("all")
    _, train_y = load_digits("train")
    _, test_y = load_digits("test")
    all_counts = np.bincount(all_y, minlength=10)
    test_counts = np.bincount(test_y, minlength=10)
    train_counts = np.bincount(train_y, minlength=10)
    assert np.all(train_counts > 0) and np.all(test_counts > 0)
    np.testing.assert_array_equal(train_counts + test_counts, all_counts)
    np.testing.assert_array_equal(test_counts, np.floor(all_counts / 4 + 0.5))


def test_digits_deterministic_and_not_trivial():
    x1, y1 = load_digits("test")
    x2, y2 = load_digits("test")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    # Fresh copies: mutating one result does not change the next.
    x1[:] = -1.0
    x3, _ = load_digits("test")
    np.testing.assert_array_equal(x3, x2)
    # The test split is a random draw, not the last quarter of each class.
    all_x, all_y = load_digits("all")
    last = np.concatenate([all_x[all_y == c][-len(x2[y2 == c]) :] for c in range(10)])
    assert not np.array_equal(_sorted_rows(last, np.sort(y2)), _sorted_rows(x2, y2))


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_digits_dtypes_and_range(split):
    images, labels = load_digits(split)
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert images.min() == 0.0 and images.max() == 1.0
    # Raw intensities were integers 0..16.
    np.testing.assert_array_equal(images * 16, np.round(images * 16))
    assert set(np.unique(labels).tolist()) == set(range(10))


def test_digits_classes_filter():
    images, labels = load_digits("train")
    sub_images, sub_labels = load_digits("train", classes=[3, 1])
    keep = (labels == 1) | (labels == 3)
    np.testing.assert_array_equal(sub_images, images[keep])
    np.testing.assert_array_equal(sub_labels, labels[keep])
    assert set(sub_labels.tolist()) == {1, 3}
    _, labels_np = load_digits("test", classes=np.array([7]))
    assert labels_np.size > 0 and np.all(labels_np == 7)


def test_digits_errors():
    with pytest.raises((ValueError, TypeError)):
        load_digits("validation")  # pyright: ignore
    with pytest.raises(ValueError, match="only digits 0..9"):
        load_digits("train", classes=[1, 10])
    with pytest.raises(ValueError, match="at least one digit"):
        load_digits("train", classes=[])
    with pytest.raises((ValueError, TypeError)):
        load_digits("train", classes=[1.5])  # pyright: ignore


# --------------------------------------------------------------------------------------
# IDX / MNIST


_TYPE_BYTES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def _idx_bytes(array: np.ndarray) -> bytes:
    """An independent IDX writer: magic, big-endian sizes, big-endian data."""
    code = _TYPE_BYTES[array.dtype.str[1:]]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path, data: bytes, compress: bool):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _make_mnist(directory, prefix, n, *, compress, labels=None, n_labels=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    if labels is None:
        labels = rng.integers(0, 10, size=n if n_labels is None else n_labels)
    labels = np.asarray(labels, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write(
        directory / f"{prefix}-images-idx3-ubyte{suffix}", _idx_bytes(images), compress
    )
    _write(
        directory / f"{prefix}-labels-idx1-ubyte{suffix}", _idx_bytes(labels), compress
    )
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = _write(tmp_path / "a.idx", _idx_bytes(array), compress)
    out = load_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    out1 = load_idx(str(_write(tmp_path / "b.idx", _idx_bytes(array[0, 0]), compress)))
    np.testing.assert_array_equal(out1, array[0, 0])


def test_idx_gzip_detected_by_magic_not_suffix(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_no_suffix = _write(tmp_path / "plain-name", _idx_bytes(array), True)
    raw_with_suffix = _write(tmp_path / "raw.gz", _idx_bytes(array), False)
    np.testing.assert_array_equal(load_idx(gz_no_suffix), array)
    np.testing.assert_array_equal(load_idx(raw_with_suffix), array)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("split,prefix", [("train", "train"), ("test", "t10k")])
def test_load_mnist(tmp_path, split, prefix, compress):
    images, labels = _make_mnist(tmp_path, prefix, 7, compress=compress)
    out_images, out_labels = load_mnist(tmp_path, split)
    assert out_images.shape == (7, 784) and out_images.dtype == np.float32
    assert out_labels.shape == (7,) and out_labels.dtype == np.int32
    assert out_images.min() >= 0.0 and out_images.max() <= 1.0
    np.testing.assert_allclose(
        out_images, images.reshape(7, 784).astype(np.float32) / 255, rtol=1e-6
    )
    np.testing.assert_array_equal(out_labels, labels)


def _one_line(excinfo, name):
    message = str(excinfo.value)
    assert "\n" not in message
    assert name in message


def test_mnist_missing_files(tmp_path):
    with pytest.raises(MNISTNotFoundError) as excinfo:
        load_mnist(tmp_path / "nowhere")
    assert isinstance(excinfo.value, FileNotFoundError)
    _one_line(excinfo, "nowhere")

    with pytest.raises(MNISTNotFoundError) as excinfo:
        load_mnist(tmp_path, "test")
    _one_line(excinfo, "t10k-images-idx3-ubyte.gz")
    assert "t10k-images-idx3-ubyte," in str(excinfo.value)

    # Images present, labels missing: the message names the label files tried.
    _make_mnist(tmp_path, "train", 3, compress=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MNISTNotFoundError) as excinfo:
        load_mnist(tmp_path, "train")
    _one_line(excinfo, "train-labels-idx1-ubyte.gz")

    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "absent-file")


@pytest.mark.parametrize("compress", [False, True])
def test_idx_format_errors(tmp_path, compress):
    good = _idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    cases = {
        "bad-magic": (b"\x01" + good[1:], "not an IDX file"),
        "bad-type": (good[:2] + b"\x07" + good[3:], "not an IDX file"),
        "tiny": (good[:3], "truncated"),
        "short-header": (good[:9], "truncated"),
        "short-data": (good[:-1], "truncated"),
        "long-data": (good + b"\x00", "longer than its header"),
    }
    for name, (data, match) in cases.items():
        path = _write(tmp_path / name, data, compress)
        with pytest.raises(IDXFormatError, match=match) as excinfo:
            load_idx(path)
        assert isinstance(excinfo.value, ValueError)
        _one_line(excinfo, name)


def test_idx_truncated_gzip(tmp_path):
    data = gzip.compress(_idx_bytes(np.arange(1000, dtype=np.int32)))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IDXFormatError, match="gzip") as excinfo:
        load_idx(path)
    _one_line(excinfo, "cut.gz")


def test_mnist_content_errors(tmp_path):
    mismatch = tmp_path / "mismatch"
    mismatch.mkdir()
    _make_mnist(mismatch, "train", 5, compress=False, n_labels=4)
    with pytest.raises(MNISTFormatError, match="5 images but") as excinfo:
        load_mnist(mismatch)
    _one_line(excinfo, "train-labels-idx1-ubyte")

    bad_labels = tmp_path / "bad_labels"
    bad_labels.mkdir()
    _make_mnist(bad_labels, "train", 3, compress=True, labels=[1, 12, 3])
    with pytest.raises(MNISTFormatError, match=r"outside 0\.\.9: \[12\]") as excinfo:
        load_mnist(bad_labels)
    assert isinstance(excinfo.value, ValueError)
    _one_line(excinfo, "train-labels-idx1-ubyte.gz")

    bad_shape = tmp_path / "bad_shape"
    bad_shape.mkdir()
    _make_mnist(bad_shape, "train", 3, compress=False)
    _write(
        bad_shape / "train-images-idx3-ubyte",
        _idx_bytes(np.zeros((3, 784), np.uint8)),
        False,
    )
    with pytest.raises(MNISTFormatError, match="rows, cols") as excinfo:
        load_mnist(bad_shape)
    _one_line(excinfo, "train-images-idx3-ubyte")

    with pytest.raises((ValueError, TypeError)):
        load_mnist(bad_shape, "validation")  # pyright: ignore


# --------------------------------------------------------------------------------------
# Patterns


def test_random_binary_patterns():
    patterns = random_binary_patterns(50, 40, key=jr.key(0))
    assert patterns.shape == (50, 40)
    assert patterns.dtype == jax.dtypes.canonicalize_dtype(float)
    assert set(np.unique(np.asarray(patterns)).tolist()) == {-1.0, 1.0}
    assert abs(float(jnp.mean(patterns))) < 0.05  # 2000 signs: std of mean ≈ 0.022
    again = random_binary_patterns(50, 40, key=jr.key(0))
    other = random_binary_patterns(50, 40, key=jr.key(1))
    assert jnp.array_equal(patterns, again)
    assert not jnp.array_equal(patterns, other)
    p32 = random_binary_patterns(2, 3, dtype=jnp.float32, key=jr.key(0))
    assert p32.dtype == jnp.float32
    with pytest.raises(ValueError, match="floating dtype"):
        random_binary_patterns(2, 3, dtype=jnp.int32, key=jr.key(0))
    with pytest.raises(ValueError, match="num_units"):
        random_binary_patterns(2, 0, key=jr.key(0))


def test_hebbian_weights_matches_definition():
    patterns = random_binary_patterns(4, 9, key=jr.key(2))
    weights = np.asarray(hebbian_weights(patterns))
    xi = np.asarray(patterns)
    expected = np.zeros((9, 9))
    for i in range(9):
        for j in range(9):
            if i != j:
                expected[i, j] = sum(xi[mu, i] * xi[mu, j] for mu in range(4)) / 9
    np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(weights, weights.T)
    assert np.all(np.diag(weights) == 0)
    assert np.any(weights != 0)
    # Integer patterns give the default floating dtype.
    int_weights = hebbian_weights(np.asarray(patterns, dtype=np.int8))
    assert int_weights.dtype == jax.dtypes.canonicalize_dtype(float)
    assert jnp.allclose(int_weights, weights)


def test_hebbian_patterns_are_fixed_points():
    patterns = random_binary_patterns(5, 200, key=jr.key(3))
    weights = hebbian_weights(patterns)
    recalled = jnp.sign(patterns @ weights.T)
    assert jnp.array_equal(recalled, patterns)
    # A corrupted pattern is pulled back in one synchronous step at this low load.
    noisy = corrupt(patterns, 0.1, key=jr.key(4))
    assert not jnp.array_equal(noisy, patterns)
    assert jnp.array_equal(jnp.sign(noisy @ weights.T), patterns)


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.1, 0.25, 0.5, 1.0])
def test_corrupt_flips_exact_fraction(fraction):
    patterns = random_binary_patterns(6, 200, key=jr.key(5))
    noisy = corrupt(patterns, fraction, key=jr.key(6))
    assert noisy.shape == patterns.shape and noisy.dtype == patterns.dtype
    flips = jnp.sum(noisy != patterns, axis=-1)
    assert jnp.all(flips == round(fraction * 200))
    assert jnp.all(jnp.abs(noisy) == 1)
    if 0 < fraction < 1:
        # Independent choices per pattern.
        flipped = noisy != patterns
        assert not all(jnp.array_equal(flipped[0], f) for f in flipped[1:])


def test_corrupt_under_jit_and_vmap():
    pattern = random_binary_patterns(1, 30, key=jr.key(7))[0]
    fractions = jnp.array([0.0, 0.1, 0.5, 0.9])
    keys = jr.split(jr.key(8), 4)
    noisy = jax.jit(jax.vmap(lambda f, k: corrupt(pattern, f, key=k)))(fractions, keys)
    flips = jnp.sum(noisy != pattern[None], axis=-1)
    assert jnp.array_equal(flips, jnp.round(fractions * 30).astype(flips.dtype))
    eager = corrupt(pattern, 0.5, key=keys[2])
    assert jnp.array_equal(eager, noisy[2])


def test_corrupt_errors():
    patterns = random_binary_patterns(2, 10, key=jr.key(9))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        corrupt(patterns, 1.5, key=jr.key(0))
    with pytest.raises(eqx.EquinoxRuntimeError):
        corrupt(patterns, jnp.array(-0.1), key=jr.key(0))
    with pytest.raises((ValueError, TypeError)):
        corrupt(patterns, jnp.array([0.1, 0.2]), key=jr.key(0))


def test_overlap():
    patterns = random_binary_patterns(3, 50, key=jr.key(10))
    m = overlap(patterns[1], patterns)
    assert m.shape == (3,)
    assert m[1] == 1.0 and overlap(-patterns[1], patterns)[1] == -1.0
    assert jnp.allclose(m, patterns @ patterns[1] / 50, rtol=0, atol=1e-12)
    scaled = 0.5 * patterns[2]
    assert overlap(scaled, patterns)[2] == 1.0
    assert overlap(scaled, patterns, binarise=False)[2] == 0.5
    x32 = patterns[0].astype(jnp.float32)
    assert overlap(x32, patterns).dtype == jnp.float32
    with pytest.raises((ValueError, TypeError)):
        overlap(patterns[0, :10], patterns)


# --------------------------------------------------------------------------------------
# Encoders


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_encode_hopfield(dtype):
    pixels = jnp.linspace(0, 1, 6, dtype=dtype)
    state = encode_hopfield(pixels, 10)
    assert state.shape == (10,) and state.dtype == dtype
    assert jnp.array_equal(state[:6], pixels)
    assert jnp.all(state[6:] == 0)
    assert jnp.array_equal(encode_hopfield(pixels, 6), pixels)
    int_state = encode_hopfield(np.arange(3, dtype=np.uint8), 4)
    assert int_state.dtype == jax.dtypes.canonicalize_dtype(float)
    with pytest.raises(ValueError, match="at least the number of pixels 6"):
        encode_hopfield(pixels, 5)
    with pytest.raises((ValueError, TypeError)):
        encode_hopfield(jnp.zeros((2, 3), dtype), 10)


_EDGE_PIXELS = [-0.5, 0.0, 0.25, 0.5, 1.0, 1.5]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("dim", [2, 5])
def test_encode_oscillators_values(dtype, dim):
    pixels = jnp.array(_EDGE_PIXELS, dtype=dtype)
    states_jax = encode_oscillators(pixels, 9, dim)
    assert states_jax.shape == (9, dim) and states_jax.dtype == dtype
    states = np.asarray(states_jax)
    assert not np.any(np.isnan(states))
    eps = float(np.finfo(dtype).eps)
    norms = np.sqrt(np.sum(states.astype(np.float64) ** 2, axis=-1))
    assert np.all(np.abs(norms - 1) <= 4 * eps)
    f = 2 * np.clip(np.array(_EDGE_PIXELS), 0, 1) - 1
    e1 = np.asarray(reference_oscillator(dim, dtype=dtype))
    np.testing.assert_allclose(states[:6] @ e1, f, rtol=0, atol=10 * eps)
    assert np.all(states[:6, 1] >= 0)
    np.testing.assert_allclose(states[:6, 1], np.sqrt(1 - f**2), rtol=0, atol=10 * eps)
    assert np.all(states[:6, 2:] == 0)
    np.testing.assert_array_equal(states[6:], np.broadcast_to(e1, (3, dim)))


def test_encode_oscillators_fill_array():
    pixels = jnp.array([0.0, 1.0])
    fill = jnp.array([[0.0, 2.0, 0.0], [3.0, 0.0, 4.0]], dtype=jnp.float32)
    states = encode_oscillators(pixels, 4, 3, fill=fill)
    assert states.dtype == pixels.dtype
    expected = jnp.array([[0.0, 1.0, 0.0], [0.6, 0.0, 0.8]])
    assert jnp.allclose(states[2:], expected, rtol=0, atol=1e-12)
    with pytest.raises((ValueError, TypeError)):
        encode_oscillators(pixels, 4, 3, fill=jnp.ones((3, 3)))
    with pytest.raises(eqx.EquinoxRuntimeError):
        encode_oscillators(pixels, 4, 3, fill=jnp.zeros((2, 3)))
    with pytest.raises((ValueError, TypeError)):
        encode_oscillators(pixels, 4, 3, fill="random")  # pyright: ignore


def test_encode_oscillators_errors():
    pixels = jnp.zeros(5)
    with pytest.raises(ValueError, match="at least the number of pixels"):
        encode_oscillators(pixels, 4, 2)
    with pytest.raises(ValueError, match="dim"):
        encode_oscillators(pixels, 6, 1)
    with pytest.raises(ValueError, match="dim"):
        reference_oscillator(1)
    assert jnp.array_equal(reference_oscillator(4), jnp.array([1.0, 0.0, 0.0, 0.0]))


def test_encoders_jit_vmap_grad():
    images = jr.uniform(jr.key(11), (3, 6), minval=-0.5, maxval=1.5)
    images = images.at[0, :3].set(jnp.array([0.0, 1.0, 0.25]))

    osc = jax.jit(encode_oscillators, static_argnums=(1, 2))
    looped = np.stack([np.asarray(encode_oscillators(p, 8, 3)) for p in images])
    jitted = np.stack([np.asarray(osc(p, 8, 3)) for p in images])
    batched = np.asarray(jax.jit(jax.vmap(lambda p: osc(p, 8, 3)))(images))
    assert batched.shape == (3, 8, 3)
    np.testing.assert_allclose(jitted, looped, rtol=0, atol=1e-12)
    np.testing.assert_allclose(batched, looped, rtol=0, atol=1e-12)

    hop = jax.jit(encode_hopfield, static_argnums=1)
    batched_h = np.asarray(jax.vmap(lambda p: encode_hopfield(p, 8))(images))
    looped_h = np.stack([np.asarray(hop(p, 8)) for p in images])
    np.testing.assert_array_equal(batched_h, looped_h)

    # Gradients stay finite at the boundary pixels 0 and 1 (sqrt at 0).
    grad = jax.grad(lambda p: jnp.sum(encode_oscillators(p, 6, 3)[:, 1]))(images[0])
    grad = np.asarray(grad)
    assert np.all(np.isfinite(grad))
    # Inside (0, 1): d/dp sqrt(1 - f^2) = -2 f / sqrt(1 - f^2) with f = 2p - 1.
    f = 2 * 0.25 - 1
    np.testing.assert_allclose(grad[2], -2 * f / np.sqrt(1 - f**2), rtol=1e-10)
