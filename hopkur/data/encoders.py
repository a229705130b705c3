r"""Encoders from an image to the initial state of a network (MODELS.md §4).

The classification experiments of the research note integrate a network from an initial
state built out of the image's pixels, and read the class from the last units:

- threshold units (Hopfield): the pixel values, followed by zeros for the extra units
  (`encode_hopfield`);
- oscillatory units (Kuramoto on $S^{D-1}$): each pixel becomes a unit vector whose
  first component encodes its value, and the extra units start at the reference
  oscillator $e_1$ (`encode_oscillators`).

All encoders are pure JAX functions of a *single* image (a flat vector of pixels);
callers `jax.vmap` them over a batch. They work under `jax.jit` (`num_units`, `dim` and
`fill` given as a string are static).

**Dtype rule.** The output has the floating dtype of `pixels`; integer or boolean
pixels are converted to JAX's default floating dtype (float32, or float64 with
`jax_enable_x64`). An array `fill` is cast to the output dtype.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Float, Real


def _as_float(x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return x.astype(jax.dtypes.canonicalize_dtype(float))


def _check_pixels(name: str, pixels: Array, num_units: int) -> None:
    if pixels.ndim != 1:
        raise ValueError(
            f"`{name}(pixels)` must be a flat vector of shape (n_pixels,) (one image; "
            f"vmap over a batch); got shape {pixels.shape}."
        )
    if num_units < pixels.shape[0]:
        raise ValueError(
            f"`{name}(num_units=...)` must be at least the number of pixels "
            f"{pixels.shape[0]}; got {num_units}."
        )


def reference_oscillator(
    dim: int, *, dtype: DTypeLike | None = None
) -> Float[Array, " dim"]:
    r"""The reference oscillator $e_1 = (1, 0, \dots, 0) \in S^{D-1}$.

    **Arguments:**

    - `dim`: the dimension $D \geq 2$ of the oscillators.
    - `dtype`: a floating dtype; `None` for JAX's default floating dtype. (Keyword only
        argument.)

    **Returns:**

    The unit vector $e_1$, shape `(dim,)`.
    """
    if dim < 2:
        raise ValueError(f"`reference_oscillator(dim=...)` must be >= 2; got {dim}.")
    dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"`reference_oscillator(dtype=...)` must be a floating dtype; got {dtype}."
        )
    return jnp.zeros(dim, dtype).at[0].set(1)


def encode_hopfield(
    pixels: Real[ArrayLike, " n_pixels"], num_units: int
) -> Float[Array, " num_units"]:
    r"""Initial Hopfield state of an image: the pixels, then zeros.

    $x = (p_1, \dots, p_n, 0, \dots, 0) \in \mathbb{R}^{N}$ with $N$ = `num_units`.
    Pixel values are used as given (no clipping or rescaling).

    **Arguments:**

    - `pixels`: one image as a flat vector of shape `(n_pixels,)`.
    - `num_units`: the number of units $N \geq$ `n_pixels` of the network.

    **Returns:**

    The initial state, shape `(num_units,)`.
    """
    pixels = _as_float(pixels)
    _check_pixels("encode_hopfield", pixels, num_units)
    zeros = jnp.zeros(num_units - pixels.shape[0], pixels.dtype)
    return jnp.concatenate([pixels, zeros])


def encode_oscillators(
    pixels: Real[ArrayLike, " n_pixels"],
    num_units: int,
    dim: int,
    *,
    fill: Literal["reference"] | Real[ArrayLike, "n_extra dim"] = "reference",
) -> Float[Array, "num_units dim"]:
    r"""Initial oscillator states of an image: one unit vector per pixel, then `fill`.

    A pixel value $p$ is clipped to $[0, 1]$ and mapped to $f = 2p - 1 \in [-1, 1]$
    (so a black pixel $p = 0$ gives $f = -1$ and a white pixel $p = 1$ gives $f = 1$);
    its oscillator is

    $$x = \big(f, \sqrt{1 - f^2}, 0, \dots, 0\big) \in S^{D-1},$$

    whose inner product with the reference oscillator $e_1$ is $f$. The square root
    is taken of $\max(1 - f^2, 0)$ and has zero gradient where it vanishes, and each
    vector is renormalised, so the rows have unit norm to rounding for every finite
    pixel value (negative, above one, or exactly $0$ or $1$), and neither the values
    nor their gradients are NaN.

    **Arguments:**

    - `pixels`: one image as a flat vector of shape `(n_pixels,)`, values nominally
        in $[0, 1]$.
    - `num_units`: the number of oscillators $N \geq$ `n_pixels` of the network.
    - `dim`: the dimension $D \geq 2$ of each oscillator.
    - `fill`: the states of the `num_units - n_pixels` extra oscillators:
        `"reference"` for $e_1$ (see `reference_oscillator`),
        or an array of shape `(num_units - n_pixels, dim)` whose rows are normalised
        to unit length (a zero row is an error). (Keyword only argument.)

    **Returns:**

    The initial oscillator states, shape `(num_units, dim)`, each row a unit vector.
    """
    pixels = _as_float(pixels)
    _check_pixels("encode_oscillators", pixels, num_units)
    if dim < 2:
        raise ValueError(f"`encode_oscillators(dim=...)` must be >= 2; got {dim}.")
    dtype = pixels.dtype
    num_pixels = pixels.shape[0]
    num_extra = num_units - num_pixels

    f = 2 * jnp.clip(pixels, 0, 1) - 1
    rest = jnp.maximum(1 - f * f, 0)
    # Double `where`: sqrt has an infinite derivative at 0, which would give NaN
    # gradients at f = ±1 (the common black and white pixels).
    positive = rest > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, rest, 1)), 0)
    head = jnp.stack([f, root], axis=-1)
    head = jnp.concatenate([head, jnp.zeros((num_pixels, dim - 2), dtype)], axis=-1)
    head = head / jnp.linalg.norm(head, axis=-1, keepdims=True)

    if isinstance(fill, str):
        if fill != "reference":
            raise ValueError(
                "`encode_oscillators(fill=...)` must be 'reference' or an array of "
                f"shape ({num_extra}, {dim}); got {fill!r}."
            )
        extra = jnp.broadcast_to(
            reference_oscillator(dim, dtype=dtype), (num_extra, dim)
        )
    else:
        extra = jnp.asarray(fill)
        if extra.shape != (num_extra, dim):
            raise ValueError(
                f"`encode_oscillators(fill=...)` must have shape ({num_extra}, {dim}) "
                f"(num_units - n_pixels, dim); got {extra.shape}."
            )
        extra = extra.astype(dtype)
        norms = jnp.linalg.norm(extra, axis=-1, keepdims=True)
        norms = eqx.error_if(
            norms,
            jnp.any(norms == 0),
            "`encode_oscillators(fill=...)` must not contain a zero row.",
        )
        extra = extra / norms
    return jnp.concatenate([head, extra], axis=0)
