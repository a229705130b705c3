"""The object-discovery networks (hopkur.experiments.objects): shapes, unit-norm
oscillators, the baseline's parameter count, segment, determinism and bad input."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from hopkur.experiments import objects as O
from hopkur.experiments.objects._training import count_parameters


SHAPE = (16, 16, 3)


def _model(kind, coupling, key, steps=2):
    cls = O.ObjectAKOrN if kind == "akorn" else O.ObjectItrNet
    return cls(
        SHAPE,
        8,
        4,
        patch=4,
        steps=steps,
        coupling=coupling,
        kernel_size=3,
        heads=2,
        key=key,
    )


def _images(seed, n=3):
    return np.random.default_rng(seed).random((n, *SHAPE)).astype(np.float32)


# (AKOrN with the conv coupling: its shapes are checked in the unit-norm test, which
# compiles it anyway.)
@pytest.mark.parametrize(
    "kind, coupling",
    [("akorn", "attention"), ("baseline", "conv"), ("baseline", "attention")],
)
def test_shapes(kind, coupling, getkey):
    model = _model(kind, coupling, getkey())
    image = jnp.asarray(_images(0, 1)[0])
    out = model.features(image, key=getkey(), steps=3)
    assert out.states.shape == out.readout.shape == (4, 4, 8)
    assert out.energies.shape == (4,)
    assert model(image, key=getkey()).shape == (8,)
    assert model.grid == (4, 4) and model.channels == 8


@pytest.mark.parametrize("coupling", ["conv", "attention"])
@pytest.mark.parametrize("seed", range(3))
def test_oscillators_stay_unit_norm(coupling, seed):
    model = _model("akorn", coupling, jr.key(seed), steps=6)
    image = jnp.asarray(_images(seed, 1)[0])
    out = model.features(image, key=jr.key(seed + 10))
    states = out.states
    assert states.shape == out.readout.shape == (4, 4, 8)
    assert out.energies.shape == (7,)
    norms = jnp.linalg.norm(states.reshape(4, 4, 2, 4), axis=-1)
    assert jnp.allclose(norms, 1.0, atol=1e-6)


@pytest.mark.parametrize("coupling", ["conv", "attention"])
def test_baseline_has_the_parameters_of_akorn(coupling, getkey):
    key = getkey()
    akorn, base = _model("akorn", coupling, key), _model("baseline", coupling, key)
    assert count_parameters(akorn) == count_parameters(base) > 0
    # and the same shared parts, from the same key
    assert jnp.array_equal(akorn.patch_weight, base.patch_weight)


def test_baseline_differs_from_akorn_only_in_the_update(getkey):
    key = getkey()
    akorn, base = _model("akorn", "conv", key), _model("baseline", "conv", key)
    image = jnp.asarray(_images(1, 1)[0])
    assert jnp.array_equal(akorn.stimulus(image), base.stimulus(image))
    s0 = base.features(image, key=getkey(), steps=0).states
    # with no update, the baseline's state is the normalised stimulus
    c = base.stimulus(image)
    ln = (c - c.mean(-1, keepdims=True)) / jnp.sqrt(c.var(-1, keepdims=True) + 1e-5)
    assert jnp.allclose(s0, ln, atol=1e-6)


@pytest.mark.parametrize("kind", ["akorn", "baseline"])
@pytest.mark.parametrize("features", ["states", "readout"])
def test_segment_shape_dtype_range_and_determinism(kind, features, getkey):
    model = _model(kind, "attention", getkey())
    images = _images(2, 4)
    a = O.segment(model, images, 3, features=features, key=jr.key(5))
    b = O.segment(model, images, 3, features=features, key=jr.key(5))
    assert a.shape == (4, *SHAPE[:2]) and np.issubdtype(a.dtype, np.integer)
    assert a.min() >= 0 and a.max() < 3
    assert np.array_equal(a, b)
    # constant over each 4x4 patch (labels are per patch)
    assert np.array_equal(a, np.repeat(np.repeat(a[:, ::4, ::4], 4, 1), 4, 2))


def test_features_do_not_depend_on_the_batch(getkey):
    model = _model("akorn", "attention", getkey())
    images = _images(3, 5)
    key = jr.key(7)
    whole, _ = O.network_features(model, images, key=key, batch_size=5)
    parts, _ = O.network_features(model, images, key=key, batch_size=2)
    assert np.allclose(whole, parts, atol=1e-6)
    other, _ = O.network_features(model, images, key=jr.key(8), batch_size=5)
    assert not np.allclose(whole, other)  # AKOrN starts from random oscillators


@pytest.mark.parametrize(
    "images, n_clusters, fragment",
    [
        (np.zeros((2, 16, 16), np.float32), 3, "rank 4"),
        (np.zeros((2, 16, 16, 1), np.float32), 3, "3 channel"),
        (np.zeros((2, 12, 16, 3), np.float32), 3, "16x16"),
        (np.full((2, 16, 16, 3), 2.0, np.float32), 3, r"\[0, 1\]"),
        (np.zeros((2, 16, 16, 3), np.int64), 3, "floating"),
        (np.zeros((2, 16, 16, 3), np.float32), 0, ">= 1"),
    ],
)
def test_segment_rejects_bad_input(images, n_clusters, fragment, getkey):
    model = _model("akorn", "conv", getkey())
    with pytest.raises(ValueError, match=fragment):
        O.segment(model, images, n_clusters)


def test_pca_colours(getkey):
    f = np.random.default_rng(0).normal(size=(2, 4, 4, 8))
    c = O.pca_colours(f)
    assert c.shape == (2, 4, 4, 3) and c.min() >= 0 and c.max() <= 1
    # each component spans [0, 1]
    assert np.allclose(c.reshape(2, -1, 3).min(1), 0) and np.allclose(
        c.reshape(2, -1, 3).max(1), 1
    )
    assert np.array_equal(c, O.pca_colours(f))


@pytest.mark.parametrize("seed", range(3))
def test_contrastive_loss_prefers_matching_views(seed):
    z = jr.normal(jr.key(seed), (8, 6))
    noise = 0.05 * jr.normal(jr.key(seed + 100), (8, 6))
    matched = O.contrastive_loss(z, z + noise, 0.1)
    shuffled = O.contrastive_loss(z, jnp.roll(z, 1, axis=0) + noise, 0.1)
    assert matched < shuffled
    assert matched >= 0


def test_augment_is_deterministic_and_in_range():
    images = _images(4, 3)
    a = O.augment(images, np.random.default_rng(1))
    b = O.augment(images, np.random.default_rng(1))
    assert np.array_equal(a, b) and a.shape == images.shape
    assert a.min() >= 0 and a.max() <= 1 and not np.array_equal(a, images)


@pytest.mark.slow
def test_training_lowers_the_loss_on_a_fixed_batch(getkey):
    from hopkur.experiments import make_optimiser, train
    from hopkur.experiments.objects._training import make_loss, make_sampler

    model = _model("akorn", "attention", getkey())
    sample = make_sampler(_images(5, 8), 8, seed=0)
    batch = sample(0)
    result = train(
        model,
        make_loss(0.5),
        lambda step: batch,
        optimiser=make_optimiser("adam", 3e-3),
        steps=15,
        progress=False,
    )
    assert result.losses[-1] < result.losses[0]
    assert jax.tree_util.tree_structure(result.model) == jax.tree_util.tree_structure(
        model
    )
