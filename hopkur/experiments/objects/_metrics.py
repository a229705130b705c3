r"""Object-discovery metrics as AKOrN reports them (FG-ARI, MBO), per-image clustering
of features into segments, and the two trivial references (colour alone, position
alone). NumPy and scikit-learn; scikit-learn is imported when first needed."""

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from jaxtyping import ArrayLike, Int


def _masks(caller: str, argument: str, masks: ArrayLike) -> np.ndarray:
    array = np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(
            f"`{caller}({argument}=...)` must have shape (B, H, W); got shape "
            f"{array.shape}."
        )
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise ValueError(
            f"`{caller}({argument}=...)` must hold integer labels; got dtype "
            f"{array.dtype}."
        )
    return array.astype(np.int64)


def _pair(caller: str, true_masks: ArrayLike, pred_masks: ArrayLike):
    true = _masks(caller, "true_masks", true_masks)
    pred = _masks(caller, "pred_masks", pred_masks)
    if true.shape != pred.shape:
        raise ValueError(
            f"`{caller}(pred_masks=...)` must have the shape of `true_masks` "
            f"{true.shape}; got {pred.shape}."
        )
    return true, pred


def _reduce(scores: np.ndarray, per_image: bool):
    if per_image:
        return scores
    valid = scores[~np.isnan(scores)]
    return float(valid.mean()) if valid.size else float("nan")


def fg_ari(
    true_masks: ArrayLike,
    pred_masks: ArrayLike,
    *,
    per_image: bool = False,
) -> float | np.ndarray:
    """Foreground adjusted Rand index: how well predicted segments group the pixels of
    each true object, ignoring the background.

    For each image, the adjusted Rand index
    ([`sklearn.metrics.adjusted_rand_score`](https://scikit-learn.org/stable/modules/generated/sklearn.metrics.adjusted_rand_score.html))
    between the true and predicted labels of its foreground pixels (`true_masks > 0`);
    where those pixels go in the background does not count, nor do the predicted
    labels' values (only which pixels share one). An image whose foreground is a single
    object scores 1 if the prediction keeps it in one segment and 0 otherwise
    (scikit-learn's convention); an image with no foreground has no score (NaN) and is
    left out of the mean.

    **Arguments:**

    - `true_masks`: integer `(B, H, W)`; `0` is background, `1, ..., K` objects (and
        negative labels, if any, are ignored like the background).
    - `pred_masks`: integer `(B, H, W)`, any labels (e.g.
        [`hopkur.experiments.objects.cluster_features`][]).
    - `per_image`: return the `(B,)` scores instead of their mean. (Keyword only
        argument.)

    **Returns:**

    The mean over images with a foreground (NaN if there are none), or the per-image
    scores.
    """
    from sklearn.metrics import adjusted_rand_score

    true, pred = _pair("fg_ari", true_masks, pred_masks)
    scores = np.full(len(true), np.nan)
    for b in range(len(true)):
        fg = true[b] > 0
        if fg.any():
            scores[b] = adjusted_rand_score(true[b][fg], pred[b][fg])
    return _reduce(scores, per_image)


def mbo(
    true_masks: ArrayLike,
    pred_masks: ArrayLike,
    *,
    per_image: bool = False,
) -> float | np.ndarray:
    r"""Mean best overlap: for each true object, the best IoU with any predicted
    segment, averaged over the image's objects, then over images (AKOrN's instance
    MBO).

    The background is not an object and is not scored; predicted segments are taken
    over the whole image, so a segment that spills into the background loses IoU.
    $\mathrm{MBO} = \frac{1}{K}\sum_{k=1}^K \max_s |T_k \cap P_s| / |T_k \cup P_s|$ per
    image, where $T_k$ are the pixels of object $k$ and $P_s$ of segment $s$. Pixels
    with a negative true label are left out of every set. An image with no object has no
    score (NaN) and is left out of the mean.

    **Arguments:**

    - `true_masks`: integer `(B, H, W)`; `0` is background, `1, ..., K` objects.
    - `pred_masks`: integer `(B, H, W)`, any labels.
    - `per_image`: return the `(B,)` scores instead of their mean. (Keyword only
        argument.)

    **Returns:**

    A number in $[0, 1]$ (the mean over images with objects, NaN if none), or the
    per-image scores.
    """
    true, pred = _pair("mbo", true_masks, pred_masks)
    scores = np.full(len(true), np.nan)
    for b in range(len(true)):
        keep = true[b] >= 0
        t, p = true[b][keep], pred[b][keep]
        labels, t_index = np.unique(t, return_inverse=True)
        if not np.any(labels > 0):
            continue
        segments, p_index = np.unique(p, return_inverse=True)
        joint = np.zeros((labels.size, segments.size), dtype=np.int64)
        np.add.at(joint, (t_index, p_index), 1)  # pixels of label i in segment j
        inter = joint[labels > 0]
        union = inter.sum(1, keepdims=True) + joint.sum(0)[None] - inter
        scores[b] = (inter / union).max(axis=1).mean()
    return _reduce(scores, per_image)


def _counts(caller: str, n_clusters, batch: int, masks: np.ndarray | None):
    """Clusters per image, `(B,)` int, from an int, a sequence or `None` (the true
    number of objects, when `masks` is given)."""
    if n_clusters is None:
        if masks is None:
            raise ValueError(f"`{caller}(n_clusters=...)` must be given; got None.")
        return np.array([np.unique(m[m > 0]).size for m in masks], dtype=np.int64)
    counts = np.asarray(n_clusters)
    if counts.ndim == 0:
        counts = np.full(batch, counts)
    if counts.shape != (batch,) or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(
            f"`{caller}(n_clusters=...)` must be an integer or {batch} integers (one "
            f"per image); got {n_clusters!r}."
        )
    if np.any(counts < 1):
        raise ValueError(
            f"`{caller}(n_clusters=...)` must be >= 1; got {counts.min()}."
        )
    return counts.astype(np.int64)


def _cluster(points: np.ndarray, k: int, method: str, seed: int) -> np.ndarray:
    """Labels `0..k-1` of `points` `(N, F)`; fewer clusters than points if need be."""
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    k = min(k, len(points))
    if k <= 1:
        return np.zeros(len(points), dtype=np.int64)
    # One thread: the problems are small (one image), and OpenMP's threads on a busy
    # machine made k-means eight times slower here.
    with warnings.catch_warnings(), threadpool_limits(1):
        # fewer distinct points than clusters (a flat colour): k-means still labels
        warnings.simplefilter("ignore", ConvergenceWarning)
        if method == "kmeans":
            model = KMeans(n_clusters=k, n_init=3, random_state=seed)  # pyright: ignore[reportArgumentType]
        else:
            model = AgglomerativeClustering(n_clusters=k, linkage="average")
        return model.fit_predict(points.astype(np.float64)).astype(np.int64)


def cluster_features(
    features: ArrayLike,
    n_clusters: int | Sequence[int] | ArrayLike,
    *,
    method: Literal["kmeans", "agglomerative"] = "kmeans",
    seed: int = 0,
) -> Int[np.ndarray, "b h w"]:
    """Segments images by clustering their per-pixel features, image by image.

    Every pixel's feature vector (for AKOrN, its final oscillator state; AKOrN also
    normalises them and may reduce them by PCA first, which is left to the caller) is a
    point; the points of one image are clustered into `n_clusters` groups by
    [k-means](https://scikit-learn.org/stable/modules/generated/sklearn.cluster.KMeans.html)
    (k-means++, 3 restarts, seeded) or by
    [agglomerative clustering](https://scikit-learn.org/stable/modules/generated/sklearn.cluster.AgglomerativeClustering.html)
    with average linkage (AKOrN's choice for Tetrominoes). Background pixels are
    clustered too: pass one cluster more than the number of objects to leave room for
    it (AKOrN uses 4 on Tetrominoes).

    **Arguments:**

    - `features`: `(B, H, W, F)`.
    - `n_clusters`: clusters per image, a positive integer or one per image. An image
        with fewer pixels gets one cluster per pixel.
    - `method`: `"kmeans"` or `"agglomerative"`. (Keyword only argument.)
    - `seed`: k-means' random state. (Keyword only argument.)

    **Returns:**

    `int32` masks `(B, H, W)` with labels `0, ..., n_clusters - 1` (arbitrary order).
    """
    x = np.asarray(features)
    if x.ndim != 4:
        raise ValueError(
            "`cluster_features(features=...)` must have shape (B, H, W, F); got shape "
            f"{x.shape}."
        )
    if method not in ("kmeans", "agglomerative"):
        raise ValueError(
            "`cluster_features(method=...)` must be 'kmeans' or 'agglomerative'; got "
            f"{method!r}."
        )
    batch, h, w, f = x.shape
    counts = _counts("cluster_features", n_clusters, batch, None)
    out = np.zeros((batch, h, w), dtype=np.int32)
    for b in range(batch):
        out[b] = _cluster(x[b].reshape(h * w, f), int(counts[b]), method, seed).reshape(
            h, w
        )
    return out


def _reference(caller, images, masks, n_clusters, seed, points):
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(
            f"`{caller}(images=...)` must have shape (B, H, W, C); got shape {x.shape}."
        )
    m = _masks(caller, "masks", masks)
    if m.shape != x.shape[:3]:
        raise ValueError(
            f"`{caller}(masks=...)` must have shape {x.shape[:3]} (the images' B, H, "
            f"W); got {m.shape}."
        )
    counts = _counts(caller, n_clusters, len(m), m)
    rows, cols = np.indices(m.shape[1:])
    grid = np.stack([rows, cols], axis=-1).astype(np.float64)
    out = np.zeros(m.shape, dtype=np.int32)
    for b in range(len(m)):
        fg = m[b] > 0
        if fg.any():
            data = points(x[b], grid)[fg]
            out[b][fg] = 1 + _cluster(data, int(counts[b]), "kmeans", seed)
    return out


def colour_reference(
    images: ArrayLike,
    masks: ArrayLike,
    n_clusters: int | Sequence[int] | ArrayLike | None = None,
    *,
    seed: int = 0,
) -> Int[np.ndarray, "b h w"]:
    """The colour-only reference: k-means over the colours of each image's foreground
    pixels.

    This reference is given the true foreground (`masks > 0`): it only has to split it
    into objects, from each pixel's colour alone. That is what the FG-ARI of 1.0 quoted
    for Tetrominoes measures (pieces have distinct flat colours); on Shapes-like
    images, where every outline has the same grey, colour carries no object identity.

    **Arguments:**

    - `images`: `(B, H, W, C)`.
    - `masks`: the true masks, integer `(B, H, W)`; only `masks > 0` is used.
    - `n_clusters`: clusters per image (an integer or one per image); `None` for the
        true number of objects in each image.
    - `seed`: k-means' random state. (Keyword only argument.)

    **Returns:**

    `int32` masks `(B, H, W)`: `0` on the true background, `1, ..., n_clusters` on the
    foreground.
    """
    return _reference(
        "colour_reference", images, masks, n_clusters, seed, lambda x, _: x
    )


def position_reference(
    images: ArrayLike,
    masks: ArrayLike,
    n_clusters: int | Sequence[int] | ArrayLike | None = None,
    *,
    seed: int = 0,
) -> Int[np.ndarray, "b h w"]:
    """The position-only reference: k-means over the (row, column) of each image's
    foreground pixels.

    Like [`hopkur.experiments.objects.colour_reference`][], it is given the true
    foreground (`masks > 0`) and only splits it, here by where pixels are: compact,
    separated objects are found this way without any binding. `images` is used only for
    its shape, so that both references take the same arguments.

    **Arguments:**

    - `images`: `(B, H, W, C)`.
    - `masks`: the true masks, integer `(B, H, W)`; only `masks > 0` is used.
    - `n_clusters`: clusters per image (an integer or one per image); `None` for the
        true number of objects in each image.
    - `seed`: k-means' random state. (Keyword only argument.)

    **Returns:**

    `int32` masks `(B, H, W)`: `0` on the true background, `1, ..., n_clusters` on the
    foreground.
    """
    return _reference(
        "position_reference", images, masks, n_clusters, seed, lambda _, g: g
    )
