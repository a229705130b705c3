"""Hopfield maths against hand-derived values."""

import jax.numpy as jnp
import jax.random as jr
import pytest

import hopkur


@pytest.mark.parametrize("seed", range(4))
def test_identity_closed_form(seed):
    """With g = x: f = (W_s - I) x + b and E = x.(x - b) - |x|^2/2 - x^T W_s x / 2."""
    wkey, bkey, xkey = jr.split(jr.key(seed), 3)
    n = 6
    w = jr.normal(wkey, (n, n))
    b = jr.normal(bkey, (n,))
    x = jr.normal(xkey, (n,))
    ws = 0.5 * (w + w.T)
    model = hopkur.Hopfield(w, b, hopkur.lagrangian_identity)
    assert jnp.allclose(model.vector_field(0.0, x, None), ws @ x - x + b, atol=1e-12)
    expected = 0.5 * x @ x - b @ x - 0.5 * x @ ws @ x
    assert jnp.allclose(model.energy(x, None), expected, atol=1e-12)


def test_weights_symmetrised():
    w = jr.normal(jr.key(0), (5, 5))
    b = jnp.zeros(5)
    x = jr.normal(jr.key(1), (5,))
    a = hopkur.Hopfield(w, b, hopkur.lagrangian_tanh)
    s = hopkur.Hopfield(0.5 * (w + w.T), b, hopkur.lagrangian_tanh)
    assert jnp.allclose(
        a.vector_field(0.0, x, None), s.vector_field(0.0, x, None), atol=1e-12
    )
    assert jnp.allclose(a.energy(x, None), s.energy(x, None), atol=1e-12)


def test_pure_functions_match_module():
    w = jr.normal(jr.key(0), (4, 4))
    b = jr.normal(jr.key(1), (4,))
    x = jr.normal(jr.key(2), (4,))
    model = hopkur.Hopfield(w, b, hopkur.lagrangian_sigmoid)
    assert jnp.array_equal(
        model.vector_field(0.0, x, None),
        hopkur.hopfield_vector_field(x, w, b, hopkur.lagrangian_sigmoid),
    )
    assert jnp.array_equal(
        model.energy(x, None),
        hopkur.hopfield_energy(x, w, b, hopkur.lagrangian_sigmoid),
    )


def test_layered_equals_block_hopfield():
    """A layered network is a single Hopfield network with block off-diagonal
    weights."""
    sizes = (3, 4, 2)
    keys = jr.split(jr.key(0), 6)
    weights = [jr.normal(keys[0], (4, 3)), jr.normal(keys[1], (2, 4))]
    biases = [jr.normal(k, (s,)) for k, s in zip(keys[2:5], sizes)]
    layered = hopkur.LayeredHopfield(weights, biases, hopkur.lagrangian_tanh)
    n = sum(sizes)
    full = jnp.zeros((n, n))
    full = full.at[3:7, 0:3].set(weights[0]).at[0:3, 3:7].set(weights[0].T)
    full = full.at[7:9, 3:7].set(weights[1]).at[3:7, 7:9].set(weights[1].T)
    flat = hopkur.Hopfield(full, jnp.concatenate(biases), hopkur.lagrangian_tanh)
    x = jr.normal(keys[5], (n,))
    y = (x[:3], x[3:7], x[7:])
    f = layered.vector_field(0.0, y, None)
    assert jnp.allclose(jnp.concatenate(f), flat.vector_field(0.0, x, None), atol=1e-12)
    assert jnp.allclose(layered.energy(y, None), flat.energy(x, None), atol=1e-12)


def test_energy_bounded_below_report():
    n = 5
    small = 0.5 * jnp.eye(n)
    big = 2.0 * jnp.eye(n)
    b = jnp.zeros(n)
    assert (
        hopkur.Hopfield(small, b, hopkur.lagrangian_relu).energy_bounded_below() is True
    )
    assert (
        hopkur.Hopfield(big, b, hopkur.lagrangian_relu).energy_bounded_below() is False
    )
    assert (
        hopkur.Hopfield(big, b, hopkur.lagrangian_identity).energy_bounded_below()
        is False
    )
    assert (
        hopkur.Hopfield(big, b, hopkur.lagrangian_tanh).energy_bounded_below() is True
    )
    assert (
        hopkur.Hopfield(big, b, lambda x: jnp.sum(x**4)).energy_bounded_below() is None
    )


def test_relu_runaway_energy_unbounded():
    """The documented hazard is real: relu with lambda_max(W_s) > 1 has energy going to
    -infinity along the top eigenvector."""
    n = 4
    model = hopkur.Hopfield(2.0 * jnp.eye(n), jnp.zeros(n), hopkur.lagrangian_relu)
    direction = jnp.ones(n)
    energies = jnp.array(
        [model.energy(t * direction, None) for t in (1.0, 10.0, 100.0)]
    )
    assert jnp.all(jnp.diff(energies) < 0)
    assert energies[-1] < -1e4
