"""hopkur.theory: the mean-field predictions solve the equations they claim to solve,
reach the known limits and closed forms, and reject bad input."""

import math

import numpy as np
import pytest
import scipy.integrate as integrate
import scipy.special as special

import hopkur
import hopkur.theory as theory
from hopkur.theory import (
    _locked_integral,
    _locked_peak,
    _mean_resultant_length,
    _self_consistent_order,
)


UNIMODAL = [
    theory.Lorentzian(0.7),
    theory.Gaussian(1.3),
    theory.Uniform(0.9),
    theory.Bimodal(1.0, 0.4),  # 0.4 < 1/sqrt(3): still unimodal
]


def _locked_share(r, k, g):
    """r as the locked oscillators give it, in the omega form of the integral:
    int_{|w| <= K r} sqrt(1 - (w / K r)^2) g(w) dw (independent of the theta form)."""
    a = k * r
    value, _ = integrate.quad(
        lambda w: math.sqrt(max(0.0, 1 - (w / a) ** 2)) * float(g.pdf(w)),
        -a,
        a,
        points=[p for p in (-g.width, 0.0, g.width) if -a < p < a],
        limit=400,
        epsabs=1e-13,
        epsrel=1e-12,
    )
    return value


def test_public_as_an_attribute_of_hopkur():
    assert hopkur.theory is theory
    assert hopkur.theory.critical_coupling(hopkur.theory.Lorentzian(1.5)) == 3.0


# ------------------------------------------------------- critical coupling, K_c


def test_critical_coupling_closed_forms():
    assert math.isclose(theory.critical_coupling(theory.Lorentzian(0.7)), 1.4)
    assert math.isclose(
        theory.critical_coupling(theory.Gaussian(1.3)), 1.3 * math.sqrt(8 / math.pi)
    )
    assert math.isclose(theory.critical_coupling(theory.Uniform(0.9)), 3.6 / math.pi)
    gamma, centre = 1.0, 0.4
    assert math.isclose(
        theory.critical_coupling(theory.Bimodal(gamma, centre)),
        2 * (gamma**2 + centre**2) / gamma,
    )


def test_critical_coupling_rejects_a_bimodal_density():
    with pytest.raises(ValueError, match="bimodal"):
        theory.critical_coupling(theory.Bimodal(1.0, 0.6))


@pytest.mark.parametrize("g", UNIMODAL, ids=repr)
def test_pdf_is_a_symmetric_density(g):
    total, _ = integrate.quad(lambda w: float(g.pdf(w)), -np.inf, np.inf, limit=400)
    if isinstance(g, theory.Uniform):
        total, _ = integrate.quad(lambda w: float(g.pdf(w)), -g.width, g.width)
    assert math.isclose(total, 1.0, rel_tol=1e-6)
    w = np.linspace(0.0, 5.0, 101)
    assert np.allclose(g.pdf(w), g.pdf(-w))
    assert np.all(np.diff(g.pdf(w)) <= 1e-15)  # unimodal: non-increasing on [0, inf)


# ------------------------------------------------- Kuramoto's self-consistency, r(K)


@pytest.mark.parametrize(
    "g",
    UNIMODAL + [theory.Bimodal(1.0, 0.8), theory.Bimodal(1.0, 1.5)],
    ids=repr,
)
def test_order_parameter_solves_the_self_consistency(g):
    strengths = np.array([1.5, 2.5, 4.0, 7.0, 20.0]) * g.width
    r = theory.order_parameter(strengths, g)
    assert r.shape == strengths.shape
    assert np.any(r > 0)
    for k, rk in zip(strengths, r, strict=True):
        if rk > 0:
            assert abs(_locked_share(rk, k, g) - rk) < 1e-8, (k, rk)


@pytest.mark.parametrize("g", UNIMODAL, ids=repr)
def test_order_parameter_vanishes_below_and_grows_above_critical(g):
    kc = theory.critical_coupling(g)
    below = theory.order_parameter(kc * np.array([-1.0, 0.0, 0.5, 0.999]), g)
    assert np.all(below == 0)
    above = theory.order_parameter(kc * np.array([1.01, 1.1, 1.5, 3.0, 10.0, 1e3]), g)
    assert np.all(np.diff(above) > 0)
    assert above[-1] > 0.999 and above[-1] <= 1.0


def test_gaussian_order_parameter_is_kuramotos_square_root_at_threshold():
    # r^2 ~ 16 (K - K_c) / (-pi g''(0) K_c^4), with g''(0) = -g(0)/s^2.
    g = theory.Gaussian(1.3)
    kc = theory.critical_coupling(g)
    curvature = -float(g.pdf(0.0)) / g.width**2
    for excess in (1e-3, 1e-4):
        k = kc * (1 + excess)
        r = float(theory.order_parameter(k, g))
        predicted = 16 * (k - kc) / (-math.pi * curvature * kc**4)
        assert r < 0.1
        assert math.isclose(r**2, predicted, rel_tol=10 * excess)


def test_uniform_transition_is_first_order_with_jump_pi_over_4():
    g = theory.Uniform(0.9)
    kc = theory.critical_coupling(g)
    assert float(theory.order_parameter(kc * (1 - 1e-9), g)) == 0
    jump = float(theory.order_parameter(kc * (1 + 1e-9), g))
    assert abs(jump - math.pi / 4) < 1e-4
    # Above K_c all oscillators lock: (K/2w)(asin u + u sqrt(1-u^2)) = 1, u = w/(K r).
    for k in kc * np.array([1.01, 1.5, 4.0]):
        u = g.width / (k * float(theory.order_parameter(k, g)))
        assert u <= 1
        assert math.isclose(
            k / (2 * g.width) * (math.asin(u) + u * math.sqrt(1 - u * u)), 1.0
        )


def test_lorentzian_numerical_route_equals_the_closed_form():
    g = theory.Lorentzian(0.7)
    strengths = 1.4 * np.array([0.5, 1.0001, 1.01, 1.3, 2.0, 5.0, 50.0, 1e3])
    numerical = [_self_consistent_order(float(k), g) for k in strengths]
    closed = hopkur.kuramoto_order_theory(strengths, 0.7)
    assert np.allclose(numerical, closed, atol=1e-9, rtol=0)
    assert np.array_equal(theory.order_parameter(strengths, g), closed)


@pytest.mark.parametrize("separation", [0.8, 1.5, 4.0])
def test_bimodal_locked_integral_rises_then_falls(separation):
    # What the largest-root search relies on: F(x) has a single maximum.
    g = theory.Bimodal(1.0, separation)
    x = np.linspace(0.0, 8.0 * separation, 97)
    f = np.array([_locked_integral(float(v), g) for v in x])
    rising = np.diff(f) > 0
    assert rising[0] and not rising[-1]
    assert np.count_nonzero(rising[1:] != rising[:-1]) == 1
    peak, top = _locked_peak(g)
    assert top >= f.max() - 1e-12 and abs(peak - x[np.argmax(f)]) <= x[1]


def test_bimodal_largest_root_is_the_most_synchronised_state():
    # Bimodal with omega_0 > gamma: no stationary synchrony just above the Hopf point
    # 4 gamma, a synchronised branch at large K.
    g = theory.Bimodal(1.0, 1.5)
    r = theory.order_parameter(np.array([1.0, 2.0, 3.0, 6.0, 20.0]), g)
    assert np.all(r[:3] == 0)
    assert 0 < r[3] < r[4] < 1


# --------------------------------------------------------- Ott–Antonsen with lag


def test_ott_antonsen_without_lag_is_kuramoto_lorentzian():
    strengths = np.linspace(0.0, 10.0, 41)
    r, omega = theory.sakaguchi_order_parameter(strengths, 0.0, 0.8)
    assert np.allclose(r, theory.order_parameter(strengths, theory.Lorentzian(0.8)))
    assert np.all(np.isnan(omega[r == 0]))
    assert np.allclose(omega[r > 0], 0.0)


@pytest.mark.parametrize("lag", [-0.9, -0.3, 0.4, 1.2])
@pytest.mark.parametrize("k", [3.0, 6.0])
def test_ott_antonsen_state_solves_sakaguchis_self_consistency(lag, k):
    # In the frame rotating with Omega, chi = theta - psi + alpha obeys
    # chi' = (w - Omega) - K r sin chi; locked: <e^{i chi}> = sqrt(1 - s^2) + i s,
    # s = (w - Omega)/(K r); drifting: i (v - sgn v sqrt(v^2 - a^2)) / a, a = K r.
    # The order parameter is r e^{i alpha} = int g(w) <e^{i chi}> dw.
    gamma = 0.5
    r, omega = (float(v) for v in theory.sakaguchi_order_parameter(k, lag, gamma))
    assert r > 0
    g = theory.Lorentzian(gamma)
    a = k * r

    def locked(w, part):
        s = (w - omega) / a
        value = math.sqrt(max(0.0, 1 - s * s)) if part == 0 else s
        return value * float(g.pdf(w))

    def drifting(w):
        v = w - omega
        return (v - math.copysign(math.sqrt(v * v - a * a), v)) / a * float(g.pdf(w))

    real = integrate.quad(locked, omega - a, omega + a, args=(0,), epsabs=1e-13)[0]
    imag = integrate.quad(locked, omega - a, omega + a, args=(1,), epsabs=1e-13)[0]
    for lo, hi in ((-np.inf, omega - a), (omega + a, np.inf)):
        imag += integrate.quad(drifting, lo, hi, epsabs=1e-13, limit=400)[0]
    assert abs(complex(real, imag) - r * np.exp(1j * lag)) < 1e-7


def test_ott_antonsen_threshold_and_identical_oscillators():
    lag = 0.6
    kc = 2 * 0.5 / math.cos(lag)
    r, omega = theory.sakaguchi_order_parameter([0.99 * kc, 1.0001 * kc], lag, 0.5)
    assert r[0] == 0 and np.isnan(omega[0]) and 0 < r[1] < 0.02
    assert math.isclose(omega[1], -0.5 * 1.0001 * kc * math.sin(lag), rel_tol=1e-3)
    # gamma = 0: full synchrony, rotating at -K sin(alpha).
    r, omega = theory.sakaguchi_order_parameter([-1.0, 2.0], lag, 0.0)
    assert r[0] == 0 and r[1] == 1 and math.isclose(omega[1], -2 * math.sin(lag))


# ----------------------------------------------- noisy oscillators, von Mises–Fisher


@pytest.mark.parametrize("dim", [2, 3, 4, 7])
def test_mean_resultant_length_small_kappa_slope_and_shape(dim):
    kappa = np.array([1e-8, 1e-5, 1e-3])
    assert np.allclose(_mean_resultant_length(kappa, dim) / kappa, 1 / dim, rtol=1e-6)
    grid = np.linspace(0.0, 60.0, 601)
    a = _mean_resultant_length(grid, dim)
    assert a[0] == 0 and np.all(np.diff(a) > 0) and np.all(a < 1)
    assert np.all(np.diff(a, 2) <= 1e-12)  # concave: one root, K_c = D sigma^2 / 2


def test_mean_resultant_length_closed_forms():
    kappa = np.geomspace(1e-3, 300.0, 50)
    assert np.allclose(
        _mean_resultant_length(kappa, 2),
        special.i1e(kappa) / special.i0e(kappa),
        rtol=1e-13,
    )
    assert np.allclose(
        _mean_resultant_length(kappa, 3),
        1 / np.tanh(kappa) - 1 / kappa,
        rtol=1e-8,
    )
    # Where I_{D/2-1} underflows the continued fraction takes over, smoothly.
    tiny = np.array([1e-3, 1e-2, 1e-1])
    assert np.allclose(_mean_resultant_length(tiny, 600) * 600 / tiny, 1.0, rtol=1e-4)


@pytest.mark.parametrize("dim", [2, 3, 4])
def test_noisy_sphere_order_parameter_solves_the_self_consistency(dim):
    sigma = 0.8
    kc = theory.noisy_sphere_critical_coupling(sigma, dim)
    assert math.isclose(kc, dim * sigma**2 / 2)
    strengths = kc * np.array([0.5, 1.0, 1.001, 1.2, 2.0, 5.0, 100.0])
    r = theory.noisy_sphere_order_parameter(strengths, sigma, dim)
    assert np.all(r[:2] == 0) and np.all(np.diff(r[1:]) > 0)
    assert r[2] < 0.1
    residual = r - _mean_resultant_length(2 * strengths * r / sigma**2, dim)
    assert np.allclose(residual, 0.0, atol=1e-12)
    # Large coupling: r ~ 1 - (D - 1) sigma^2 / (4 K).
    k = strengths[-1]
    assert math.isclose(1 - r[-1], (dim - 1) * sigma**2 / (4 * k), rel_tol=0.02)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_noisy_sphere_square_root_law(dim):
    # From A_D(k) = k/D - k^3/(D^2 (D+2)): r^2 ~ (D+2)(K - K_c)/(D K_c).
    kc = theory.noisy_sphere_critical_coupling(0.6, dim)
    for excess in (1e-3, 1e-4):
        r = float(theory.noisy_sphere_order_parameter(kc * (1 + excess), 0.6, dim))
        assert math.isclose(r**2, (dim + 2) * excess / dim, rel_tol=5 * excess)


def test_noisy_circle_is_the_classical_phase_diffusion_threshold():
    # D = 2: K_c = 2 D_noise with D_noise = sigma^2 / 2.
    assert math.isclose(theory.noisy_sphere_critical_coupling(1.5, 2), 1.5**2)
    assert theory.noisy_sphere_order_parameter(3.0, 0.0, 3) == 1


# ------------------------------------------------------------ Hopfield: AGS at T = 0


def test_hopfield_critical_load():
    alpha_c = theory.hopfield_critical_load()
    assert 0.137 <= alpha_c <= 0.139
    # It is the largest load with a retrieval solution.
    m = theory.ags_overlap(np.array([alpha_c * (1 - 1e-9), alpha_c * (1 + 1e-9)]))
    assert 0.96 < m[0] < 0.97 and m[1] == 0


def test_ags_overlap_solves_the_t0_equations():
    loads = np.array([0.02, 0.05, 0.1, 0.13])
    m = theory.ags_overlap(loads)
    assert m[1] > 0.99 and np.all(np.diff(m) < 0) and np.all(m > 0.96)
    for alpha, mi in zip(loads, m, strict=True):
        # Find r from m = erf(m / sqrt(2 alpha r)), then check C and r = 1/(1-C)^2.
        y = special.erfinv(mi) if mi < 1 - 1e-15 else None
        if y is None:
            continue
        r = (mi / y) ** 2 / (2 * alpha)
        c = math.sqrt(2 / (math.pi * alpha * r)) * math.exp(-(mi**2) / (2 * alpha * r))
        assert math.isclose(r, 1 / (1 - c) ** 2, rel_tol=1e-6), alpha
    assert theory.ags_overlap(0.0) == 1 and theory.ags_overlap(0.2) == 0


# -------------------------------------------------------------------- bad input


@pytest.mark.parametrize("cls", [theory.Lorentzian, theory.Gaussian, theory.Uniform])
@pytest.mark.parametrize("width", [0.0, -1.0, math.nan, math.inf])
def test_bad_widths(cls, width):
    with pytest.raises(ValueError, match=r"width=\.\.\."):
        cls(width)


def test_bad_bimodal_and_distribution():
    with pytest.raises(ValueError, match=r"separation=\.\.\."):
        theory.Bimodal(1.0, -0.5)
    with pytest.raises(ValueError, match=r"width=\.\.\."):
        theory.Bimodal(math.nan, 1.0)
    with pytest.raises(TypeError, match="distribution"):
        theory.order_parameter(1.0, "gaussian")  # pyright: ignore


def test_bad_strengths_noise_dims_lags_loads():
    with pytest.raises(ValueError, match=r"strength=\.\.\."):
        theory.order_parameter([1.0, math.nan], theory.Gaussian(1.0))
    for noise in (-0.1, math.nan):
        with pytest.raises(ValueError, match=r"noise=\.\.\."):
            theory.noisy_sphere_order_parameter(1.0, noise, 3)
        with pytest.raises(ValueError, match=r"noise=\.\.\."):
            theory.noisy_sphere_critical_coupling(noise, 3)
    for dim in (1, 0):
        with pytest.raises(ValueError, match=r"dim=\.\.\."):
            theory.noisy_sphere_order_parameter(1.0, 0.5, dim)
    for lag in (math.pi / 2, -2.0, math.nan):
        with pytest.raises(ValueError, match=r"phase_lag=\.\.\."):
            theory.sakaguchi_order_parameter(3.0, lag, 0.5)
    for width in (-0.5, math.nan):
        with pytest.raises(ValueError, match=r"width=\.\.\."):
            theory.sakaguchi_order_parameter(3.0, 0.1, width)
    for load in (-0.01, math.nan):
        with pytest.raises(ValueError, match=r"load=\.\.\."):
            theory.ags_overlap(load)


def test_ags_overlap_at_small_loads():
    # A regression: the bracket [y*, 1/sqrt(2 alpha)] lost its sign change to
    # rounding at some small loads (erf(y) = 1 in floating point).
    loads = np.linspace(0.001, 0.3, 400)
    m = theory.ags_overlap(loads)
    below = loads < theory.hopfield_critical_load()
    assert np.all((m[below] > 0.96) & (m[below] <= 1)) and np.all(m[~below] == 0)
    assert np.all(np.diff(m[below]) <= 0)
