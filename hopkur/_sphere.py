"""Geometry of the product of spheres on which oscillators live."""

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray


def row_dot(x: Float[Array, "*n d"], y: Float[Array, "*n d"]) -> Float[Array, "*n"]:
    r"""The inner products of the rows of `x` and `y`, $x_i \cdot y_i$.

    For short rows ($d \le 8$) written as a sum of $d$ products rather than a
    reduction: XLA:CPU hands reductions to a library whose kernels are slow over a short
    last axis (measured in benchmarks/README.md, "Measurements behind implementation
    choices").
    """
    d = x.shape[-1]
    if d > 8 or d == 0:
        return jnp.sum(x * y, axis=-1)
    total = x[..., 0] * y[..., 0]
    for k in range(1, d):
        total = total + x[..., k] * y[..., k]
    return total


def project_tangent(
    x: Float[Array, "*n d"], v: Float[Array, "*n d"]
) -> Float[Array, "*n d"]:
    r"""Projects `v` onto the tangent space of the sphere through `x`, row by row:
    $P_x v = v - \frac{x \cdot v}{x \cdot x}\, x$.

    Dividing by $x \cdot x$ (rather than assuming $|x| = 1$) makes $|x|$ an exact
    invariant of the flow $\dot x = P_x v$: with $v - (x\cdot v)x$ the sphere is
    invariant but unstable in the normal direction, and solver error makes norms blow
    up.

    **Arguments:**

    - `x`: points, shape `(..., d)` (any non-zero norm).
    - `v`: vectors at those points, same shape.

    **Returns:**

    The projected vectors, each orthogonal to its row of `x`.
    """
    xv = row_dot(x, v)[..., None]
    xx = row_dot(x, x)[..., None]
    return v - (xv / xx) * x


def normalise(x: Float[Array, "*n d"]) -> Float[Array, "*n d"]:
    """Rescales each row of `x` to unit norm (the retraction onto the spheres).

    **Arguments:**

    - `x`: points, shape `(..., d)`, rows of non-zero norm.

    **Returns:**

    `x / |x|`, row by row.
    """
    return x / jnp.sqrt(row_dot(x, x))[..., None]


def random_sphere(
    shape: tuple[int, ...], dim: int, *, key: PRNGKeyArray, dtype=None
) -> Float[Array, "..."]:
    r"""Draws points uniformly from $S^{d-1}$ (normalised Gaussians).

    **Arguments:**

    - `shape`: the leading shape, e.g. `(n,)` for `n` oscillators.
    - `dim`: the dimension $d$ of the ambient space.
    - `key`: a `jax.random.key`. (Keyword only argument.)
    - `dtype`: the floating dtype; JAX's default if `None`. (Keyword only argument.)

    **Returns:**

    An array of shape `shape + (dim,)` with unit rows.
    """
    kwargs = {} if dtype is None else {"dtype": dtype}
    return normalise(jr.normal(key, (*shape, dim), **kwargs))


def antisymmetrise(omega: Float[Array, "*n d d"]) -> Float[Array, "*n d d"]:
    r"""$(\Omega - \Omega^\top)/2$ over the last two axes."""
    return 0.5 * (omega - jnp.swapaxes(omega, -1, -2))
