r"""Segmentation by clustering the final states of an object-discovery network
(MODELS.md §7), and the colouring of oscillator states by their principal components.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import ArrayLike, Float, Int, PRNGKeyArray

from ._networks import AbstractObjectNetwork


FEATURES = ("states", "readout")


@eqx.filter_jit
def _batch_features(model, images, keys, steps):
    out = jax.vmap(lambda im, k: model.features(im, key=k, steps=steps))(images, keys)
    return out.states, out.readout


def network_features(
    model: AbstractObjectNetwork,
    images: Float[ArrayLike, "b H W ci"],
    *,
    key: PRNGKeyArray | None = None,
    steps: int | None = None,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """The final states and readout features of many images, batch by batch (the last
    batch padded, so that one compiled function serves every batch).

    **Arguments:**

    - `model`: an [`hopkur.experiments.objects.AbstractObjectNetwork`][].
    - `images`: shape `(B, H, W, C_in)`, values in $[0, 1]$.
    - `key`: a `jax.random.key` for the initial oscillators; `jax.random.key(0)` if
        `None`. Image `i` uses `jax.random.fold_in(key, i)`, so its result does not
        depend on the batch it is in. (Keyword only argument.)
    - `steps`: the number of updates $T$ (default: the trained number). (Keyword only
        argument.)
    - `batch_size`: images per compiled call. (Keyword only argument.)

    **Returns:**

    `(states, readout)`, NumPy arrays of shape `(B, h, w, C)` on the patch grid.
    """
    images = np.asarray(images)
    key = jr.key(0) if key is None else key
    n = images.shape[0]
    states, readout = [], []
    size = max(1, min(batch_size, n))
    for lo in range(0, n, size):
        idx = np.arange(lo, lo + size).clip(max=n - 1)
        keys = jax.vmap(lambda i: jr.fold_in(key, i))(jnp.asarray(idx))
        s, r = _batch_features(model, jnp.asarray(images[idx]), keys, steps)
        count = min(size, n - lo)
        states.append(np.asarray(s)[:count])
        readout.append(np.asarray(r)[:count])
    if not states:
        h, w = model.grid
        empty = np.zeros((0, h, w, model.channels), np.float32)
        return empty, empty
    return np.concatenate(states), np.concatenate(readout)


def upsample(
    labels: Int[ArrayLike, "b h w"] | Float[ArrayLike, "b h w f"], factor: int
) -> np.ndarray:
    """Nearest-neighbour upsampling of per-patch values to pixels: every patch value
    repeated over its `factor × factor` pixels (axes 1 and 2)."""
    labels = np.asarray(labels)
    return np.repeat(np.repeat(labels, factor, axis=1), factor, axis=2)


def _unit_rows(f: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(f, axis=-1, keepdims=True)
    return f / np.maximum(norms, 1e-12)


def segment(
    model: AbstractObjectNetwork,
    images: ArrayLike,
    n_clusters: int,
    *,
    features: Literal["states", "readout"] = "states",
    method: Literal["agglomerative", "kmeans"] = "agglomerative",
    key: PRNGKeyArray | None = None,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> Int[np.ndarray, "b H W"]:
    r"""Segments images by clustering the network's final features (AKOrN's
    evaluation): per image, the feature vectors of the patches (the final oscillator
    states, or the readout features), each scaled to unit norm, are clustered into
    `n_clusters` groups with `hopkur.experiments.objects.cluster_features`, and each
    patch's label is copied to its pixels. Clustering the patches and then upsampling
    is the same as clustering the upsampled pixel features (every patch has the same
    number of pixels), and $p^4$ times cheaper.

    **Arguments:**

    - `model`: an [`hopkur.experiments.objects.AbstractObjectNetwork`][].
    - `images`: shape `(B, H, W, C_in)` with the model's `(H, W, C_in)`, values in
        $[0, 1]$.
    - `n_clusters`: the number of segments per image (objects plus background), at
        least 1.
    - `features`: `"states"` (the final oscillators; for the baseline its
        normalised state) or `"readout"` (AKOrN clusters these). (Keyword only
        argument.)
    - `method`: `"agglomerative"` (average linkage, as AKOrN) or `"kmeans"`.
        (Keyword only argument.)
    - `key`: a `jax.random.key` for the initial oscillators (see
        [`hopkur.experiments.objects.network_features`][]). (Keyword only argument.)
    - `steps`: the number of updates $T$ (default: the trained number). (Keyword only
        argument.)
    - `seed`: the seed of the clustering (k-means). (Keyword only argument.)
    - `batch_size`: images per compiled call. (Keyword only argument.)

    **Returns:**

    Integer masks of shape `(B, H, W)` with values in `[0, n_clusters)`.
    """
    from ._metrics import cluster_features

    images = np.asarray(images)
    check_images("segment", images, model.image_shape)
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer):
        raise ValueError(
            f"`segment(n_clusters=...)` must be an integer; got {n_clusters!r}."
        )
    if n_clusters < 1:
        raise ValueError(f"`segment(n_clusters=...)` must be >= 1; got {n_clusters}.")
    if features not in FEATURES:
        raise ValueError(
            f"`segment(features=...)` must be one of {FEATURES}; got {features!r}."
        )
    states, readout = network_features(
        model, images, key=key, steps=steps, batch_size=batch_size
    )
    f = _unit_rows(states if features == "states" else readout)
    labels = cluster_features(f, int(n_clusters), method=method, seed=seed)
    return upsample(np.asarray(labels), model.patch).astype(np.int64)


def check_images(call: str, images: np.ndarray, shape: tuple[int, int, int]) -> None:
    """Checks a batch of images `(B, H, W, C_in)`: the rank, the image shape, a
    floating dtype and finite values in $[0, 1]$; a `ValueError` naming `call`
    otherwise."""
    if images.ndim != 4:
        raise ValueError(
            f"`{call}(images)` must have rank 4 (B, H, W, C); got shape {images.shape}."
        )
    if tuple(images.shape[1:3]) != shape[:2]:
        raise ValueError(
            f"`{call}(images)` must be {shape[0]}x{shape[1]} images for this model; "
            f"got {images.shape[1]}x{images.shape[2]}."
        )
    if images.shape[3] != shape[2]:
        raise ValueError(
            f"`{call}(images)` must have {shape[2]} channel(s) for this model; got "
            f"{images.shape[3]}."
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"`{call}(images)` must be floating point in [0, 1]; got dtype "
            f"{images.dtype}."
        )
    if images.size and not np.all(np.isfinite(images)):
        raise ValueError(
            f"`{call}(images)` must have finite values in [0, 1]; got "
            f"{int(np.sum(~np.isfinite(images)))} non-finite value(s)."
        )
    if images.size and not (images.min() >= 0 and images.max() <= 1):
        raise ValueError(
            f"`{call}(images)` must have values in [0, 1]; got the range "
            f"[{images.min():g}, {images.max():g}]."
        )


def pca_colours(features: Float[ArrayLike, "b h w f"]) -> Float[np.ndarray, "b h w 3"]:
    """Colours feature maps by their first three principal components, per image:
    the features of all positions are centred, projected on the top three principal
    directions, and each component is rescaled to $[0, 1]$ (a constant component
    becomes 0.5). With fewer than three features, the missing channels are 0.5.

    **Arguments:**

    - `features`: shape `(B, h, w, F)` (e.g. the final oscillator states).

    **Returns:**

    RGB images of shape `(B, h, w, 3)` with values in $[0, 1]$.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 4:
        raise ValueError(
            f"`pca_colours(features)` must have shape (B, h, w, F); got {f.shape}."
        )
    b, h, w, k = f.shape
    out = np.full((b, h, w, 3), 0.5)
    for i in range(b):
        x = f[i].reshape(-1, k)
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        comps = x @ vt[:3].T
        # A deterministic sign: the largest entry of each direction is positive.
        signs = np.sign(vt[:3][np.arange(len(vt[:3])), np.argmax(np.abs(vt[:3]), 1)])
        comps = comps * np.where(signs == 0, 1, signs)
        lo, hi = comps.min(axis=0), comps.max(axis=0)
        span = hi - lo
        scaled = np.where(span > 1e-9, (comps - lo) / np.where(span > 0, span, 1), 0.5)
        out[i, :, :, : comps.shape[1]] = scaled.reshape(h, w, -1)
    return out


def draw_segments(
    model: AbstractObjectNetwork,
    images: np.ndarray,
    masks: np.ndarray,
    *,
    key: PRNGKeyArray,
    steps: int | None = None,
    true_masks: np.ndarray | None = None,
):
    """`segments_figure` of `images` and their predicted `masks`, with the oscillator
    colours computed here: the final states of `model` (from `key`, after `steps`
    updates) coloured by their first three principal components, at pixel
    resolution."""
    states, _ = network_features(model, images, key=key, steps=steps)
    colours = upsample(pca_colours(states), model.patch)
    return segments_figure(images, masks, colours, true_masks)


def segments_figure(
    images: np.ndarray,
    masks: np.ndarray,
    colours: np.ndarray,
    true_masks: np.ndarray | None = None,
):
    """A matplotlib figure with one row per image: the image, its true masks (when
    `true_masks` is given), its predicted segments and the oscillator states coloured
    by their first three principal components (`colours`, RGB at pixel resolution)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = images.shape[0]
    panels = [("image", None), ("segments", masks), ("oscillators (PCA)", None)]
    if true_masks is not None:
        panels.insert(1, ("true masks", true_masks))
    fig, axes = plt.subplots(n, len(panels), figsize=(2 * len(panels), 2 * n))
    axes = np.asarray(axes).reshape(n, len(panels))
    for i in range(n):
        image = images[i]
        shown = image[..., 0] if image.shape[-1] == 1 else image
        for ax, (title, labels) in zip(axes[i], panels):
            if title == "image":
                ax.imshow(shown, cmap="gray", vmin=0, vmax=1)
            elif labels is not None:
                ax.imshow(labels[i], cmap="tab10", vmin=0, vmax=9, interpolation="none")
            else:
                ax.imshow(colours[i], interpolation="none")
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, (title, _) in zip(axes[0], panels):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
