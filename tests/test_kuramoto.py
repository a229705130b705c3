"""Kuramoto maths against hand-derived values."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import hopkur

from .helpers import DIMS, random_edges


ROT = jnp.array([[0.0, -1.0], [1.0, 0.0]])


def _angles(theta):
    return jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=-1)


@eqx.filter_jit
def _phase_model_velocities(keys, n):
    """A random d = 2 model on `n` oscillators: its angular velocities, those of the
    classical phase model, and its radial velocities. (One compiled program per `n`:
    op by op, each random draw and operation compiled its own at each size.)"""
    kkey, wkey, tkey = keys
    k = jr.normal(kkey, (n, n))
    k = 0.5 * (k + k.T)
    k = k - jnp.diag(jnp.diag(k))
    omega_i = jr.normal(wkey, (n,))
    theta = jr.uniform(tkey, (n,), minval=0, maxval=2 * jnp.pi)
    model = hopkur.Kuramoto(
        hopkur.DenseCoupling(k), omega=omega_i[:, None, None] * ROT[None]
    )
    x = _angles(theta)
    dx = model.vector_field(0.0, x, None)
    # d theta = x_perp . dx, with x_perp = (-sin, cos).
    dtheta = jnp.sum(
        dx * jnp.stack([-jnp.sin(theta), jnp.cos(theta)], axis=-1), axis=-1
    )
    classical = omega_i + jnp.sum(k * jnp.sin(theta[None, :] - theta[:, None]), axis=1)
    return dtheta, classical, jnp.sum(dx * x, axis=-1)


@pytest.mark.parametrize("seed", range(8))
def test_d2_reduces_to_classical_phase_model(seed):
    nkey, *keys = jr.split(jr.key(seed), 4)
    n = int(jr.randint(nkey, (), 3, 12))
    dtheta, classical, radial = _phase_model_velocities(keys, n)
    assert jnp.max(jnp.abs(dtheta - classical)) < 1e-10
    # And the velocity has no radial part.
    assert jnp.max(jnp.abs(radial)) < 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_edge_linear_equals_dense(seed):
    nkey, ekey, kkey, xkey = jr.split(jr.key(seed), 4)
    n, d = 9, DIMS[seed % 4]
    edges = random_edges(ekey, n)
    k = jr.normal(kkey, (edges.shape[0],))
    dense = jnp.zeros((n, n)).at[edges[:, 0], edges[:, 1]].set(k)
    dense = dense + dense.T
    x = hopkur.random_sphere((n,), d, key=xkey)
    a = hopkur.Kuramoto(hopkur.EdgeCoupling(edges, hopkur.LinearInteraction(k)))
    b = hopkur.Kuramoto(hopkur.DenseCoupling(dense))
    assert jnp.allclose(
        a.vector_field(0.0, x, None), b.vector_field(0.0, x, None), atol=1e-12
    )
    assert jnp.allclose(a.energy(x, None), b.energy(x, None), atol=1e-12)
    # E = -sum_edges K s_ij, each edge once.
    s = jnp.sum(x[edges[:, 0]] * x[edges[:, 1]], axis=-1)
    assert jnp.allclose(a.energy(x, None), -jnp.sum(k * s), atol=1e-12)


@pytest.mark.parametrize("d", DIMS)
def test_mean_field_equals_dense(d):
    n, k = 11, 1.3
    x = hopkur.random_sphere((n,), d, key=jr.key(d))
    a = hopkur.Kuramoto(hopkur.MeanFieldCoupling(k))
    b = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.full((n, n), k / n)))
    assert jnp.allclose(
        a.vector_field(0.0, x, None), b.vector_field(0.0, x, None), atol=1e-12
    )
    assert jnp.allclose(a.energy(x, None), b.energy(x, None), atol=1e-12)


def test_positive_coupling_synchronises():
    """Two oscillators with K > 0: the energy is lowest when they align, and the flow
    moves them together (the hopkur sign convention)."""
    model = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.array([[0.0, 1.0], [1.0, 0.0]])))
    aligned = _angles(jnp.array([0.3, 0.3]))
    apart = _angles(jnp.array([0.3, 1.3]))
    assert model.energy(aligned, None) < model.energy(apart, None)
    dx = model.vector_field(0.0, apart, None)
    # Oscillator 0 moves towards oscillator 1 (counter-clockwise).
    assert jnp.dot(dx[0], jnp.array([-jnp.sin(0.3), jnp.cos(0.3)])) > 0


@pytest.mark.parametrize("d", DIMS)
def test_energy_rotation_invariant(d):
    wkey, xkey, rkey, ekey, ikey = jr.split(jr.key(d), 5)
    n = 7
    q, _ = jnp.linalg.qr(jr.normal(rkey, (d, d)))
    x = hopkur.random_sphere((n,), d, key=xkey)
    edges = random_edges(ekey, n)
    e = edges.shape[0]
    couplings = [
        hopkur.DenseCoupling(jr.normal(wkey, (n, n))),
        hopkur.MeanFieldCoupling(0.7),
        hopkur.EdgeCoupling(edges, hopkur.TanhInteraction(jr.normal(ikey, (e,)), 1.0)),
        hopkur.EdgeCoupling(
            edges, hopkur.MLPInteraction(4, 1, key=ikey, dtype=jnp.float64)
        ),
    ]

    # One compiled call per coupling (energy and field at x and at the rotated x): the
    # same values as op-by-op evaluation (test_transforms), several times faster.
    @eqx.filter_jit
    def energies_and_fields(model, x, q):
        def both(y):
            return model.energy(y, None), model.vector_field(0.0, y, None)

        return both(x), both(x @ q.T)

    for coupling in couplings:
        model = hopkur.Kuramoto(coupling)
        (energy, field), (energy_rotated, field_rotated) = energies_and_fields(
            model, x, q
        )
        assert jnp.allclose(energy, energy_rotated, atol=1e-12)
        # Equivariance of the vector field.
        assert jnp.allclose(field @ q.T, field_rotated, atol=1e-12)


def test_block_with_scalar_blocks_equals_dense():
    n, d = 5, 3
    k = jr.normal(jr.key(0), (n, n))
    k = 0.5 * (k + k.T)
    k = k - jnp.diag(jnp.diag(k))
    blocks = k[:, :, None, None] * jnp.eye(d)[None, None]
    x = hopkur.random_sphere((n,), d, key=jr.key(1))
    a = hopkur.Kuramoto(hopkur.BlockCoupling(blocks))
    b = hopkur.Kuramoto(hopkur.DenseCoupling(k))
    assert jnp.allclose(
        a.vector_field(0.0, x, None), b.vector_field(0.0, x, None), atol=1e-12
    )
    assert jnp.allclose(a.energy(x, None), b.energy(x, None), atol=1e-12)


def test_gradient_system_flags():
    n, d = 4, 3
    x = jr.normal(jr.key(0), (n, n, d, d))
    assert not bool(hopkur.Kuramoto(hopkur.BlockCoupling(x)).is_gradient_system)
    sym = 0.5 * (x + jnp.transpose(x, (1, 0, 3, 2)))
    assert bool(hopkur.Kuramoto(hopkur.BlockCoupling(sym)).is_gradient_system)
    omega = jnp.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    dense = hopkur.DenseCoupling(jnp.ones((n, n)))
    # Shared Omega, field along its axis: gradient system.
    field_ok = jnp.zeros((n, d)).at[:, 2].set(1.0)
    assert bool(hopkur.Kuramoto(dense, field=field_ok, omega=omega).is_gradient_system)
    # Omega c != 0: not.
    field_bad = jnp.zeros((n, d)).at[:, 0].set(1.0)
    assert not bool(
        hopkur.Kuramoto(dense, field=field_bad, omega=omega).is_gradient_system
    )
    # Per-oscillator Omega, all equal: still a gradient system; distinct: not.
    same = jnp.broadcast_to(omega, (n, d, d))
    assert bool(hopkur.Kuramoto(dense, omega=same).is_gradient_system)
    distinct = same * jnp.arange(1.0, n + 1)[:, None, None]
    assert not bool(hopkur.Kuramoto(dense, omega=distinct).is_gradient_system)
    # Scalar-times-identity blocks commute with any Omega.
    scalar_blocks = jnp.ones((n, n))[:, :, None, None] * jnp.eye(d)[None, None]
    assert bool(
        hopkur.Kuramoto(
            hopkur.BlockCoupling(scalar_blocks), omega=omega
        ).is_gradient_system
    )
    assert not bool(
        hopkur.Kuramoto(hopkur.BlockCoupling(sym), omega=omega).is_gradient_system
    )


def test_shared_omega_energy_rate_nonpositive_with_rotation():
    """Shared Omega with a non-trivial rotation: dE/dt still <= 0 at every state."""
    n, d = 6, 4
    omega = jr.normal(jr.key(3), (d, d))
    for seed in range(10):
        model = hopkur.Kuramoto(
            hopkur.DenseCoupling(jr.normal(jr.key(seed), (n, n))), omega=omega
        )
        x = hopkur.random_sphere((n,), d, key=jr.key(50 + seed))
        assert model.energy_rate(0.0, x, None) <= 1e-12


def test_interaction_derivatives_match_autodiff():
    s = jnp.linspace(-1, 1, 11)
    a, b = 0.7, -1.3
    for phi in (
        hopkur.LinearInteraction(a),
        hopkur.ReluInteraction(a, b),
        hopkur.TanhInteraction(a, b),
        hopkur.SigmoidInteraction(a, b),
    ):
        auto = jax.vmap(jax.grad(lambda si: phi.potential(si)))(s)
        assert jnp.allclose(phi.derivative(s), auto, atol=1e-12)
    # Closed forms of MODELS.md §2.
    assert jnp.allclose(
        hopkur.ReluInteraction(a, b).potential(s),
        a * s + 0.5 * b * jnp.maximum(s, 0) ** 2,
    )
    assert jnp.allclose(
        hopkur.TanhInteraction(a, b).potential(s), a * s + b * jnp.log(jnp.cosh(s))
    )
    assert jnp.allclose(
        hopkur.SigmoidInteraction(a, b).potential(s), a * s + b * jnp.log1p(jnp.exp(s))
    )
