r"""Mean-field theory beside the simulations: the predictions of the $N \to \infty$
limit that hopkur's simulations are checked against.

- Kuramoto oscillators ($D = 2$, all-to-all coupling $K/N$) with natural frequencies
  drawn from a density $g$ ([`hopkur.theory.Lorentzian`][],
  [`hopkur.theory.Gaussian`][], [`hopkur.theory.Uniform`][],
  [`hopkur.theory.Bimodal`][]): the critical coupling $K_c = 2/(\pi g(0))$ and the
  stationary order parameter from Kuramoto's self-consistency equation.
- The Sakaguchi–Kuramoto model (phase lag $\alpha$) with Lorentzian frequencies: the
  Ott–Antonsen order parameter and the collective frequency.
- Identical oscillators on $S^{D-1}$ with tangent noise: the von Mises–Fisher
  stationary state and its critical coupling $K_c = D\sigma^2/2$.
- The Hebbian Hopfield network at zero temperature: the critical load
  $\alpha_c \approx 0.138$ and the retrieval overlap of Amit, Gutfreund and
  Sompolinsky.

Everything here is NumPy/SciPy (no JAX): inputs are array-likes, outputs NumPy arrays,
for plots and for the tolerances of tests. The derivations are on the Theory page
"Mean-field theory" (docs/theory/mean-field.md); the conventions are hopkur's
(MODELS.md §2 and §6): positive coupling synchronises, `hopkur.MeanFieldCoupling(K)` is
$K_{ij} = K/N$, the phase lag enters as $\sin(\theta_j - \theta_i - \alpha)$ and the
noise as $\sigma P_{x_i} \circ dW_i$ (Stratonovich).

This module is long because the derivations' formulas, each with its validity range,
sit in the docstrings next to the short code that evaluates them.
"""

import dataclasses
import functools
import math
import numbers
from collections.abc import Sequence as _Sequence
from typing import cast as _cast

import numpy as np
import scipy.integrate as _quadrature
import scipy.optimize as _optimize
import scipy.special as _special
from jaxtyping import ArrayLike as _ArrayLike

from ._synchrony import kuramoto_order_theory as _lorentzian_order


_Values = _ArrayLike | _Sequence[float]


def _finite(call: str, name: str, value, *, minimum: float | None = None):
    """`value` as a float array, checked finite (and `>= minimum`)."""
    array = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"`hopkur.theory.{call}({name}=...)` must be finite; got {value}."
        )
    if minimum is not None and not np.all(array >= minimum):
        raise ValueError(
            f"`hopkur.theory.{call}({name}=...)` must be >= {minimum}; got {value}."
        )
    return array


def _brent(f, low: float, high: float, *, xtol: float = 1e-14) -> float:
    """Brent's root of `f` in `[low, high]` (`f(low)`, `f(high)` of opposite signs)."""
    root = _optimize.brentq(f, low, high, xtol=xtol, rtol=np.float64(1e-14))
    return float(_cast(float, root))


def _number(call: str, name: str, value, *, zero: bool = False) -> float:
    """`value` checked to be a finite real number > 0 (>= 0 with `zero`)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    number = float(value) if ok else math.nan  # pyright: ignore[reportArgumentType]
    if not (math.isfinite(number) and (number > 0 or (zero and number == 0))):
        raise ValueError(
            f"`hopkur.theory.{call}({name}=...)` must be a finite number "
            f"{'>=' if zero else '>'} 0; got {value!r}."
        )
    return number


# ------------------------------------------------------------------ distributions


class _Distribution:
    """What the self-consistency needs of a symmetric density: `pdf`, whether it is
    unimodal, and the frequencies $|\\omega|$ where it changes (quadrature break
    points)."""

    width: int | float

    def __post_init__(self):
        _number(type(self).__name__, "width", self.width)

    def pdf(self, omega: _Values) -> np.ndarray:
        raise NotImplementedError

    def _is_unimodal(self) -> bool:
        return True

    def _scales(self) -> tuple[float, ...]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Lorentzian(_Distribution):
    r"""The Lorentzian (Cauchy) density of half width $\gamma$,
    $g(\omega) = \frac{\gamma/\pi}{\omega^2 + \gamma^2}$: the distribution of
    [`hopkur.lorentzian_frequencies`][]. $g(0) = 1/(\pi\gamma)$, so $K_c = 2\gamma$.

    **Arguments:**

    - `width`: the half width $\gamma > 0$.
    """

    width: int | float

    def pdf(self, omega: _Values) -> np.ndarray:
        r"""The density $g(\omega)$ (any shape)."""
        omega = np.asarray(omega, dtype=float)
        return np.asarray((self.width / np.pi) / (omega**2 + self.width**2))

    def _scales(self) -> tuple[float, ...]:
        return tuple(self.width * s for s in (1.0, 10.0, 100.0, 1000.0))


@dataclasses.dataclass(frozen=True)
class Gaussian(_Distribution):
    r"""The normal density of standard deviation $s$,
    $g(\omega) = e^{-\omega^2/(2s^2)}/(s\sqrt{2\pi})$: the distribution of
    `hopkur.gaussian_frequencies`. $K_c = s\sqrt{8/\pi} \approx 1.596\,s$.

    **Arguments:**

    - `width`: the standard deviation $s > 0$.
    """

    width: int | float

    def pdf(self, omega: _Values) -> np.ndarray:
        r"""The density $g(\omega)$ (any shape)."""
        u = np.asarray(omega, dtype=float) / self.width
        return np.asarray(np.exp(-0.5 * u**2) / (self.width * math.sqrt(2 * math.pi)))

    def _scales(self) -> tuple[float, ...]:
        return tuple(self.width * s for s in (1.0, 3.0, 8.0))


@dataclasses.dataclass(frozen=True)
class Uniform(_Distribution):
    r"""The uniform density on $[-w, w]$, $g(\omega) = 1/(2w)$ for $|\omega| \le w$: the
    distribution of `hopkur.uniform_frequencies`. $K_c = 4w/\pi$, where the transition
    is first order: $r$ jumps from 0 to $\pi/4$.

    **Arguments:**

    - `width`: the half width $w > 0$ of the support.
    """

    width: int | float

    def pdf(self, omega: _Values) -> np.ndarray:
        r"""The density $g(\omega)$ (any shape)."""
        omega = np.asarray(omega, dtype=float)
        return np.where(np.abs(omega) <= self.width, 0.5 / self.width, 0.0)

    def _scales(self) -> tuple[float, ...]:
        return (float(self.width),)


@dataclasses.dataclass(frozen=True)
class Bimodal(_Distribution):
    r"""Two Lorentzians of half width $\gamma$ centred at $\pm\omega_0$,
    $g(\omega) = \tfrac12\big[L_\gamma(\omega - \omega_0) + L_\gamma(\omega + \omega_0)
    \big]$, $L_\gamma(u) = \frac{\gamma/\pi}{u^2 + \gamma^2}$: the distribution of
    `hopkur.bimodal_frequencies`. It is unimodal (peaked at 0) when
    $\omega_0 \le \gamma/\sqrt3$ and bimodal beyond.

    **Arguments:**

    - `width`: the half width $\gamma > 0$ of each peak.
    - `separation`: the centre $\omega_0 \ge 0$ of each peak.
    """

    width: int | float
    separation: int | float

    def __post_init__(self):
        super().__post_init__()
        _number("Bimodal", "separation", self.separation, zero=True)

    def pdf(self, omega: _Values) -> np.ndarray:
        r"""The density $g(\omega)$ (any shape)."""
        omega = np.asarray(omega, dtype=float)
        gamma, centre = self.width, self.separation
        return np.asarray(
            (gamma / (2 * np.pi))
            * (
                1 / ((omega - centre) ** 2 + gamma**2)
                + 1 / ((omega + centre) ** 2 + gamma**2)
            )
        )

    def _is_unimodal(self) -> bool:
        return 3 * self.separation**2 <= self.width**2

    def _scales(self) -> tuple[float, ...]:
        gamma, centre = self.width, self.separation
        edges = (centre - gamma, centre, centre + gamma, centre + 10 * gamma)
        return tuple(e for e in edges if e > 0) + (centre + 100 * gamma,)


_DISTRIBUTIONS = (Lorentzian, Gaussian, Uniform, Bimodal)


def _check_distribution(
    call: str, distribution
) -> Lorentzian | Gaussian | Uniform | Bimodal:
    if not isinstance(distribution, _DISTRIBUTIONS):
        raise TypeError(
            f"`hopkur.theory.{call}(distribution=...)` must be one of "
            "hopkur.theory.Lorentzian, Gaussian, Uniform or Bimodal; got "
            f"{distribution!r}."
        )
    return distribution


# --------------------------------------------------------- Kuramoto's self-consistency


def critical_coupling(distribution: Lorentzian | Gaussian | Uniform | Bimodal) -> float:
    r"""Kuramoto's critical coupling $K_c = \dfrac{2}{\pi g(0)}$, where the incoherent
    state of $\dot\theta_i = \omega_i + \frac KN\sum_j\sin(\theta_j - \theta_i)$ loses
    stability as $N \to \infty$, for natural frequencies drawn from a symmetric
    unimodal density $g$.

    Lorentzian of half width $\gamma$: $2\gamma$; Gaussian of standard deviation $s$:
    $s\sqrt{8/\pi}$; uniform on $[-w, w]$: $4w/\pi$; [`hopkur.theory.Bimodal`][] with
    $\omega_0 \le \gamma/\sqrt3$ (still unimodal): $2(\gamma^2 + \omega_0^2)/\gamma$.

    **Arguments:**

    - `distribution`: the frequency density, symmetric about 0 and unimodal.

    **Returns:**

    $K_c$, a float.

    **Raises:**

    `ValueError` for a bimodal density ([`hopkur.theory.Bimodal`][] with
    $\omega_0 > \gamma/\sqrt3$): there $g(0)$ is a local minimum and the incoherent
    state loses stability through other bifurcations (see the Theory page).
    """
    distribution = _check_distribution("critical_coupling", distribution)
    if not distribution._is_unimodal():
        raise ValueError(
            "`hopkur.theory.critical_coupling(distribution=...)` needs a unimodal "
            f"density; {distribution!r} is bimodal (separation > width/sqrt(3)), "
            "so K_c = 2/(pi g(0)) does not describe its transition."
        )
    return 2.0 / (math.pi * float(distribution.pdf(0.0)))


def _locked_integral(x: float, distribution: _Distribution) -> float:
    r"""$F(x) = \int_{-\pi/2}^{\pi/2}\cos^2\theta\, g(x\sin\theta)\,d\theta$: the locked
    oscillators' share of the order parameter, $r = K r F(K r)$."""
    if x == 0:
        return 0.5 * math.pi * float(distribution.pdf(0.0))
    points = [math.asin(s / x) for s in distribution._scales() if s < x]

    def integrand(theta):
        return math.cos(theta) ** 2 * float(distribution.pdf(x * math.sin(theta)))

    value, _ = _quadrature.quad(
        integrand, 0.0, 0.5 * math.pi, points=points or None, limit=200
    )
    return 2 * value  # the integrand is even in theta


@functools.cache
def _locked_peak(distribution: _Distribution) -> tuple[float, float]:
    r"""Where $F$ is largest, $(x^*, F(x^*))$: $x^* = 0$ for a unimodal density ($F$
    decreases); for a bimodal one $F$ rises to $x^*$, near the peaks, and then falls."""
    if distribution._is_unimodal():
        return 0.0, _locked_integral(0.0, distribution)
    assert isinstance(distribution, Bimodal)
    scale = 4 * (distribution.separation + distribution.width)
    grid = np.linspace(0.0, scale, 49)
    best = int(np.argmax([_locked_integral(float(x), distribution) for x in grid]))
    found = _optimize.minimize_scalar(
        lambda x: -_locked_integral(x, distribution),
        bounds=(float(grid[max(best - 1, 0)]), float(grid[min(best + 1, 48)])),
        method="bounded",
        options={"xatol": 1e-12 * scale},
    )
    return float(found.x), -float(found.fun)


def _self_consistent_order(strength: float, distribution: _Distribution) -> float:
    r"""The largest root $r = x/K$ of $K F(x) = 1$ on $x \in (0, K]$, or 0.

    $F$ rises to its maximum at $x^*$ (`_locked_peak`) and then falls, so there is a
    root beyond $x^*$ iff $K F(x^*) > 1$ (which implies $K > x^*$, since
    $F(x) \le 1/x$), and it is the largest: the most synchronised stationary state.
    """
    peak, top = _locked_peak(distribution)
    if strength * top <= 1:
        return 0.0

    def excess(x):
        return strength * _locked_integral(x, distribution) - 1.0

    if excess(strength) >= 0:  # F(x) <= 1/x: only when K r = K to rounding
        return 1.0
    return _brent(excess, peak, strength) / strength


def order_parameter(
    strength: _Values, distribution: Lorentzian | Gaussian | Uniform | Bimodal
) -> np.ndarray:
    r"""The stationary order parameter $r(K)$ of the Kuramoto model
    $\dot\theta_i = \omega_i + \frac KN\sum_j\sin(\theta_j - \theta_i)$ as
    $N \to \infty$, from Kuramoto's self-consistency equation for the locked
    oscillators ($|\omega| \le K r$, at $\sin\theta = \omega/(Kr)$):

    $$r = K r\int_{-\pi/2}^{\pi/2}\cos^2\theta\; g(K r\sin\theta)\,d\theta,$$

    valid for any density $g$ symmetric about 0 (the drifting oscillators then add
    nothing to $r$).

    - Lorentzian: the closed form $r = \sqrt{1 - 2\gamma/K}$ for $K > 2\gamma$
      ([`hopkur.kuramoto_order_theory`][]).
    - Gaussian and the other unimodal densities: the unique nontrivial root, found
      numerically, for $K > K_c$ ([`hopkur.theory.critical_coupling`][]); near
      threshold $r^2 \approx 16(K - K_c)/(-\pi g''(0) K_c^4)$.
    - Uniform on $[-w, w]$: a first-order transition; $r = 0$ for $K \le K_c = 4w/\pi$,
      and above it every oscillator is locked, with $r$ jumping to $\pi/4$ at $K_c^+$.
    - Bimodal (beyond $\omega_0 > \gamma/\sqrt3$): the largest root, i.e. the most
      synchronised stationary state where one exists, else 0. Other attractors
      (standing waves, coexistence with incoherence) are not described.

    **Arguments:**

    - `strength`: coupling strengths $K$ (any shape; $K \le 0$ gives 0).
    - `distribution`: the frequency density $g$, one of
      [`hopkur.theory.Lorentzian`][], [`hopkur.theory.Gaussian`][],
      [`hopkur.theory.Uniform`][], [`hopkur.theory.Bimodal`][].

    **Returns:**

    $r(K) \in [0, 1]$, a NumPy array of the shape of `strength`: 0 below the
    transition.
    """
    distribution = _check_distribution("order_parameter", distribution)
    strength = _finite("order_parameter", "strength", strength)
    if isinstance(distribution, Lorentzian):
        return _lorentzian_order(strength, float(distribution.width))
    solve = np.vectorize(
        lambda k: _self_consistent_order(float(k), distribution), otypes=[float]
    )
    return solve(strength)


# --------------------------------------------------------------- Ott–Antonsen, lag


def sakaguchi_order_parameter(
    strength: _Values, phase_lag: _Values, width: int | float
) -> tuple[np.ndarray, np.ndarray]:
    r"""The stationary order parameter and collective frequency of the
    Sakaguchi–Kuramoto model
    $\dot\theta_i = \omega_i + \frac KN\sum_j\sin(\theta_j - \theta_i - \alpha)$
    with Lorentzian natural frequencies of half width $\gamma$ (centred at 0), from the
    Ott–Antonsen reduction $\dot z = -\gamma z + \frac K2\big(e^{-i\alpha}z -
    e^{i\alpha}|z|^2 z\big)$ of $z = r e^{i\psi}$:

    $$r^2 = 1 - \frac{2\gamma}{K\cos\alpha}, \qquad
    \Omega = \dot\psi = -\frac K2\sin\alpha\,(1 + r^2)
    = -K\sin\alpha + \gamma\tan\alpha,$$

    for $K\cos\alpha > 2\gamma$; below, the incoherent state $r = 0$ is stable and has
    no collective frequency. With $\alpha > 0$ the synchronised cluster rotates
    backwards ($\Omega < 0$); at $\alpha = 0$ this is
    [`hopkur.theory.order_parameter`][] for [`hopkur.theory.Lorentzian`][]. Exact as
    $N \to \infty$ on the invariant Ott–Antonsen manifold.

    **Arguments:**

    - `strength`: coupling strengths $K$ (`hopkur.MeanFieldCoupling(K)`, any shape).
    - `phase_lag`: the lag $\alpha \in (-\pi/2, \pi/2)$ (broadcast with `strength`).
    - `width`: the half width $\gamma \ge 0$ ($\gamma = 0$: identical oscillators).

    **Returns:**

    A tuple `(r, Omega)` of NumPy arrays of the broadcast shape: $r \in [0, 1]$, and
    $\Omega$ where $r > 0$, NaN where $r = 0$.
    """
    call = "sakaguchi_order_parameter"
    strength = _finite(call, "strength", strength)
    lag = _finite(call, "phase_lag", phase_lag)
    if not np.all(np.abs(lag) < 0.5 * math.pi):
        raise ValueError(
            f"`hopkur.theory.{call}(phase_lag=...)` must lie in (-pi/2, pi/2), where "
            f"cos(phase_lag) > 0; got {phase_lag}."
        )
    gamma = _number(call, "width", width, zero=True)
    strength, lag = np.broadcast_arrays(strength, lag)
    effective = strength * np.cos(lag)
    r = np.where(effective > 2 * gamma, _lorentzian_order(effective, gamma), 0.0)
    omega = np.where(r > 0, -0.5 * strength * np.sin(lag) * (1 + r**2), np.nan)
    return r, omega


# ------------------------------------------------------- noisy oscillators on spheres


def _mean_resultant_length(kappa, dim: int) -> np.ndarray:
    r"""$A_D(\kappa) = I_{D/2}(\kappa)/I_{D/2-1}(\kappa)$, the mean resultant length
    $E[m\cdot x]$ of the von Mises–Fisher density $\propto e^{\kappa\,m\cdot x}$ on
    $S^{D-1}$ ($\kappa \ge 0$)."""
    kappa = np.asarray(kappa, dtype=float)
    nu = 0.5 * dim - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = _special.ive(nu + 1, kappa) / _special.ive(nu, kappa)
    # Where I_{D/2-1} underflows (kappa << D), the continued fraction
    # A = 1/(2(nu+1)/kappa + 1/(2(nu+2)/kappa + ...)) converges in a few terms.
    fraction = np.zeros_like(kappa)
    safe = np.maximum(kappa, 1e-300)
    for k in range(60, 0, -1):
        fraction = 1.0 / (2 * (nu + k) / safe + fraction)
    ratio = np.where(np.isfinite(ratio), ratio, fraction)
    series = kappa / dim - kappa**3 / (dim**2 * (dim + 2))
    return np.where(kappa < 1e-4, series, ratio)


def _check_noise_and_dim(call: str, noise, dim) -> float:
    sigma = float(_finite(call, "noise", noise, minimum=0.0))
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 2:
        raise ValueError(
            f"`hopkur.theory.{call}(dim=...)` must be an integer >= 2 (the sphere "
            f"S^(D-1) lives in R^D); got {dim!r}."
        )
    return sigma


def noisy_sphere_critical_coupling(noise: int | float, dim: int) -> float:
    r"""The critical coupling $K_c = D\sigma^2/2$ of identical noisy oscillators on
    $S^{D-1}$, $dx_i = \frac KN P_{x_i}\sum_j x_j\,dt + \sigma P_{x_i}\circ dW_i$,
    as $N \to \infty$: below it the uniform (incoherent) density is the only stationary
    state, above it the von Mises–Fisher state of
    [`hopkur.theory.noisy_sphere_order_parameter`][] branches off continuously.
    At $D = 2$ it is the classical $K_c = 2D_\text{noise}$ with phase diffusion
    $D_\text{noise} = \sigma^2/2$.

    **Arguments:**

    - `noise`: the noise amplitude $\sigma \ge 0$ (`hopkur.simulate(noise=...)`).
    - `dim`: the dimension $D \ge 2$ of the oscillators' space.

    **Returns:**

    $K_c$, a float.
    """
    sigma = _check_noise_and_dim("noisy_sphere_critical_coupling", noise, dim)
    return 0.5 * dim * sigma**2


def _vmf_order(strength: float, sigma: float, dim: int) -> float:
    """The root r > 0 of r = A_D(2 K r / sigma^2), or 0."""
    if sigma == 0:
        return 1.0 if strength > 0 else 0.0
    gain = 2 * strength / sigma**2  # kappa = gain * r
    if gain <= dim:  # A_D is concave with slope 1/D at 0: no root below K_c
        return 0.0

    def excess(kappa):
        return float(_mean_resultant_length(kappa, dim)) - kappa / gain

    low = 0.5 * gain
    while excess(low) <= 0:
        low *= 0.5
        if low < 1e-300:
            return 0.0
    return _brent(excess, low, gain, xtol=1e-300) / gain


def noisy_sphere_order_parameter(
    strength: _Values, noise: int | float, dim: int
) -> np.ndarray:
    r"""The stationary order parameter of identical oscillators on $S^{D-1}$ with
    all-to-all coupling (`hopkur.MeanFieldCoupling(K)`, no natural frequencies) and
    isotropic tangent noise, $dx_i = \frac KN P_{x_i}\sum_j x_j\,dt +
    \sigma P_{x_i}\circ dW_i$ (Stratonovich), as $N \to \infty$.

    The one-oscillator density is von Mises–Fisher, $p(x) \propto
    e^{\kappa\,\hat m\cdot x}$ with $\kappa = 2Kr/\sigma^2$ about the mean direction
    $\hat m$, and $r$ solves

    $$r = A_D\Big(\frac{2Kr}{\sigma^2}\Big), \qquad
    A_D(\kappa) = \frac{I_{D/2}(\kappa)}{I_{D/2-1}(\kappa)},$$

    ($I_\nu$ the modified Bessel functions; $A_2 = I_1/I_0$, $A_3(\kappa) =
    \coth\kappa - 1/\kappa$). Since $A_D(\kappa) = \kappa/D + O(\kappa^3)$ is concave,
    a root $r > 0$ exists, and is unique, exactly when $K > K_c = D\sigma^2/2$
    ([`hopkur.theory.noisy_sphere_critical_coupling`][]); it is the stable state.
    For large $K$, $r \approx 1 - (D-1)\sigma^2/(4K)$.

    **Arguments:**

    - `strength`: coupling strengths $K$ (any shape; $K \le K_c$ gives 0).
    - `noise`: the noise amplitude $\sigma \ge 0$ ($\sigma = 0$: $r = 1$ for $K > 0$).
    - `dim`: the dimension $D \ge 2$.

    **Returns:**

    $r(K) \in [0, 1]$, a NumPy array of the shape of `strength`.
    """
    call = "noisy_sphere_order_parameter"
    sigma = _check_noise_and_dim(call, noise, dim)
    strength = _finite(call, "strength", strength)
    solve = np.vectorize(lambda k: _vmf_order(float(k), sigma, dim), otypes=[float])
    return solve(strength)


# ------------------------------------------------------------- Hopfield: AGS, T = 0


def _ags_excess(y: float) -> float:
    r"""$\varphi(y) = \operatorname{erf}(y)/y - \frac{2}{\sqrt\pi}e^{-y^2}$: the AGS
    $T = 0$ equations reduce to $\sqrt{2\alpha} = \varphi(y)$, $m = \operatorname{erf}
    (y)$."""
    return math.erf(y) / y - 2 / math.sqrt(math.pi) * math.exp(-(y**2))


@functools.cache
def _ags_peak() -> tuple[float, float]:
    """The maximiser y* of phi and alpha_c = phi(y*)^2 / 2."""

    def slope(y):
        return (2 / math.sqrt(math.pi)) * math.exp(-(y**2)) * (
            1 / y + 2 * y
        ) - math.erf(y) / y**2

    y_star = _brent(slope, 0.5, 3.0, xtol=1e-15)
    return y_star, 0.5 * _ags_excess(y_star) ** 2


def hopfield_critical_load() -> float:
    r"""The critical load $\alpha_c = P/N \approx 0.138$ of the Hebbian Hopfield network
    at zero temperature (sign dynamics, [`hopkur.sign_retrieve`][]), from the
    replica-symmetric equations of Amit, Gutfreund and Sompolinsky (1987):

    $$m = \operatorname{erf}\Big(\frac{m}{\sqrt{2\alpha r}}\Big),\quad
    C = \sqrt{\frac{2}{\pi\alpha r}}\,e^{-m^2/(2\alpha r)},\quad
    r = \frac{1}{(1 - C)^2}.$$

    With $y = m/\sqrt{2\alpha r}$ they reduce to $\sqrt{2\alpha} = \varphi(y) =
    \operatorname{erf}(y)/y - \frac{2}{\sqrt\pi}e^{-y^2}$; retrieval states ($m > 0$)
    exist for $\alpha \le \alpha_c = \tfrac12\max_y\varphi(y)^2$. The maximum is found
    numerically (root of $\varphi'$), not hard-coded. Valid as $N \to \infty$, for
    random unbiased patterns; replica-symmetry breaking moves $\alpha_c$ by less
    than 0.001.

    **Returns:**

    $\alpha_c$, a float ($0.1379$).
    """
    return _ags_peak()[1]


def ags_overlap(load: _Values) -> np.ndarray:
    r"""The retrieval overlap $m(\alpha)$ of the Amit–Gutfreund–Sompolinsky $T = 0$
    solution (see [`hopkur.theory.hopfield_critical_load`][]): $m =
    \operatorname{erf}(y)$ with $y$ the larger root of $\varphi(y) = \sqrt{2\alpha}$,
    the stable retrieval state. $m \to 1$ as $\alpha \to 0$ (like
    $1 - \sqrt{2\alpha/\pi}\,e^{-1/(2\alpha)}$); $m(\alpha_c) \approx 0.967$; above
    $\alpha_c$ no retrieval state exists and $m$ drops to 0 (first-order transition).

    **Arguments:**

    - `load`: loads $\alpha = P/N \ge 0$ (any shape).

    **Returns:**

    $m(\alpha) \in [0, 1]$, a NumPy array of the shape of `load`: 0 above $\alpha_c$.
    """
    load = _finite("ags_overlap", "load", load, minimum=0.0)
    y_star, critical = _ags_peak()

    def overlap(alpha: float) -> float:
        if alpha == 0:
            return 1.0
        if alpha > critical:
            return 0.0
        target = math.sqrt(2 * alpha)
        # phi(y) < 1/y, so phi(2/target) < target/2 (at 1/target the two sides can
        # round to equal when erf(y) = 1 in floating point)
        high = max(2 / target, y_star)
        if _ags_excess(y_star) <= target:
            return math.erf(y_star)
        y = _brent(lambda y: _ags_excess(y) - target, y_star, high)
        return math.erf(y)

    return np.vectorize(lambda a: overlap(float(a)), otypes=[float])(load)
