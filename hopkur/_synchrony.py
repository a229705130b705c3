r"""Synchrony of oscillators: the order parameter and the classical Kuramoto theory
(Lorentzian natural frequencies, their planar rotation generators and the stationary
order parameter of the $N \to \infty$ limit)."""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


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


def lorentzian_frequencies(
    n: int, gamma: float, *, max_abs: float | None = None
) -> np.ndarray:
    r"""$n$ deterministic natural frequencies with a Lorentzian (Cauchy) distribution of
    half width $\gamma$: the midpoint quantiles
    $\omega_i = \gamma \tan\big(\pi(\tfrac{i + 1/2}{n} - \tfrac12)\big)$.

    Quantiles instead of random draws remove most of the finite-$N$ sampling noise in
    the Kuramoto transition. The largest is about $2n\gamma/\pi$, which makes the
    system stiff; `max_abs` instead takes the quantiles of the Lorentzian conditioned
    on $|\omega| \le$ `max_abs` (see [`hopkur.kuramoto_order_theory`][] for its exact
    order parameter).

    **Arguments:**

    - `n`: the number of oscillators.
    - `gamma`: the half width $\gamma > 0$.
    - `max_abs`: optional truncation. (Keyword only argument.)

    **Returns:**

    A NumPy array of shape `(n,)`, increasing, symmetric about 0.
    """
    if not gamma > 0:
        raise ValueError(
            f"`hopkur.lorentzian_frequencies(gamma=...)` must be > 0; got {gamma}."
        )
    u = (np.arange(n) + 0.5) / n
    if max_abs is not None:
        edge = np.arctan(max_abs / gamma) / np.pi
        u = 0.5 - edge + 2 * edge * u
    return gamma * np.tan(np.pi * (u - 0.5))


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
