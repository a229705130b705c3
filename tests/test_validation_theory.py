"""Simulations at small N against the mean-field predictions of `hopkur.theory`.

Each test runs a seeded simulation and compares a time-averaged order parameter with
its N -> infinity prediction, within a tolerance made of the finite-N error: the
stationary fluctuations of r, of order sqrt((1 - r^2) / N) at one time (and smaller
after a time average), plus the finite-time and finite-step biases stated at each test.
The large-N versions are the figures of docs/validation.md (scripts/figures/).
"""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hopkur
import hopkur.theory as theory


def _time_averaged_r(models, y0s, *, t1, dt, **kwargs):
    """r averaged over the second half of [0, t1], one value per batched model."""
    ts = jnp.linspace(0.0, t1, 81)
    sol = hopkur.simulate_batch(
        models,
        y0s,
        batch_model=True,
        t1=t1,
        dt0=dt,
        saveat=dfx.SaveAt(ts=ts, fn=lambda t, y, args: jnp.mean(y, axis=-2)),
        max_steps=int(t1 / dt) + 10,
        **kwargs,
    )
    assert sol.ys is not None
    z = np.asarray(sol.ys)  # (batch, saves, D): the mean field
    late = np.asarray(ts) >= t1 / 2
    return np.linalg.norm(z, axis=-1)[:, late].mean(axis=1), z[:, late]


def _fluctuation(r, n):
    """The one-time standard deviation of r at size n: sqrt((1 - r^2) / n)."""
    return np.sqrt((1 - np.asarray(r) ** 2) / n)


@pytest.mark.parametrize("dim", [2, 3, 4])
def test_noisy_identical_oscillators_follow_von_mises_fisher(getkey, dim):
    # Above K_c the time-averaged r matches r = A_D(2 K r / sigma^2) within four
    # one-time fluctuations plus the step bias (the Heun step of the tangent noise
    # loses about 2 sigma^2 dt of the diffusion, which lowers 1 - r by as much);
    # below K_c, r is of the finite-size order sqrt(1 / N), enhanced by
    # 1 / (1 - K / K_c) as the transition nears.
    n, sigma, dt = 300, 1.0, 0.02
    k_c = theory.noisy_sphere_critical_coupling(sigma, dim)
    strengths = np.array([0.5 * k_c, 2.0 * k_c])
    models = eqx.filter_vmap(
        lambda k: hopkur.Kuramoto(hopkur.MeanFieldCoupling(strength=k))
    )(jnp.asarray(strengths))
    x0 = np.zeros((2, n, dim))
    x0[..., 0] = 1.0
    r, _ = _time_averaged_r(
        models, jnp.asarray(x0), t1=10.0, dt=dt, noise=sigma, key=getkey()
    )
    predicted = theory.noisy_sphere_order_parameter(strengths, sigma, dim)
    assert predicted[0] == 0 and predicted[1] > 0.5
    bias = 2 * sigma**2 * dt * (1 - predicted[1])
    assert abs(r[1] - predicted[1]) <= 4 * _fluctuation(predicted[1], n) + bias
    assert r[0] <= 4 / np.sqrt(n) / np.sqrt(1 - 0.5)


def test_sakaguchi_order_and_frequency_follow_ott_antonsen():
    # Lorentzian quantiles (no sampling noise in g), lag 0.6, K cos(alpha) = 4 gamma:
    # r within three one-time fluctuations of Ott-Antonsen, and the mean-field phase
    # turns at the predicted collective frequency (to 5% plus the same margin).
    n, gamma, dt, t1 = 1000, 0.5, 0.05, 30.0
    lags = np.array([0.0, 0.6])
    strengths = 4 * gamma / np.cos(lags)
    omega = hopkur.planar_rotations(
        jnp.asarray(hopkur.lorentzian_frequencies(n, gamma))
    )
    models = eqx.filter_vmap(
        lambda k, a: hopkur.Kuramoto(
            hopkur.MeanFieldCoupling(strength=k, phase_lag=a), omega=omega
        )
    )(jnp.asarray(strengths), jnp.asarray(lags))
    theta = np.random.default_rng(0).uniform(0, 2 * np.pi, n)
    x0 = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    r, z = _time_averaged_r(
        models,
        jnp.asarray(np.broadcast_to(x0, (2, n, 2))),
        t1=t1,
        dt=dt,
        solver=dfx.Heun(),
        stepsize_controller=dfx.ConstantStepSize(),
    )
    r_oa, omega_oa = theory.sakaguchi_order_parameter(strengths, lags, gamma)
    np.testing.assert_array_less(np.abs(r - r_oa), 3 * _fluctuation(r_oa, n))
    psi = np.unwrap(np.arctan2(z[..., 1], z[..., 0]), axis=1)
    measured = (psi[:, -1] - psi[:, 0]) / (t1 / 2 * (1 - 1 / 40))
    margin = 0.05 * np.abs(omega_oa) + 3 / np.sqrt(n)
    np.testing.assert_array_less(np.abs(measured - omega_oa), margin)
    assert measured[1] < -0.5  # the lagged cluster turns backwards


def test_gaussian_and_uniform_frequencies_follow_self_consistency():
    # Deterministic quantiles at K = 1.5 K_c for both densities: r within three
    # one-time fluctuations of the self-consistency root; below K_c (0.6 K_c) r stays
    # of the finite-size order.
    n, width, dt, t1 = 1000, 1.0, 0.05, 30.0
    families = [
        (theory.Gaussian(width), hopkur.gaussian_frequencies(n, width)),
        (theory.Uniform(width), hopkur.uniform_frequencies(n, width)),
    ]
    ratios = np.array([0.6, 1.5])
    strengths = np.concatenate(
        [ratios * theory.critical_coupling(g) for g, _ in families]
    )
    freqs = np.concatenate([np.broadcast_to(f, (2, n)) for _, f in families])
    omega = jax.vmap(hopkur.planar_rotations)(jnp.asarray(freqs))
    models = eqx.filter_vmap(
        lambda k, o: hopkur.Kuramoto(hopkur.MeanFieldCoupling(strength=k), omega=o)
    )(jnp.asarray(strengths), omega)
    theta = np.random.default_rng(1).uniform(0, 2 * np.pi, n)
    x0 = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    r, _ = _time_averaged_r(
        models,
        jnp.asarray(np.broadcast_to(x0, (4, n, 2))),
        t1=t1,
        dt=dt,
        solver=dfx.Heun(),
        stepsize_controller=dfx.ConstantStepSize(),
    )
    predicted = np.concatenate(
        [
            theory.order_parameter(ratios * theory.critical_coupling(g), g)
            for g, _ in families
        ]
    )
    locked = predicted > 0
    np.testing.assert_array_equal(locked, [False, True, False, True])
    np.testing.assert_array_less(
        np.abs(r - predicted)[locked], 3 * _fluctuation(predicted[locked], n)
    )
    np.testing.assert_array_less(r[~locked], 4 / np.sqrt(n) / np.sqrt(1 - 0.6))


def test_hopfield_retrieval_follows_ags(getkey):
    # Below the AGS critical load the sign network retrieves its cued patterns with
    # the AGS overlap m(alpha) (within 3 / sqrt(N), the spread of one overlap); at
    # twice alpha_c most cues fail.
    n = 400
    alpha_c = theory.hopfield_critical_load()
    loads = [0.4 * alpha_c, 2.0 * alpha_c]
    sweep = hopkur.capacity_sweep(n, loads, key=getkey(), trials=1, cues=16)
    m = theory.ags_overlap(np.asarray(loads[:1]))
    assert sweep.mean_overlap[0] >= m[0] - 3 / np.sqrt(n)
    assert sweep.retrieved_fraction[0] >= 0.9
    assert sweep.retrieved_fraction[1] < 0.5
