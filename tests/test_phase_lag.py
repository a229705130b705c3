"""Phase lag (MODELS.md §6): the Sakaguchi–Kuramoto model at D = 2, its D > 2
generalisation by a rotation of the neighbours, and the loss of the gradient
structure. The tests run with x64 (conftest), evaluating vector fields only."""

import jax.numpy as jnp
import numpy as np
import pytest

import hopkur


def _phases(seed, n):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2 * np.pi, n)
    weights = rng.normal(size=(n, n))
    weights = (weights + weights.T) / 2
    np.fill_diagonal(weights, 0.0)
    return rng, theta, weights


def _dtheta(model, theta):
    x = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    dx = np.asarray(model.vector_field(0.0, x, None))
    return -np.sin(theta) * dx[:, 0] + np.cos(theta) * dx[:, 1]


def _sakaguchi(freqs, coupling, theta, alpha):
    diff = theta[None, :] - theta[:, None] - alpha
    return freqs + np.sum(coupling * np.sin(diff), axis=1)


@pytest.mark.parametrize("seed", range(3))
def test_sakaguchi_at_d2(seed):
    """dtheta_i/dt = omega_i + sum_j K_ij sin(theta_j - theta_i - alpha) to 1e-10,
    for the dense, mean-field and edge couplings (every evaluation method)."""
    n = 9
    rng, theta, weights = _phases(seed, n)
    alpha = rng.uniform(-np.pi, np.pi)
    freqs = rng.normal(size=n)
    omega = hopkur.planar_rotations(jnp.asarray(freqs))
    edges = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    expected = _sakaguchi(freqs, weights, theta, alpha)
    couplings: list[hopkur.AbstractOscillatorCoupling] = [
        hopkur.DenseCoupling(weights, phase_lag=alpha)
    ]
    for method in ("auto", "segment", "dense", "native"):
        interaction = hopkur.LinearInteraction(
            jnp.asarray(weights[edges.T[0], edges.T[1]])
        )
        couplings.append(
            hopkur.EdgeCoupling(edges, interaction, n=n, method=method, phase_lag=alpha)
        )
    for coupling in couplings:
        got = _dtheta(hopkur.Kuramoto(coupling, omega=omega), theta)
        assert np.max(np.abs(got - expected)) < 1e-10
    strength = rng.uniform(0.5, 3.0)
    mean_field = (strength / n) * (1 - np.eye(n))
    model = hopkur.Kuramoto(
        hopkur.MeanFieldCoupling(strength, phase_lag=alpha), omega=omega
    )
    expected = _sakaguchi(freqs, mean_field, theta, alpha)
    assert np.max(np.abs(_dtheta(model, theta) - expected)) < 1e-10


def test_lag_zero_is_the_plain_model_and_gradient_flag():
    rng, theta, weights = _phases(5, 6)
    plain = hopkur.Kuramoto(hopkur.DenseCoupling(weights))
    zero = hopkur.Kuramoto(hopkur.DenseCoupling(weights, phase_lag=0.0))
    lagged = hopkur.Kuramoto(hopkur.DenseCoupling(weights, phase_lag=0.3))
    assert np.allclose(_dtheta(plain, theta), _dtheta(zero, theta), atol=1e-14)
    assert bool(plain.is_gradient_system) and bool(zero.is_gradient_system)
    assert not bool(lagged.is_gradient_system)
    assert not bool(
        hopkur.Kuramoto(
            hopkur.MeanFieldCoupling(1.0, phase_lag=-0.1)
        ).is_gradient_system
    )


@pytest.mark.parametrize("seed", range(3))
def test_energy_rises_with_a_lag(seed):
    """Identical oscillators near synchrony with alpha in (pi/2, pi): the lag turns the
    attraction into repulsion and the energy (that of alpha = 0) rises, dE/dt > 0;
    without the lag it falls."""
    rng = np.random.default_rng(seed)
    n, d = 12, 3
    x = hopkur.normalise(
        jnp.asarray(np.array([1.0, 0.0, 0.0]) + 0.2 * rng.normal(size=(n, d)))
    )
    alpha = rng.uniform(2.0, 3.0)
    lagged = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0, phase_lag=alpha))
    plain = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    assert float(lagged.energy_rate(0.0, x, None)) > 0
    assert float(plain.energy_rate(0.0, x, None)) < 0


def test_lag_rotation_higher_dimensions():
    """D > 2: the default rotation turns the (e1, e2) plane; states in that plane
    follow Sakaguchi exactly, the other axes are left alone; a generator A gives
    exp(-alpha A), and the default equals the generator e2 e1^T - e1 e2^T."""
    alpha, d = 0.4, 4
    rotation = np.asarray(hopkur.lag_rotation(alpha, d))
    assert np.allclose(rotation @ rotation.T, np.eye(d), atol=1e-14)
    assert np.allclose(rotation[2:, 2:], np.eye(2)) and np.allclose(rotation[:2, 2:], 0)
    theta = 1.1
    rotated = rotation @ np.array([np.cos(theta), np.sin(theta), 0.0, 0.0])
    assert np.allclose(rotated[:2], [np.cos(theta - alpha), np.sin(theta - alpha)])
    generator = np.zeros((d, d))
    generator[1, 0], generator[0, 1] = 1.0, -1.0
    assert np.allclose(hopkur.lag_rotation(alpha, d, generator), rotation, atol=1e-12)
    # a state in the (e1, e2) plane: the D = 4 model reduces to Sakaguchi
    _, phases, weights = _phases(7, 5)
    x = np.zeros((5, d))
    x[:, 0], x[:, 1] = np.cos(phases), np.sin(phases)
    dx = np.asarray(
        hopkur.Kuramoto(hopkur.DenseCoupling(weights, phase_lag=alpha)).vector_field(
            0.0, jnp.asarray(x), None
        )
    )
    assert np.allclose(dx[:, 2:], 0, atol=1e-14)
    got = -np.sin(phases) * dx[:, 0] + np.cos(phases) * dx[:, 1]
    assert np.max(np.abs(got - _sakaguchi(0.0, weights, phases, alpha))) < 1e-10


def test_with_phase_lag_and_bad_input():
    coupling = hopkur.with_phase_lag(hopkur.MeanFieldCoupling(1.0), 0.5)
    assert float(coupling.phase_lag) == 0.5
    model = hopkur.with_phase_lag(
        hopkur.Kuramoto(hopkur.DenseCoupling(np.ones((3, 3)))), 0.5
    )
    assert not bool(model.is_gradient_system)
    with pytest.raises(
        ValueError, match=r"with_phase_lag\(coupling=...\).*BlockCoupling"
    ):
        hopkur.with_phase_lag(hopkur.BlockCoupling(np.zeros((2, 2, 2, 2))), 0.1)
    with pytest.raises(
        ValueError, match=r"with_phase_lag\(coupling=...\).*AdditiveCoupling"
    ):
        hopkur.with_phase_lag(hopkur.AdditiveCoupling(1.0), 0.1)
    with pytest.raises(ValueError, match=r"phase_lag=...\)` must be finite"):
        hopkur.MeanFieldCoupling(1.0, phase_lag=float("nan"))
    with pytest.raises(ValueError, match=r"phase_lag=...\)` must have shape"):
        hopkur.DenseCoupling(np.ones((3, 3)), phase_lag=np.ones(2))
    with pytest.raises(ValueError, match=r"lag_generator=...\)` needs a `phase_lag`"):
        hopkur.MeanFieldCoupling(1.0, lag_generator=np.zeros((3, 3)))
    with pytest.raises(
        ValueError, match=r"with_phase_lag\(phase_lag=...\)` must be finite"
    ):
        hopkur.with_phase_lag(hopkur.MeanFieldCoupling(1.0), float("inf"))
