"""A loader for MNIST (and any data set in the IDX format) from files on disk.

hopkur downloads nothing: point `load_mnist` at a directory that
holds the four standard MNIST files (gzip-compressed or not). The same loader reads
Fashion-MNIST, KMNIST and other data sets distributed with the same file names.

**The IDX format.** A file is a 4-byte magic number, `0x00 0x00 <type> <ndim>`,
then `ndim` big-endian 32-bit unsigned sizes, then the data in row-major (C) order,
big-endian. The type byte is one of

| byte | type |
|---|---|
| `0x08` | unsigned byte |
| `0x09` | signed byte |
| `0x0B` | 16-bit integer |
| `0x0C` | 32-bit integer |
| `0x0D` | 32-bit float |
| `0x0E` | 64-bit float |

A file that starts with the gzip magic bytes `1f 8b` is decompressed first, whatever its
name.
"""

import gzip
import os
import zlib
from typing import Literal

import numpy as np
from jaxtyping import Float, Int, Shaped


#: IDX type byte ↦ big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: Prefix of the MNIST file names for each split.
MNIST_PREFIXES = {"train": "train", "test": "t10k"}

_GZIP_MAGIC = b"\x1f\x8b"


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file (bad magic number, truncated, corrupt)."""


class MNISTFormatError(ValueError):
    """Two well-formed IDX files do not make an MNIST split (shapes, counts, labels)."""


class MNISTNotFoundError(FileNotFoundError):
    """An MNIST file is missing from the directory given to `load_mnist`."""


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise IDXFormatError(
            f"`load_idx(path)`: {path} is a corrupt or truncated gzip file ({e})."
        ) from None


def load_idx(path: str | os.PathLike) -> Shaped[np.ndarray, "..."]:
    """Reads one IDX file, raw or gzip-compressed.

    Compression is detected from the file's first two bytes (`1f 8b`), not from its
    name.

    **Arguments:**

    - `path`: the file to read.

    **Returns:**

    A numpy array with the shape stored in the file's header and the native-byte-order
    version of the stored type (`uint8` for MNIST).

    **Raises:**

    - `FileNotFoundError` if `path` does not exist.
    - `IDXFormatError` (a `ValueError`) if the magic number is
        wrong, the type byte is unknown, or the data are shorter or longer than the
        header says.
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IDXFormatError(
            f"`load_idx(path)`: {path} is truncated: {len(data)} bytes, shorter than "
            "the 4-byte magic number."
        )
    zero0, zero1, type_byte, ndim = data[:4]
    if zero0 != 0 or zero1 != 0 or type_byte not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise IDXFormatError(
            f"`load_idx(path)`: {path} is not an IDX file: expected a magic number "
            f"00 00 <type in {known}> <ndim>; got {data[:4].hex(' ')}."
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXFormatError(
            f"`load_idx(path)`: {path} is truncated: the header declares {ndim} "
            f"dimensions ({header_size} header bytes) but the file has {len(data)} "
            "bytes."
        )
    shape = tuple(
        int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4)
    )
    dtype = IDX_DTYPES[type_byte]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        dims = "×".join(str(d) for d in shape) or "scalar"
        raise IDXFormatError(
            f"`load_idx(path)`: {path} is {what}: shape {dims} of {dtype.name} needs "
            f"{expected} data bytes; found {found}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _find(directory: str, prefix: str, kind: Literal["images", "labels"]) -> str:
    rank = 3 if kind == "images" else 1
    names = (
        f"{prefix}-{kind}-idx{rank}-ubyte",
        f"{prefix}-{kind}-idx{rank}-ubyte.gz",
        f"{prefix}-{kind}.idx{rank}-ubyte",
        f"{prefix}-{kind}.idx{rank}-ubyte.gz",
    )
    for name in names:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise MNISTNotFoundError(
        f"`load_mnist(directory)`: no MNIST {kind} file in {directory}; tried "
        f"{', '.join(names)}."
    )


def load_mnist(
    directory: str | os.PathLike, split: Literal["train", "test"] = "train"
) -> tuple[Float[np.ndarray, "n pixels"], Int[np.ndarray, " n"]]:
    """Loads one split of MNIST from the standard IDX files in `directory`.

    The files looked for, in this order, are (for `split="train"`; `"test"` uses the
    prefix `t10k`) `train-images-idx3-ubyte`, then with `.gz`, then the variants
    `train-images.idx3-ubyte[.gz]`; likewise `train-labels-idx1-ubyte` and so on.

    **Arguments:**

    - `directory`: the folder holding the files.
    - `split`: `"train"` (60000 images for MNIST) or `"test"` (10000 images).

    **Returns:**

    A pair `(images, labels)`: `images` a float32 array of shape `(n, rows·cols)`
    (`(n, 784)` for MNIST), flattened row by row and divided by 255, so with values in
    $[0, 1]$; `labels` an int32 array of shape `(n,)` with values in $0..9$.

    **Raises:**

    - `MNISTNotFoundError` (a `FileNotFoundError`) if a file is
        missing; the message lists the names tried.
    - `IDXFormatError` (a `ValueError`) if a file is not valid IDX.
    - `MNISTFormatError` (a `ValueError`) if the images are not
        a 3-dimensional unsigned-byte array, the labels not a 1-dimensional
        unsigned-byte array, their counts differ, or a label is outside $0..9$.
    """
    if split not in MNIST_PREFIXES:
        raise ValueError(
            f"`load_mnist(split=...)` must be 'train' or 'test'; got {split!r}."
        )
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise MNISTNotFoundError(
            f"`load_mnist(directory)`: {directory} is not a directory."
        )
    prefix = MNIST_PREFIXES[split]
    images_path = _find(directory, prefix, "images")
    labels_path = _find(directory, prefix, "labels")
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise MNISTFormatError(
            f"`load_mnist`: {images_path} must hold unsigned bytes of shape "
            f"(n, rows, cols); got {images.dtype.name} of shape {images.shape}."
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise MNISTFormatError(
            f"`load_mnist`: {labels_path} must hold unsigned bytes of shape (n,); got "
            f"{labels.dtype.name} of shape {labels.shape}."
        )
    if images.shape[0] != labels.shape[0]:
        raise MNISTFormatError(
            f"`load_mnist`: {images_path} holds {images.shape[0]} images but "
            f"{labels_path} holds {labels.shape[0]} labels."
        )
    if labels.size > 0 and labels.max() > 9:
        bad = np.unique(labels[labels > 9])
        raise MNISTFormatError(
            f"`load_mnist`: {labels_path} has labels outside 0..9: {bad[:10].tolist()}."
        )
    num = images.shape[0]
    out_images = images.reshape(num, -1).astype(np.float32) / np.float32(255.0)
    return out_images, labels.astype(np.int32)
