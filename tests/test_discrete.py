"""Discrete AKOrN updates: norms, energy descent for small steps, classical limit."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hopkur

from .helpers import (
    ids,
    make_kuramoto_blocks,
    make_kuramoto_dense,
    make_kuramoto_edges,
    make_kuramoto_mean_field,
    make_kuramoto_per_oscillator_omega,
    make_kuramoto_rotating,
)


STEPS = 60


@eqx.filter_jit
def _drive_scale(system, y):
    """A step-size scale: the largest speed |f| and the coupling's strength."""
    f = system.vector_field(0.0, y, None)
    return jnp.max(jnp.linalg.norm(f, axis=-1)) + 1.0


@pytest.mark.parametrize(
    "make_system",
    [make_kuramoto_per_oscillator_omega, make_kuramoto_dense],
    ids=["omega_i", "dense"],
)
def test_norms_preserved(make_system, getkey):
    system, y0 = make_system(getkey())
    out = hopkur.akorn_steps(system, y0, steps=STEPS, gamma=1.0)
    assert out.ys.shape == (STEPS + 1, *y0.shape)
    assert out.energies.shape == (STEPS + 1,)
    assert jnp.allclose(out.ys[0], y0)
    assert jnp.max(jnp.abs(jnp.linalg.norm(out.ys, axis=-1) - 1)) < 1e-14


GRADIENT = (
    make_kuramoto_dense,
    make_kuramoto_mean_field,
    make_kuramoto_edges("relu"),
    make_kuramoto_blocks,
    make_kuramoto_rotating,
)


@pytest.mark.parametrize("make_system", GRADIENT, ids=ids(GRADIENT))
def test_energy_non_increasing_for_small_steps(make_system, getkey):
    system, y0 = make_system(getkey())
    assert bool(system.is_gradient_system)
    gamma = 0.05 / _drive_scale(system, y0)
    out = hopkur.akorn_steps(system, y0, steps=STEPS, gamma=gamma)
    rises = jnp.diff(out.energies)
    assert jnp.all(rises <= 1e-12 * (1 + jnp.abs(out.energies[:-1])))
    assert out.energies[-1] < out.energies[0]  # it does move
    report = hopkur.lyapunov_report(system, out)
    assert report.decreasing and report.verdict == "decreasing"


def test_large_steps_can_increase_the_energy():
    """At gamma = 1 with strong coupling the discrete map overshoots (AKOrN's regime):
    the energy is then not monotone, and the report says so."""
    rng = np.random.default_rng(0)
    n = 12
    w = rng.standard_normal((n, n))
    system = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.asarray(4 * (w + w.T))))
    x = rng.standard_normal((n, 2))
    x0 = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))
    out = hopkur.akorn_steps(system, x0, steps=STEPS, gamma=1.0)
    assert jnp.max(jnp.diff(out.energies)) > 1e-3
    report = hopkur.lyapunov_report(system, out)
    assert not report.decreasing
    assert "although the model is a gradient system" in report.verdict


def test_classical_kuramoto_limit_d2():
    """At D = 2 each AKOrN step advances the phase by arctan(gamma * theta_dot), with
    theta_dot the classical omega_i + sum_j K_ij sin(theta_j - theta_i)."""
    rng = np.random.default_rng(3)
    n, steps, gamma = 7, 25, 0.1
    k = rng.standard_normal((n, n))
    k = 0.5 * (k + k.T)
    np.fill_diagonal(k, 0.0)
    omega = rng.standard_normal(n)
    system = hopkur.Kuramoto(
        hopkur.DenseCoupling(jnp.asarray(k)),
        omega=hopkur.planar_rotations(jnp.asarray(omega)),
    )
    theta = rng.uniform(0, 2 * np.pi, n)
    x0 = jnp.asarray(np.stack([np.cos(theta), np.sin(theta)], axis=-1))
    out = hopkur.akorn_steps(system, x0, steps=steps, gamma=gamma)

    expected = [theta]
    for _ in range(steps):
        rate = omega + np.sum(k * np.sin(theta[None, :] - theta[:, None]), axis=1)
        theta = theta + np.arctan(gamma * rate)
        expected.append(theta)
    expected = np.stack(expected)
    got = np.asarray(out.ys)
    assert np.allclose(got[..., 0], np.cos(expected), atol=1e-12)
    assert np.allclose(got[..., 1], np.sin(expected), atol=1e-12)
    # And the system is not a gradient system (distinct frequencies).
    assert not bool(system.is_gradient_system)


def test_step_function_and_last_state_only(getkey):
    system, y0 = make_kuramoto_dense(getkey())
    gamma = jnp.asarray(0.3)
    full = hopkur.akorn_steps(system, y0, steps=5, gamma=gamma)
    last = hopkur.akorn_steps(system, y0, steps=5, gamma=gamma, save_states=False)
    assert last.ys.shape == y0.shape
    assert jnp.allclose(last.ys, full.ys[-1])
    assert jnp.allclose(last.energies, full.energies)
    step = eqx.filter_jit(hopkur.akorn_step)
    y = y0
    for _ in range(5):
        y = step(system, y, gamma)
    assert jnp.allclose(y, full.ys[-1], atol=1e-14)


def test_threshold_units_take_euler_steps(getkey):
    rng = np.random.default_rng(4)
    n = 5
    model = hopkur.Hopfield(
        jnp.asarray(rng.standard_normal((n, n))), jnp.zeros(n), hopkur.lagrangian_tanh
    )
    x0 = jnp.asarray(rng.standard_normal(n))
    out = hopkur.akorn_steps(model, x0, steps=1, gamma=0.1)
    assert jnp.allclose(out.ys[1], x0 + 0.1 * model.vector_field(0.0, x0, None))


def test_gamma_is_traced_and_differentiable(getkey):
    system, y0 = make_kuramoto_dense(getkey())

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def final_energy(gamma):
        return hopkur.akorn_steps(system, y0, steps=10, gamma=gamma).energies[-1]

    final_energy(jnp.asarray(0.01))
    final_energy(jnp.asarray(0.02))
    grad = jax.grad(final_energy)(jnp.asarray(0.01))
    eps = 1e-6
    fd = (
        final_energy(jnp.asarray(0.01 + eps)) - final_energy(jnp.asarray(0.01 - eps))
    ) / (2 * eps)
    assert jnp.allclose(grad, fd, rtol=1e-5)


def test_errors():
    system = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    x0 = jnp.ones((3, 2)) / jnp.sqrt(2.0)
    with pytest.raises((ValueError, TypeError), match="steps"):
        hopkur.akorn_steps(system, x0, steps=-1, gamma=0.1)
    with pytest.raises((ValueError, TypeError), match="gamma"):
        hopkur.akorn_steps(system, x0, steps=3, gamma=jnp.ones(2))
