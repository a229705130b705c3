"""Object-discovery evaluation (hopkur.experiments.objects._metrics): FG-ARI, MBO,
per-image clustering and the colour / position references."""

import numpy as np
import pytest

import hopkur.data
from hopkur.experiments.objects import (
    cluster_features,
    colour_reference,
    fg_ari,
    mbo,
    position_reference,
)


@pytest.fixture(scope="module")
def shapes():
    return hopkur.data.shapes_like("test", 12, seed=0, cache=False)


@pytest.fixture(scope="module")
def tetrominoes():
    return hopkur.data.tetrominoes_like("test", 12, seed=0, cache=False)


def _relabel(pred, rng):
    """A random injective relabelling of `pred`'s labels."""
    labels = np.unique(pred)
    new = rng.choice(1000, size=labels.size, replace=False) - 500
    return new[np.searchsorted(labels, pred)]


@pytest.mark.parametrize("seed", range(3))
def test_true_masks_score_one_and_relabelling_changes_nothing(seed, shapes):
    rng = np.random.default_rng(seed)
    _, masks = shapes
    assert fg_ari(masks, masks) == pytest.approx(1.0)
    assert mbo(masks, masks) == pytest.approx(1.0)
    pred = rng.integers(0, 3, size=masks.shape) + (masks > 1)  # an imperfect guess
    score_ari, score_mbo = fg_ari(masks, pred), mbo(masks, pred)
    assert 0.0 < score_mbo < 1.0
    relabelled = _relabel(pred, rng)
    assert fg_ari(masks, relabelled) == pytest.approx(score_ari, abs=1e-12)
    assert mbo(masks, relabelled) == pytest.approx(score_mbo, abs=1e-12)
    # FG-ARI ignores what the prediction does on the background
    noisy = np.where(masks == 0, rng.integers(0, 9, size=masks.shape), pred)
    assert fg_ari(masks, noisy) == pytest.approx(score_ari, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_random_labels_score_about_zero(seed, tetrominoes):
    _, masks = tetrominoes
    pred = np.random.default_rng(seed).integers(0, 4, size=masks.shape)
    scores = fg_ari(masks, pred, per_image=True)
    assert isinstance(scores, np.ndarray) and scores.shape == (12,)
    assert abs(float(np.mean(scores))) < 0.03
    assert 0.0 <= mbo(masks, pred) <= 0.3


def test_mbo_by_hand():
    true = np.array([[[1, 1], [2, 0]]])
    # one segment over everything: IoU 2/4 for object 1, 1/4 for object 2
    assert mbo(true, np.zeros_like(true)) == pytest.approx((0.5 + 0.25) / 2)
    # object 1 exact, object 2 merged with the background pixel: IoU 1/2
    assert mbo(true, np.array([[[7, 7], [3, 3]]])) == pytest.approx((1 + 0.5) / 2)
    # the background is not scored: a segment of its own costs nothing
    assert mbo(true, np.array([[[7, 7], [3, 9]]])) == pytest.approx(1.0)
    # negative true labels are ignored pixels
    ignored = np.array([[[1, 1], [2, -1]]])
    assert mbo(ignored, np.array([[[7, 7], [3, 3]]])) == pytest.approx(1.0)


def test_single_object_and_empty_images():
    true = np.array([[[1, 1], [0, 0]], [[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    pred = np.array([[[4, 4], [0, 1]], [[4, 5], [4, 4]], [[1, 2], [3, 4]]])
    scores = fg_ari(true, pred, per_image=True)
    assert isinstance(scores, np.ndarray)
    assert scores[0] == 1.0 and scores[1] == 0.0 and np.isnan(scores[2])
    assert fg_ari(true, pred) == pytest.approx(0.5)  # the empty image is left out
    assert np.isnan(fg_ari(true[2:], pred[2:]))
    assert np.isnan(mbo(true[2:], pred[2:]))


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
def test_cluster_features_recovers_separable_segments(method, shapes):
    _, masks = shapes
    masks = masks[:6] if method == "agglomerative" else masks  # O(pixels^2) each
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 6))
    features = centres[masks] + 0.05 * rng.normal(size=masks.shape + (6,))
    pred = cluster_features(features, 5, method=method, seed=1)
    assert pred.shape == masks.shape and pred.dtype == np.int32
    assert pred.min() >= 0 and pred.max() <= 4
    # images with fewer than 4 objects get spare clusters, which FG-ARI may split
    full = masks.max(axis=(1, 2)) == 4
    assert full.any()
    assert fg_ari(masks[full], pred[full]) == pytest.approx(1.0)
    assert mbo(masks[full], pred[full]) == pytest.approx(1.0)
    # one number per image: the true count plus one for the background
    counts = masks.max(axis=(1, 2)) + 1
    pred = cluster_features(features, counts, method=method)
    assert fg_ari(masks, pred) == pytest.approx(1.0)
    assert np.array_equal(pred.max(axis=(1, 2)), counts - 1)


def test_references_shapes_and_colour_on_tetrominoes(tetrominoes, shapes):
    images, masks = tetrominoes
    for reference in (colour_reference, position_reference):
        pred = reference(images, masks, 3)
        assert pred.shape == masks.shape and pred.dtype == np.int32
        assert np.all(pred[masks == 0] == 0)
        assert set(np.unique(pred[masks > 0]).tolist()) <= {1, 2, 3}
    # pieces have flat, distinct colours: colour alone segments them exactly
    assert fg_ari(masks, colour_reference(images, masks)) == pytest.approx(1.0)
    # position alone does well on compact pieces, but not perfectly
    assert 0.5 < fg_ari(masks, position_reference(images, masks, 3)) < 1.0
    # one grey level for every outline: colour says little about which shape
    images, masks = shapes
    assert fg_ari(masks, colour_reference(images, masks)) < 0.3
    pred = position_reference(images, masks)  # the true number of objects per image
    assert np.array_equal(pred.max(axis=(1, 2)), masks.max(axis=(1, 2)))


def test_bad_input(tetrominoes):
    images, masks = tetrominoes
    with pytest.raises(ValueError, match=r"`fg_ari\(true_masks=...\)`"):
        fg_ari(masks[0], masks[0])
    with pytest.raises(ValueError, match=r"`mbo\(pred_masks=...\)`"):
        mbo(masks, masks[:3])
    with pytest.raises(ValueError, match=r"`fg_ari\(pred_masks=...\)`.*integer"):
        fg_ari(masks, masks.astype(np.float32))
    with pytest.raises(ValueError, match=r"`cluster_features\(features=...\)`"):
        cluster_features(images[..., 0], 3)
    with pytest.raises(ValueError, match=r"`cluster_features\(n_clusters=...\)`"):
        cluster_features(images, 0)
    with pytest.raises(ValueError, match=r"`cluster_features\(n_clusters=...\)`"):
        cluster_features(images, [3, 3])
    with pytest.raises(ValueError, match=r"`colour_reference\(n_clusters=...\)`"):
        colour_reference(images, masks, -1)
    with pytest.raises(ValueError, match=r"`position_reference\(images=...\)`"):
        position_reference(images[0], masks)
    with pytest.raises(ValueError, match=r"`colour_reference\(masks=...\)`"):
        colour_reference(images, masks[:, :8])
    with pytest.raises((ValueError, TypeError), match="method|Literal"):
        cluster_features(images, 3, method="spectral")  # pyright: ignore
