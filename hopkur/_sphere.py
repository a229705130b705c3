"""Geometry of the product of spheres on which oscillators live."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._misc import is_concrete


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


def _normalise(x: Float[Array, "*n d"]) -> Float[Array, "*n d"]:
    # `normalise` without the check: the retractions call it after every solver step,
    # where a zero row cannot arise from a valid state (the solve reports non-finite
    # states itself).
    return x / jnp.sqrt(row_dot(x, x))[..., None]


_ZERO_ROW = "`hopkur.normalise(x=...)` must have rows of non-zero norm; got "


def normalise(x: Float[ArrayLike, "*n d"]) -> Float[Array, "*n d"]:
    """Rescales each row of `x` to unit norm (the retraction onto the spheres).

    A row of norm zero has no direction: with concrete values that is a `ValueError`;
    under `jit` (traced values) an `equinox.EquinoxRuntimeError` raised through
    `equinox.error_if` (gradients pass through unchanged).

    **Arguments:**

    - `x`: points, shape `(..., d)`, rows of non-zero norm.

    **Returns:**

    `x / |x|`, row by row.
    """
    x = jnp.asarray(x)
    squares = row_dot(x, x)
    if is_concrete(squares):
        zero = np.asarray(squares == 0)
        if zero.any():
            first = tuple(int(i) for i in np.argwhere(zero)[0])
            where = f" (the first at index {first})" if first else ""
            raise ValueError(
                f"{_ZERO_ROW}{int(zero.sum())} zero row(s) out of {zero.size}{where}."
            )
    else:
        squares = eqx.error_if(squares, squares == 0, _ZERO_ROW + "a row of norm 0.")
    return x / jnp.sqrt(squares)[..., None]


def random_sphere(
    shape: tuple[int, ...], dim: int, *, key: PRNGKeyArray, dtype=None
) -> Float[Array, "..."]:
    r"""Draws points uniformly from $S^{d-1}$ (normalised Gaussians).

    **Arguments:**

    - `shape`: the leading shape, e.g. `(n,)` for `n` oscillators.
    - `dim`: the dimension $d \ge 2$ of the ambient space (a `ValueError`
      otherwise).
    - `key`: a `jax.random.key`. (Keyword only argument.)
    - `dtype`: the floating dtype; JAX's default if `None`. (Keyword only argument.)

    **Returns:**

    An array of shape `shape + (dim,)` with unit rows.
    """
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 2:
        raise ValueError(
            "`hopkur.random_sphere(dim=...)` must be an integer >= 2 (the sphere "
            f"S^(d-1) in R^d; D = 1 leaves only the two points +-1); got {dim!r}."
        )
    if not isinstance(shape, tuple) or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 0
        for s in shape
    ):
        raise ValueError(
            "`hopkur.random_sphere(shape=...)` must be a tuple of non-negative "
            f"integers, e.g. `(n,)`; got {shape!r}."
        )
    kwargs = {} if dtype is None else {"dtype": dtype}
    return _normalise(jr.normal(key, (*shape, int(dim)), **kwargs))


def antisymmetrise(omega: Float[Array, "*n d d"]) -> Float[Array, "*n d d"]:
    r"""$(\Omega - \Omega^\top)/2$ over the last two axes."""
    return 0.5 * (omega - jnp.swapaxes(omega, -1, -2))
