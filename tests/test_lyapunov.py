"""Generic properties of every model's (vector field, energy) pair, over many seeds."""

import functools as ft

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import hopkur

from .helpers import (
    all_systems,
    gradient_identity_residual,
    gradient_systems,
    ids,
    non_gradient_systems,
    oscillator_part,
    oscillator_systems,
)


SEEDS = range(8)


@eqx.filter_jit
def _compute(system, y):
    f = system.vector_field(0.0, y, None)
    grad = jax.grad(system.energy)(y, None)
    x = oscillator_part(system, y)
    return {
        "energy": system.energy(y, None),
        "rate": system.energy_rate(0.0, y, None),
        "grad_rate": sum(
            jnp.sum(g * v) for g, v in zip(jax.tree.leaves(grad), jax.tree.leaves(f))
        ),
        "residual": gradient_identity_residual(system, y),
        "radial": None if x is None else jnp.sum(oscillator_part(system, f) * x, axis=-1),
        "scale": 1 + jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in jax.tree.leaves(y)])),
    }


@ft.cache
def properties(make_system, seed):
    """Everything the tests below check, computed in one compiled call per system."""
    system, y = make_system(jr.key(seed))
    return system, _compute(system, y)


@pytest.mark.parametrize("make_system", gradient_systems, ids=ids(gradient_systems))
@pytest.mark.parametrize("seed", SEEDS)
def test_energy_rate_nonpositive(make_system, seed):
    system, p = properties(make_system, seed)
    assert bool(system.is_gradient_system)
    assert p["rate"] <= 1e-10 * (1 + jnp.abs(p["energy"]))


@pytest.mark.parametrize("make_system", gradient_systems, ids=ids(gradient_systems))
@pytest.mark.parametrize("seed", SEEDS)
def test_vector_field_is_metric_gradient(make_system, seed):
    _, p = properties(make_system, seed)
    for leaf in jax.tree.leaves(p["residual"]):
        assert jnp.max(jnp.abs(leaf)) < 1e-9 * p["scale"]


@pytest.mark.parametrize("make_system", oscillator_systems, ids=ids(oscillator_systems))
@pytest.mark.parametrize("seed", SEEDS)
def test_oscillator_velocity_tangent(make_system, seed):
    _, p = properties(make_system, seed)
    assert jnp.max(jnp.abs(p["radial"])) < 1e-12


@pytest.mark.parametrize("make_system", all_systems, ids=ids(all_systems))
@pytest.mark.parametrize("seed", SEEDS)
def test_energy_rate_matches_gradient(make_system, seed):
    """The jvp-based energy_rate equals <grad E, f> computed by reverse mode."""
    _, p = properties(make_system, seed)
    assert jnp.allclose(p["rate"], p["grad_rate"], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("make_system", gradient_systems, ids=ids(gradient_systems))
def test_energy_decreases_along_trajectory(make_system, getkey):
    system, y0 = make_system(getkey())
    ts = jnp.linspace(0.0, 3.0, 40)
    sol = hopkur.simulate(system, y0, t1=3.0, saveat=dfx.SaveAt(ts=ts), max_steps=100_000)
    assert sol.ys is not None
    energies = eqx.filter_jit(lambda s, ys: jax.vmap(lambda y: s.energy(y, None))(ys))(
        system, sol.ys
    )
    assert jnp.all(jnp.isfinite(energies))
    assert jnp.all(jnp.diff(energies) <= 1e-7 * (1 + jnp.abs(energies[:-1])))


@pytest.mark.parametrize("make_system", non_gradient_systems, ids=ids(non_gradient_systems))
def test_non_gradient_systems_say_so_and_can_gain_energy(make_system):
    """With distinct Omega_i the model says it is not a gradient system, and the claim
    matters: the energy does increase at some states."""
    rates = []
    for seed in SEEDS:
        system, p = properties(make_system, seed)
        assert not bool(system.is_gradient_system)
        rates.append(float(p["rate"]))
    assert max(rates) > 1e-3
