r"""Lagrangians of threshold units (Krotov & Hopfield's Lagrangian formulation).

A Lagrangian $L: \mathbb{R}^N \to \mathbb{R}$ is convex; its gradient is the activation
$g(x) = \nabla L(x)$ and its Hessian $H(x) = \nabla^2 L(x)$ is positive semi-definite.
Every function here is numerically stable for $|x| \le 10^4$ and beyond.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._custom_types import Scalar


def lagrangian_identity(x: Float[ArrayLike, " n"]) -> Scalar:
    r"""$L(x) = \tfrac12 \sum_i x_i^2$, whose activation is the identity $g(x) = x$.

    **Arguments:**

    - `x`: the unit states, shape `(n,)`.

    **Returns:**

    The scalar $L(x)$.
    """
    x = jnp.asarray(x)
    return 0.5 * jnp.sum(x * x)


@jax.custom_jvp
def _logcosh(x: Array) -> Array:
    # log cosh x = |x| + log1p(exp(-2|x|)) - log 2: no overflow at |x| = 1e4.
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2 * ax)) - jnp.log(2.0).astype(ax.dtype)


@_logcosh.defjvp
def _logcosh_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    # An explicit rule, so that the Hessian at 0 is 1 - tanh(0)^2 = 1 (autodiff of |x|
    # would give 0 there).
    return _logcosh(x), jnp.tanh(x) * dx


def lagrangian_tanh(x: Float[ArrayLike, " n"]) -> Scalar:
    r"""$L(x) = \sum_i \log\cosh x_i$, whose activation is $g(x) = \tanh x$.

    Computed as $|x| + \log(1 + e^{-2|x|}) - \log 2$, so that it does not overflow.

    **Arguments:**

    - `x`: the unit states, shape `(n,)`.

    **Returns:**

    The scalar $L(x)$.
    """
    return jnp.sum(_logcosh(jnp.asarray(x)))


def lagrangian_sigmoid(x: Float[ArrayLike, " n"]) -> Scalar:
    r"""$L(x) = \sum_i \operatorname{softplus}(x_i) = \sum_i \log(1 + e^{x_i})$,
    whose activation is the logistic sigmoid $g(x) = \sigma(x)$.

    **Arguments:**

    - `x`: the unit states, shape `(n,)`.

    **Returns:**

    The scalar $L(x)$.
    """
    return jnp.sum(jax.nn.softplus(jnp.asarray(x)))


def lagrangian_relu(x: Float[ArrayLike, " n"]) -> Scalar:
    r"""$L(x) = \tfrac12 \sum_i \operatorname{relu}(x_i)^2$, whose activation is
    $g(x) = \operatorname{relu}(x)$.

    !!! warning

        With this Lagrangian the Hopfield energy is bounded below only when
        $\lambda_{\max}(W_s) \le 1$; otherwise trajectories can run away to infinity
        (see [`hopkur.Hopfield`][]).

    **Arguments:**

    - `x`: the unit states, shape `(n,)`.

    **Returns:**

    The scalar $L(x)$.
    """
    r = jax.nn.relu(jnp.asarray(x))
    return 0.5 * jnp.sum(r * r)


def lagrangian_softmax(x: Float[ArrayLike, " n"], beta: float = 1.0) -> Scalar:
    r"""$L(x) = \frac{1}{\beta} \log \sum_i e^{\beta x_i}$, whose activation is
    $g(x) = \operatorname{softmax}(\beta x)$: the modern (dense) Hopfield network.

    Use `functools.partial(hopkur.lagrangian_softmax, beta=4.0)` to fix $\beta$ when
    building a model.

    **Arguments:**

    - `x`: the unit states, shape `(n,)`.
    - `beta`: the inverse temperature $\beta > 0$.

    **Returns:**

    The scalar $L(x)$.
    """
    return jax.nn.logsumexp(beta * jnp.asarray(x)) / beta
