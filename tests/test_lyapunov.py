"""Generic properties of every model's (vector field, energy) pair, over many seeds."""

import functools as ft

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import hopkur

from .helpers import (
    all_systems,
    DIMS,
    family_batch,
    gradient_identity_residual,
    gradient_systems,
    hopfield_systems,
    ids,
    make_coupled_additive_all,
    make_kuramoto_blocks,
    make_kuramoto_edges_relu,
    make_kuramoto_rotating,
    oscillator_part,
    oscillator_systems,
)


SEEDS = tuple(range(16))


def _shape(make_system):
    """One size per family, spreading D = 2, 3, 4, 8 over the families."""
    index = all_systems.index(make_system)
    return (4 if make_system is make_kuramoto_blocks else 6), DIMS[index % len(DIMS)]


# Two representative families are also run at every D.
SWEEP = (make_kuramoto_edges_relu, make_coupled_additive_all)
CASES = [(m, *_shape(m)) for m in all_systems] + [
    (m, _shape(m)[0], d) for m in SWEEP for d in DIMS if d != _shape(m)[1]
]
CASE_IDS = [f"{m.__name__}-n{n}-d{d}" for m, n, d in CASES]


def _compute(system, y):
    f = system.vector_field(0.0, y, None)
    grad = jax.grad(system.energy)(y, None)
    x = oscillator_part(system, y)
    return {
        "gradient_system": system.is_gradient_system,
        "energy": system.energy(y, None),
        "rate": system.energy_rate(0.0, y, None),
        "grad_rate": sum(
            jnp.sum(g * v) for g, v in zip(jax.tree.leaves(grad), jax.tree.leaves(f))
        ),
        "residual": gradient_identity_residual(system, y),
        "radial": None
        if x is None
        else jnp.sum(oscillator_part(system, f) * x, axis=-1),
        "scale": 1
        + jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in jax.tree.leaves(y)])),
    }


@ft.cache
def properties(make_system, n, d):
    """Everything the tests below check, for 16 random instances of one family at one
    size, in one compiled, vmapped call."""
    systems, ys = family_batch(make_system, SEEDS, n, d)
    return eqx.filter_jit(eqx.filter_vmap(_compute))(systems, ys)


@pytest.mark.parametrize("make_system,n,d", CASES, ids=CASE_IDS)
def test_gradient_flag(make_system, n, d):
    p = properties(make_system, n, d)
    expected = make_system in gradient_systems
    assert bool(jnp.all(p["gradient_system"] == expected))


@pytest.mark.parametrize("make_system,n,d", CASES, ids=CASE_IDS)
def test_energy_rate_nonpositive(make_system, n, d):
    if make_system not in gradient_systems:
        # The claim matters: without the Lyapunov conditions the energy does increase.
        assert jnp.max(properties(make_system, n, d)["rate"]) > 1e-3
        return
    p = properties(make_system, n, d)
    assert jnp.all(p["rate"] <= 1e-10 * (1 + jnp.abs(p["energy"])))


@pytest.mark.parametrize("make_system,n,d", CASES, ids=CASE_IDS)
def test_vector_field_is_metric_gradient(make_system, n, d):
    """The field is minus the (metric-weighted, sphere-projected) energy gradient, plus
    the rotation term (which is what breaks the Lyapunov property when Omega_i
    differ)."""
    p = properties(make_system, n, d)
    worst = jnp.max(
        jnp.stack(
            [
                jnp.max(jnp.abs(leaf)) / jnp.min(p["scale"])
                for leaf in jax.tree.leaves(p["residual"])
            ]
        )
    )
    assert worst < 1e-9


@pytest.mark.parametrize("make_system,n,d", CASES, ids=CASE_IDS)
def test_energy_rate_matches_gradient(make_system, n, d):
    """The jvp-based energy_rate equals <grad E, f> computed by reverse mode."""
    p = properties(make_system, n, d)
    assert jnp.allclose(p["rate"], p["grad_rate"], rtol=1e-10, atol=1e-10)


OSCILLATOR_CASES = [c for c in CASES if c[0] in oscillator_systems]


@pytest.mark.parametrize(
    "make_system,n,d",
    OSCILLATOR_CASES,
    ids=[f"{m.__name__}-n{n}-d{d}" for m, n, d in OSCILLATOR_CASES],
)
def test_oscillator_velocity_tangent(make_system, n, d):
    p = properties(make_system, n, d)
    assert jnp.max(jnp.abs(p["radial"])) < 1e-12


# One solver compilation per family: four representatives by default, all with -m slow.
TRAJECTORY_FAST = (
    hopfield_systems[1],
    make_kuramoto_edges_relu,
    make_kuramoto_rotating,
    make_coupled_additive_all,
)
TRAJECTORY_CASES = [
    m if m in TRAJECTORY_FAST else pytest.param(m, marks=pytest.mark.slow)
    for m in gradient_systems
]


@pytest.mark.parametrize("make_system", TRAJECTORY_CASES, ids=ids(gradient_systems))
def test_energy_decreases_along_trajectory(make_system, getkey):
    system, y0 = make_system(getkey())
    ts = jnp.linspace(0.0, 3.0, 40)
    sol = hopkur.simulate(
        system, y0, t1=3.0, saveat=dfx.SaveAt(ts=ts), max_steps=100_000
    )
    assert sol.ys is not None
    energies = eqx.filter_jit(lambda s, ys: jax.vmap(lambda y: s.energy(y, None))(ys))(
        system, sol.ys
    )
    assert jnp.all(jnp.isfinite(energies))
    assert jnp.all(jnp.diff(energies) <= 1e-7 * (1 + jnp.abs(energies[:-1])))
