"""JAX behaviour over every system: jit, vmap, grad, no retracing, diffrax terms."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import hopkur

from .helpers import (
    coupled_systems,
    hopfield_systems,
    ids,
    kuramoto_systems,
    make_kuramoto_blocks,
    non_gradient_systems,
    tree_allclose,
)


# One representative per model class and coupling type (the interaction functions differ
# only inside the same code path); the Lyapunov tests cover every family.
REPRESENTATIVES = (
    hopfield_systems[1],  # tanh
    hopfield_systems[4],  # softmax
    hopfield_systems[5],  # layered
    kuramoto_systems[0],  # dense
    kuramoto_systems[1],  # mean field
    kuramoto_systems[6],  # edges, MLP interaction
    make_kuramoto_blocks,
    kuramoto_systems[-1],  # shared Omega
    non_gradient_systems[0],  # per-oscillator Omega
    coupled_systems[0],  # additive, all-to-all
    coupled_systems[3],  # multiplicative, edges
    coupled_systems[4],  # network
)


def _build(make_system, seed=0):
    """A random instance at a fixed small size (compiled code is shared across
    tests)."""
    n = 4 if make_system is make_kuramoto_blocks else 5
    return make_system(jr.key(seed), n, 3)


@pytest.mark.parametrize("make_system", REPRESENTATIVES, ids=ids(REPRESENTATIVES))
def test_jit_equals_eager(make_system):
    system, y = _build(make_system)
    jitted_f = eqx.filter_jit(lambda s, y_: s.vector_field(0.0, y_, None))(system, y)
    jitted_e = eqx.filter_jit(lambda s, y_: s.energy(y_, None))(system, y)
    assert tree_allclose(
        jitted_f, system.vector_field(0.0, y, None), rtol=1e-12, atol=1e-12
    )
    assert tree_allclose(jitted_e, system.energy(y, None), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make_system", REPRESENTATIVES, ids=ids(REPRESENTATIVES))
def test_vmap_equals_loop(make_system):
    system, _ = _build(make_system)
    ys = [_build(make_system, seed)[1] for seed in (1, 2, 3)]
    batch = jax.tree.map(lambda *a: jnp.stack(a), *ys)
    energies = jax.vmap(system.energy, in_axes=(0, None))(batch, None)
    fields = jax.vmap(system.vector_field, in_axes=(None, 0, None))(0.0, batch, None)
    for i, yi in enumerate(ys):
        assert jnp.allclose(
            energies[i], system.energy(yi, None), rtol=1e-12, atol=1e-12
        )
        fi = jax.tree.map(lambda a, i=i: a[i], fields)
        assert tree_allclose(
            fi, system.vector_field(0.0, yi, None), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("make_system", REPRESENTATIVES, ids=ids(REPRESENTATIVES))
def test_grad_wrt_parameters(make_system):
    system, y = _build(make_system)
    grads = eqx.filter_grad(lambda s: s.energy(y, None))(system)
    leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert leaves and all(jnp.all(jnp.isfinite(leaf)) for leaf in leaves)
    assert any(jnp.any(leaf != 0) for leaf in leaves)


@pytest.mark.parametrize("make_system", REPRESENTATIVES, ids=ids(REPRESENTATIVES))
def test_no_retracing_on_new_values(make_system):
    system, y = _build(make_system)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def f(s, y_):
        return s.vector_field(0.0, y_, None), s.energy(y_, None)

    f(system, y)
    params, static = eqx.partition(system, eqx.is_inexact_array)
    new = eqx.combine(jax.tree.map(lambda a: a * 1.1, params), static)
    f(new, jax.tree.map(lambda a: a * 0.9, y))


@pytest.mark.parametrize("make_system", REPRESENTATIVES, ids=ids(REPRESENTATIVES))
def test_works_as_diffrax_term(make_system):
    system, y0 = _build(make_system)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(system.vector_field), dfx.Heun(), 0.0, 0.5, 0.05, y0, None
    )
    assert sol.ys is not None
    assert all(jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(sol.ys))


def test_grad_through_simulate_matches_finite_difference():
    n = 5
    w = jr.normal(jr.key(0), (n, n)) / jnp.sqrt(n)
    b = jr.normal(jr.key(1), (n,))
    x0 = jr.normal(jr.key(2), (n,))

    @jax.jit  # one program for both finite-difference evaluations
    def loss(scale):
        model = hopkur.Hopfield(scale * w, b, hopkur.lagrangian_tanh)
        # about 7 adaptive steps: a bound of 64 (not 4096) makes reverse mode's
        # checkpointed loop a third of the compile time; more steps would raise
        sol = hopkur.simulate(model, x0, t1=1.0, max_steps=64)
        assert sol.ys is not None
        return jnp.sum(sol.ys[-1] ** 2)

    grad = jax.jit(jax.grad(loss))(1.0)
    eps = 1e-6
    fd = (loss(1.0 + eps) - loss(1.0 - eps)) / (2 * eps)
    assert jnp.allclose(grad, fd, rtol=1e-4)
