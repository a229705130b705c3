"""`hopkur.simulate(noise=..., key=...)`: Stratonovich tangent noise on the spheres and
additive noise for threshold units (MODELS.md §6).

Compilation dominates the cost of these tests, so most of them share one compiled
configuration (`_run`: the same shapes and static options; the coupling strength, the
final time and the key are arrays, so they do not recompile)."""

from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import hopkur


N, D, SIGMA, DT = 4000, 3, 1.0, 0.01
TS = jnp.linspace(0.0, 0.5, 6)


def _x0(n=N, d=D, seed=0):
    return hopkur.random_sphere((n,), d, key=jr.key(seed))


def _run(strength, key, t1=0.5, x0=None):
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(jnp.asarray(strength)))
    return hopkur.simulate(
        model,
        _x0() if x0 is None else x0,
        t1=jnp.asarray(t1),
        dt0=DT,
        saveat=dfx.SaveAt(ts=TS),
        noise=SIGMA,
        key=key,
    )


def test_spherical_brownian_motion_decay():
    """Free oscillators (no drift) on S^2: E[x(t).x(0)] = exp(-(D-1) sigma^2 t / 2).
    Tolerance: 4 standard errors of the sample mean plus a first-order weak error
    allowance of dt (Heun is weak order 1; measured bias about 0.4 dt here)."""
    x0 = _x0()
    sol = _run(0.0, jr.key(1), x0=x0)
    assert sol.ys is not None
    overlaps = np.asarray(jnp.sum(sol.ys * x0[None], axis=-1))  # (times, N)
    mean = overlaps.mean(axis=1)
    se = overlaps.std(axis=1) / np.sqrt(N)
    theory = np.exp(-(D - 1) * SIGMA**2 * np.asarray(TS) / 2)
    assert np.all(np.abs(mean - theory) <= 4 * se + DT), (mean, theory)


def test_noise_keeps_norms_and_is_reproducible():
    key = jr.key(2)
    sol = _run(1.0, key, t1=5.0)
    again = _run(1.0, key, t1=5.0)
    other = _run(1.0, jr.key(3), t1=5.0)
    assert sol.ys is not None and other.ys is not None
    norms = jnp.linalg.norm(sol.ys, axis=-1)
    assert float(jnp.max(jnp.abs(norms - 1))) < 1e-13  # 500 steps, float64
    assert eqx.tree_equal(sol.ys, again.ys)  # same key: same path, bit for bit
    assert float(jnp.max(jnp.abs(sol.ys[-1] - other.ys[-1]))) > 0.1


def test_noise_under_jit_and_grad():
    """Under `jit` the same numbers; the gradient with respect to the coupling
    strength matches a central difference with the same key (common random numbers:
    the path is a smooth function of the parameters)."""
    key = jr.key(4)
    x0 = _x0(64)
    ts = jnp.array([0.0, 1.0])

    def synchrony(k):
        model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(k))
        sol = hopkur.simulate(
            model,
            x0,
            t1=1.0,
            dt0=0.02,
            saveat=dfx.SaveAt(ts=ts),
            noise=0.3,
            key=key,
        )
        assert sol.ys is not None
        return hopkur.order_parameter(sol.ys[-1])

    value, grad = jax.jit(jax.value_and_grad(synchrony))(jnp.asarray(2.0))
    assert np.isclose(float(value), float(synchrony(jnp.asarray(2.0))), atol=1e-12)
    h = 1e-4
    fd = (synchrony(jnp.asarray(2.0 + h)) - synchrony(jnp.asarray(2.0 - h))) / (2 * h)
    assert np.isfinite(float(grad)) and abs(float(grad)) > 1e-3
    assert np.isclose(float(grad), float(fd), rtol=1e-5)


def test_simulate_batch_draws_independent_paths():
    """The same initial state twice: different paths (split keys), reproducible, and
    trajectory b equals `simulate(key=jax.random.split(key, batch)[b])` (the vmap of
    `simulate` over the keys)."""
    x0 = _x0(32)
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    options: dict[str, Any] = dict(t1=1.0, dt0=0.05, noise=0.5, key=jr.key(5))
    y0s = jnp.stack([x0, x0])
    sol = hopkur.simulate_batch(model, y0s, **options)
    again = hopkur.simulate_batch(model, y0s, **options)
    assert sol.ys is not None and again.ys is not None
    assert eqx.tree_equal(sol.ys, again.ys)
    assert float(jnp.max(jnp.abs(sol.ys[0] - sol.ys[1]))) > 0.05
    keys = jr.split(jr.key(5), 2)
    vmapped = jax.vmap(
        lambda y, k: hopkur.simulate(model, y, **{**options, "key": k}).ys
    )(y0s, keys)
    assert vmapped is not None
    assert np.allclose(sol.ys, vmapped, rtol=0, atol=1e-12)


def test_additive_noise_ornstein_uhlenbeck_variance():
    """Threshold units with no weights: dx = -x dt + sigma dW, an Ornstein–Uhlenbeck
    process with stationary variance sigma^2 / 2 per unit. From x = 0 at t = 4 the
    variance is (sigma^2/2)(1 - e^{-8}); tolerance 4 standard errors of a sample
    variance (var * sqrt(2/n)) plus dt^2 of the discretisation."""
    n, sigma = 4000, 0.7
    model = hopkur.Hopfield(jnp.zeros((n, n)), jnp.zeros(n), hopkur.lagrangian_identity)
    sol = hopkur.simulate(
        model, jnp.zeros(n), t1=4.0, dt0=DT, noise=sigma, key=jr.key(6)
    )
    assert sol.ys is not None
    x = np.asarray(sol.ys[-1])
    expected = sigma**2 / 2 * (1 - np.exp(-8.0))
    assert abs(x.var() - expected) <= 4 * expected * np.sqrt(2 / n) + DT**2
    assert abs(x.mean()) <= 4 * np.sqrt(expected / n)


@pytest.mark.slow
def test_noise_pytree_zero_where_none():
    """A pytree of amplitudes: noise on the threshold units only leaves the
    oscillators on their deterministic path."""
    key = jr.key(7)
    n, d = 6, 3
    hop = hopkur.Hopfield(jnp.zeros((n, n)), jnp.zeros(n), hopkur.lagrangian_tanh)
    kur = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.ones((n, n))))
    model = hopkur.HopfieldKuramoto(hop, kur, hopkur.AdditiveCoupling(0.0))
    y0 = (jnp.zeros(n), _x0(n, d))
    noisy = hopkur.simulate(model, y0, t1=0.5, dt0=0.05, noise=(0.5, 0.0), key=key)
    quiet = hopkur.simulate(model, y0, t1=0.5, dt0=0.05, noise=(0.0, 0.0), key=key)
    assert noisy.ys is not None and quiet.ys is not None
    assert float(jnp.max(jnp.abs(noisy.ys[0] - quiet.ys[0]))) > 0.05
    assert np.allclose(noisy.ys[1], quiet.ys[1], atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(noise=-0.1, key=jr.key(0), dt0=0.1),
            r"simulate\(noise=\.\.\.\).*non-neg",
        ),
        (dict(noise=float("nan"), key=jr.key(0), dt0=0.1), r"noise=.*finite"),
        (dict(noise=0.1, dt0=0.1), r"simulate\(key=\.\.\.\)"),
        (dict(noise=0.1, key=jr.key(0)), r"simulate\(dt0=\.\.\.\)"),
        (dict(noise=(0.1, 0.2), key=jr.key(0), dt0=0.1), r"noise=.*broadcast"),
        (dict(noise=jnp.ones(4), key=jr.key(0), dt0=0.1), r"noise=.*broadcast"),
    ],
)
def test_bad_noise_input(kwargs, match):
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    with pytest.raises(ValueError, match=match):
        hopkur.simulate(model, _x0(5), **kwargs)


def test_bad_noise_input_batch():
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    with pytest.raises(ValueError, match=r"simulate_batch\(key=\.\.\.\)"):
        hopkur.simulate_batch(model, jnp.stack([_x0(5)] * 2), noise=0.1, dt0=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("d", [2, 4, 5])
def test_spherical_brownian_motion_decay_other_dimensions(d):
    n, sigma, t1 = 20000, 0.8, 1.0
    x0 = _x0(n, d, seed=d)
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(0.0))
    ts = jnp.linspace(0.0, t1, 5)
    sol = hopkur.simulate(
        model,
        x0,
        t1=t1,
        dt0=0.005,
        saveat=dfx.SaveAt(ts=ts),
        noise=sigma,
        key=jr.key(d),
    )
    assert sol.ys is not None
    overlaps = np.asarray(jnp.sum(sol.ys * x0[None], axis=-1))
    mean, se = overlaps.mean(axis=1), overlaps.std(axis=1) / np.sqrt(n)
    theory = np.exp(-(d - 1) * sigma**2 * np.asarray(ts) / 2)
    assert np.all(np.abs(mean - theory) <= 4 * se + 0.005), (mean, theory)


@pytest.mark.slow
def test_noise_keeps_norms_over_a_long_run():
    """10^5 retracted Heun steps of noisy coupled oscillators on S^3."""
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    sol = hopkur.simulate(
        model,
        _x0(8, 4),
        t1=1000.0,
        dt0=0.01,
        saveat=dfx.SaveAt(ts=jnp.linspace(0.0, 1000.0, 101)),
        max_steps=100_001,
        noise=0.5,
        key=jr.key(8),
    )
    assert sol.ys is not None
    assert float(jnp.max(jnp.abs(jnp.linalg.norm(sol.ys, axis=-1) - 1))) < 1e-13
