"""The coupled Hopfield-Kuramoto model against its dense definition."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import hopkur

from .helpers import DIMS, random_edges


def _parts(key, n, d):
    keys = jr.split(key, 5)
    hopfield = hopkur.Hopfield(
        jr.normal(keys[0], (n, n)) / jnp.sqrt(n),
        0.1 * jr.normal(keys[1], (n,)),
        hopkur.lagrangian_tanh,
    )
    kuramoto = hopkur.Kuramoto(hopkur.DenseCoupling(jr.normal(keys[2], (n, n))))
    y = (jr.normal(keys[3], (n,)), hopkur.random_sphere((n,), d, key=keys[4]))
    return hopfield, kuramoto, y


def _dense_reference(model, y):
    """The vector field and energy of MODELS.md §3 written with the dense matrix C."""
    x_h, x = y
    hop, kur = model.hopfield, model.kuramoto
    w_s = hop.symmetric_weights
    c = model.coupling.coefficients(w_s)
    g = hop.activation(x_h)
    s = x @ x.T
    dx_h = w_s @ g - x_h + hop.bias + (c * s) @ g / model.kappa_h
    u = g[:, None] * ((c * g[None, :]) @ x)
    dx = hopkur.project_tangent(x, kur.coupling.drive(x) + u / model.kappa_k)
    energy = (
        model.kappa_k * kur.energy(x, None)
        + model.kappa_h * hop.energy(x_h, None)
        - 0.5 * jnp.sum(c * s * g[:, None] * g[None, :])
    )
    return (dx_h, dx), energy


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
@pytest.mark.parametrize("graph", ["all", "edges"])
def test_matches_dense_formula(d, kind, graph):
    n = 10
    hopfield, kuramoto, y = _parts(jr.key(d), n, d)
    edges = None if graph == "all" else random_edges(jr.key(7), n)
    cls = (
        hopkur.AdditiveCoupling if kind == "additive" else hopkur.MultiplicativeCoupling
    )
    model = hopkur.HopfieldKuramoto(hopfield, kuramoto, cls(0.8, edges), 1.7, 0.6)
    (ref_h, ref_x), ref_e = _dense_reference(model, y)
    f_h, f_x = model.vector_field(0.0, y, None)
    assert jnp.allclose(f_h, ref_h, atol=1e-12)
    assert jnp.allclose(f_x, ref_x, atol=1e-12)
    assert jnp.allclose(model.energy(y, None), ref_e, atol=1e-12)


def test_network_coupling_matches_dense_formula():
    n, d = 8, 3
    hopfield, kuramoto, y = _parts(jr.key(0), n, d)
    edges = random_edges(jr.key(1), n)
    weights = jr.normal(jr.key(2), (edges.shape[0],))
    model = hopkur.HopfieldKuramoto(
        hopfield, kuramoto, hopkur.NetworkCoupling(edges, weights)
    )
    (ref_h, ref_x), ref_e = _dense_reference(model, y)
    f_h, f_x = model.vector_field(0.0, y, None)
    assert jnp.allclose(f_h, ref_h, atol=1e-12)
    assert jnp.allclose(f_x, ref_x, atol=1e-12)
    assert jnp.allclose(model.energy(y, None), ref_e, atol=1e-12)


@pytest.mark.parametrize("d", DIMS)
def test_low_rank_correction(d):
    """All-to-all additive coupling: the threshold units see
    W_s + alpha (XX^T - I) / kappa_h, a rank <= D correction, and the drive equals
    alpha (X (X^T g) - g)."""
    n, alpha, kappa_h = 12, 0.9, 2.0
    hopfield, kuramoto, (x_h, x) = _parts(jr.key(d), n, d)
    coupling = hopkur.AdditiveCoupling(alpha)
    model = hopkur.HopfieldKuramoto(hopfield, kuramoto, coupling, kappa_h)
    assert coupling.is_low_rank
    assert not hopkur.AdditiveCoupling(alpha, random_edges(jr.key(0), n)).is_low_rank
    w_eff = model.effective_weights(x)
    correction = w_eff - hopfield.symmetric_weights
    assert jnp.allclose(
        correction, alpha * (x @ x.T - jnp.eye(n)) / kappa_h, atol=1e-12
    )
    assert jnp.linalg.matrix_rank(correction + alpha * jnp.eye(n) / kappa_h) <= d
    g = hopfield.activation(x_h)
    v, _ = coupling.drives(g, x, hopfield.symmetric_weights)
    assert jnp.allclose(v, alpha * (x @ (x.T @ g) - g), atol=1e-12)
    # The threshold units' velocity is the Hopfield one with W_eff.
    f_h, _ = model.vector_field(0.0, (x_h, x), None)
    assert jnp.allclose(f_h, w_eff @ g - x_h + hopfield.bias, atol=1e-12)


def test_low_rank_path_forms_no_n_by_n_array():
    """The all-to-all additive vector field never materialises an N x N array."""
    n, d = 2000, 4
    coupling = hopkur.AdditiveCoupling(0.5)
    x = hopkur.random_sphere((n,), d, key=jr.key(0))
    g = jnp.tanh(jr.normal(jr.key(1), (n,)))
    jaxpr = jax.make_jaxpr(lambda g_, x_: coupling.drives(g_, x_, jnp.zeros((1, 1))))(
        g, x
    )
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            assert var.aval.size < n * n, eqn


def test_kappa_must_be_positive():
    hopfield, kuramoto, _ = _parts(jr.key(0), 4, 2)
    with pytest.raises(ValueError, match="kappa_h"):
        hopkur.HopfieldKuramoto(hopfield, kuramoto, hopkur.AdditiveCoupling(1.0), -1.0)
