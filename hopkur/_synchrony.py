r"""Synchrony of oscillators: the order parameter, natural-frequency generators
(Lorentzian, Gaussian, uniform, bimodal; deterministic quantiles or random draws), their
planar rotation generators and the stationary order parameter of the Lorentzian
$N \to \infty$ limit."""

import math
import statistics
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._misc import numpy_rng


def order_parameter(x: Float[ArrayLike, "*batch n d"]) -> Float[Array, "*batch"]:
    r"""The generalised Kuramoto order parameter $R = \|\frac1N \sum_i x_i\|$.

    $R \in [0, 1]$ for unit oscillators: 1 when all coincide, about $N^{-1/2}$ for
    independent uniform ones. For $D = 2$ it is Kuramoto's $r$. Works for any $D$ and
    any leading axes (times, batch).

    **Arguments:**

    - `x`: oscillator states, shape `(..., N, D)`. For a
      [`hopkur.HopfieldKuramoto`][] state `(x_h, x)` pass `x`.

    **Returns:**

    $R$, shape `(...)`.
    """
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            "`hopkur.order_parameter(x=...)` must have shape (..., N, D); got "
            f"{x.shape}."
        )
    return jnp.linalg.norm(jnp.mean(x, axis=-2), axis=-1)


def _check_count(call: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"`{call}(n=...)` must be a positive integer; got {n!r}.")
    return int(n)


def _check_width(call: str, name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{call}({name}=...)` must be a positive real number; got {value!r}."
        ) from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"`{call}({name}=...)` must be finite and > 0; got {v}.")
    return v


def _quantiles(n: int) -> np.ndarray:
    # the midpoint quantiles (i + 1/2)/n, symmetric about 1/2
    return (np.arange(n) + 0.5) / n


def _symmetric(values: np.ndarray) -> np.ndarray:
    # exactly antisymmetric about the middle (quantile functions of symmetric laws)
    return 0.5 * (values - values[::-1])


def lorentzian_frequencies(
    n: int,
    gamma: float,
    *,
    max_abs: float | None = None,
    key: PRNGKeyArray | None = None,
) -> np.ndarray:
    r"""$n$ natural frequencies with a Lorentzian (Cauchy) distribution of half width
    $\gamma$, $g(\omega) = \frac{\gamma/\pi}{\omega^2 + \gamma^2}$: by default the
    deterministic midpoint quantiles
    $\omega_i = \gamma \tan\big(\pi(\tfrac{i + 1/2}{n} - \tfrac12)\big)$, or with
    `key` independent random draws.

    Quantiles instead of random draws remove most of the finite-$N$ sampling noise in
    the Kuramoto transition. The largest is about $2n\gamma/\pi$, which makes the
    system stiff; `max_abs` instead takes the quantiles of the Lorentzian conditioned
    on $|\omega| \le$ `max_abs` (see [`hopkur.kuramoto_order_theory`][] for its exact
    order parameter).

    **Arguments:**

    - `n`: the number of oscillators.
    - `gamma`: the half width $\gamma > 0$.
    - `max_abs`: optional truncation (also of the random draws). (Keyword only
      argument.)
    - `key`: a `jax.random.key` for i.i.d. draws; `None` (default) for the
      deterministic quantiles. (Keyword only argument.)

    **Returns:**

    A NumPy array of shape `(n,)` (float64): with `key=None` increasing and
    symmetric about 0; with a key, in the order drawn.
    """
    call = "hopkur.lorentzian_frequencies"
    n = _check_count(call, n)
    if not gamma > 0:
        raise ValueError(f"`{call}(gamma=...)` must be > 0; got {gamma}.")
    gamma = _check_width(call, "gamma", gamma)
    u = _quantiles(n) if key is None else numpy_rng(key).uniform(size=n)
    if max_abs is not None:
        edge = np.arctan(_check_width(call, "max_abs", max_abs) / gamma) / np.pi
        u = 0.5 - edge + 2 * edge * u
    omega = gamma * np.tan(np.pi * (u - 0.5))
    return _symmetric(omega) if key is None else omega


def gaussian_frequencies(
    n: int, width: float, *, key: PRNGKeyArray | None = None
) -> np.ndarray:
    r"""$n$ natural frequencies with a normal distribution of standard deviation
    `width`, $g(\omega) = e^{-\omega^2/2s^2}/(s\sqrt{2\pi})$: by default the
    deterministic midpoint quantiles $\omega_i = s\,\Phi^{-1}(\tfrac{i + 1/2}{n})$,
    or with `key` independent random draws.

    **Arguments:**

    - `n`: the number of oscillators.
    - `width`: the standard deviation $s > 0$.
    - `key`: a `jax.random.key` for i.i.d. draws; `None` (default) for the
      deterministic quantiles. (Keyword only argument.)

    **Returns:**

    A NumPy array of shape `(n,)` (float64): with `key=None` increasing and
    symmetric about 0.
    """
    call = "hopkur.gaussian_frequencies"
    n = _check_count(call, n)
    width = _check_width(call, "width", width)
    if key is not None:
        return width * numpy_rng(key).standard_normal(n)
    inverse = statistics.NormalDist().inv_cdf
    return _symmetric(width * np.array([inverse(u) for u in _quantiles(n)]))


def uniform_frequencies(
    n: int, width: float, *, key: PRNGKeyArray | None = None
) -> np.ndarray:
    r"""$n$ natural frequencies uniform on $[-w, w]$, $g = 1/(2w)$ there: by default
    the deterministic midpoint quantiles $\omega_i = w\big(2\tfrac{i + 1/2}{n} -
    1\big)$ (evenly spaced), or with `key` independent random draws.

    **Arguments:**

    - `n`: the number of oscillators.
    - `width`: the half width $w > 0$ of the interval.
    - `key`: a `jax.random.key` for i.i.d. draws; `None` (default) for the
      deterministic quantiles. (Keyword only argument.)

    **Returns:**

    A NumPy array of shape `(n,)` (float64): with `key=None` increasing and
    symmetric about 0.
    """
    call = "hopkur.uniform_frequencies"
    n = _check_count(call, n)
    width = _check_width(call, "width", width)
    u = _quantiles(n) if key is None else numpy_rng(key).uniform(size=n)
    omega = width * (2 * u - 1)
    return _symmetric(omega) if key is None else omega


def bimodal_frequencies(
    n: int, width: float, separation: float, *, key: PRNGKeyArray | None = None
) -> np.ndarray:
    r"""$n$ natural frequencies from the bimodal Lorentzian mixture
    $g(\omega) = \tfrac12\big[L_\gamma(\omega - \omega_0) +
    L_\gamma(\omega + \omega_0)\big]$, $L_\gamma(x) = \frac{\gamma/\pi}{x^2 +
    \gamma^2}$, with $\gamma$ = `width` and $\omega_0$ = `separation`: by default the
    deterministic midpoint quantiles of the mixture (its distribution function
    inverted numerically, to float64 precision), or with `key` independent random
    draws (a random sign, then a Lorentzian).

    (Bimodal for $\omega_0 > \gamma/\sqrt3$; unimodal, flat-topped at equality, below.)

    **Arguments:**

    - `n`: the number of oscillators.
    - `width`: the half width $\gamma > 0$ of each Lorentzian.
    - `separation`: the centre $\omega_0 \ge 0$ of the peaks at $\pm\omega_0$.
    - `key`: a `jax.random.key` for i.i.d. draws; `None` (default) for the
      deterministic quantiles. (Keyword only argument.)

    **Returns:**

    A NumPy array of shape `(n,)` (float64): with `key=None` increasing and
    symmetric about 0.
    """
    call = "hopkur.bimodal_frequencies"
    n = _check_count(call, n)
    gamma = _check_width(call, "width", width)
    try:
        w0 = float(separation)
    except (TypeError, ValueError):
        w0 = math.nan
    if not (math.isfinite(w0) and w0 >= 0):
        raise ValueError(
            f"`{call}(separation=...)` must be finite and >= 0; got {separation!r}."
        )
    if key is not None:
        rng = numpy_rng(key)
        signs = np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0)
        return signs * w0 + gamma * np.tan(np.pi * (rng.uniform(size=n) - 0.5))
    u = _quantiles(n)

    def cdf(omega):
        return 0.5 + (
            np.arctan((omega - w0) / gamma) + np.arctan((omega + w0) / gamma)
        ) / (2 * np.pi)

    # bisection between the quantiles of the outer and the inner peak
    lo = -w0 + gamma * np.tan(np.pi * (u - 0.5))
    hi = w0 + gamma * np.tan(np.pi * (u - 0.5))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < u
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        if np.all(hi - lo <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(mid))):
            break
    return _symmetric(0.5 * (lo + hi))


def planar_rotations(freqs: Float[ArrayLike, " n"]) -> Float[Array, "n 2 2"]:
    r"""The $D = 2$ natural-frequency generators $\Omega_i = \omega_i
    \begin{pmatrix}0 & -1\\ 1 & 0\end{pmatrix}$, for `hopkur.Kuramoto(omega=...)`.

    With these and `hopkur.MeanFieldCoupling(K)` a [`hopkur.Kuramoto`][] model is the
    classical $\dot\theta_i = \omega_i + \frac{K}{N}\sum_j \sin(\theta_j - \theta_i)$.

    **Arguments:**

    - `freqs`: the natural frequencies $\omega_i$, shape `(N,)`.

    **Returns:**

    An array of shape `(N, 2, 2)`.
    """
    freqs = jnp.asarray(freqs)
    generator = jnp.array([[0.0, -1.0], [1.0, 0.0]], dtype=freqs.dtype)
    return freqs[:, None, None] * generator[None]


def kuramoto_order_theory(
    strength: ArrayLike | Sequence[float], gamma: float, *, max_abs: float | None = None
) -> np.ndarray:
    r"""Kuramoto's stationary order parameter for Lorentzian natural frequencies in the
    limit $N \to \infty$: $r = \sqrt{1 - K_c/K}$ for $K > K_c = 2\gamma$, else 0.

    With the frequencies truncated to $|\omega| \le a$ (and renormalised, as
    [`hopkur.lorentzian_frequencies`][]`(max_abs=a)`) the same self-consistency
    $1 = K\int_{-\pi/2}^{\pi/2}\cos^2\theta\, g(Kr\sin\theta)\,d\theta$ gives
    $r = c\sqrt{1 - 2\gamma/(cK)}$ with $c = 1/(1 - p)$, $p$ the cut-off tail mass,
    valid while $Kr \le a$.

    **Arguments:**

    - `strength`: coupling strengths $K$ (any shape).
    - `gamma`: the half width $\gamma$.
    - `max_abs`: the truncation $a$, if any. (Keyword only argument.)

    **Returns:**

    $r(K)$, a NumPy array of the shape of `strength`.
    """
    k = np.asarray(strength, dtype=float)
    c = 1.0
    if max_abs is not None:
        c = 1.0 / (2 * np.arctan(max_abs / gamma) / np.pi)
    inside = 1.0 - 2 * gamma / (c * np.maximum(k, 1e-300))
    r = c * np.sqrt(np.clip(inside, 0.0, None))
    if max_abs is not None:
        r = np.where(k * r > max_abs, np.nan, r)
    return np.asarray(r)  # a 0-d array, not a NumPy scalar, for a scalar `strength`
