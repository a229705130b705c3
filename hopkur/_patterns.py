r"""Pattern maths of associative memory: random binary patterns, Hebb's rule,
corruption of cues and overlaps with stored patterns.

The classical setting of Hopfield (1982): $P$ patterns $\xi^\mu \in \{-1, +1\}^N$ with
independent, equally likely signs, stored by the Hebbian rule
$W = \frac1N \sum_\mu \xi^\mu \xi^{\mu\top}$ (zero diagonal), recalled from a corrupted
copy, and scored by the overlap $m^\mu = \frac1N \xi^\mu \cdot \operatorname{sign}(x)$.

**Dtype rule.** Every function returns the floating dtype of its array input (`x` for
`overlap`); integer or boolean input is converted to JAX's default floating dtype
(float32, or float64 with `jax_enable_x64`).

**Non-finite input** (NaN or infinity in a pattern or state) is an error: a
`ValueError` naming the argument for concrete values, an `eqx.error_if` check under
`jit`.

`hopkur.data` re-exports these functions under the names it always had.

??? cite "Reference"

    ```bibtex
    @article{hopfield1982neural,
        title={Neural networks and physical systems with emergent collective
               computational abilities},
        author={Hopfield, John J},
        journal={Proceedings of the National Academy of Sciences},
        volume={79},
        number={8},
        pages={2554--2558},
        year={1982}
    }
    ```
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._custom_types import RealScalarLike
from ._misc import ensure_finite


def _as_float(x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return x.astype(jax.dtypes.canonicalize_dtype(float))


def random_binary_patterns(
    num_patterns: int,
    num_units: int,
    *,
    dtype: DTypeLike | None = None,
    key: PRNGKeyArray,
) -> Float[Array, "p n"]:
    r"""Draws patterns with independent, equally likely entries $\pm 1$.

    **Arguments:**

    - `num_patterns`: the number of patterns $P \geq 0$.
    - `num_units`: the number of units $N \geq 1$.
    - `dtype`: a floating dtype for the result; `None` for JAX's default floating
        dtype. (Keyword only argument.)
    - `key`: a `jax.random.key`. (Keyword only argument.)

    **Returns:**

    An array of shape `(num_patterns, num_units)` with entries in $\{-1, +1\}$.
    """
    if num_patterns < 0:
        raise ValueError(
            "`random_binary_patterns(num_patterns=...)` must be non-negative; got "
            f"{num_patterns}."
        )
    if num_units < 1:
        raise ValueError(
            "`random_binary_patterns(num_units=...)` must be positive; got "
            f"{num_units}."
        )
    dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            "`random_binary_patterns(dtype=...)` must be a floating dtype; got "
            f"{np.dtype(dtype).name}."
        )
    return jr.rademacher(key, (num_patterns, num_units), dtype=dtype)


def hebbian_weights(patterns: Real[ArrayLike, "p n"]) -> Float[Array, "n n"]:
    r"""Hebbian (outer-product) weights storing `patterns`.

    $W = \frac1N \sum_{\mu=1}^P \xi^\mu \xi^{\mu\top}$ with the diagonal set to
    zero, i.e. $W_{ij} = \frac1N \sum_\mu \xi^\mu_i \xi^\mu_j$ for $i \neq j$ and
    $W_{ii} = 0$. Symmetric. For $\pm 1$ patterns at low load ($P \ll 0.138 N$) every
    stored pattern is a fixed point of $x \mapsto \operatorname{sign}(W x)$ with high
    probability.

    **Arguments:**

    - `patterns`: the patterns $\xi^\mu$ as rows, shape `(P, N)`; finite.

    **Returns:**

    The weight matrix, shape `(N, N)`.
    """
    patterns = _as_float(patterns)
    if patterns.ndim != 2:
        raise ValueError(
            "`hopkur.hebbian_weights(patterns)` must have shape (num_patterns, "
            f"num_units); got {patterns.shape}."
        )
    patterns = ensure_finite("hopkur.hebbian_weights", "patterns", patterns)
    num_units = patterns.shape[1]
    weights = (patterns.T @ patterns) / num_units
    return jnp.where(jnp.eye(num_units, dtype=bool), 0.0, weights)


def corrupt_patterns(
    patterns: Real[ArrayLike, "*batch n"],
    flip_fraction: RealScalarLike,
    *,
    key: PRNGKeyArray,
) -> Float[Array, "*batch n"]:
    r"""Flips the signs of a fixed fraction of the entries of each pattern.

    In every pattern (every slice along the last axis) exactly
    $m = \operatorname{round}(\text{flip\_fraction} \cdot N)$ entries, chosen uniformly
    at random without replacement and independently per pattern, are negated
    (rounding half to even, as `jnp.round` does). Works under `jit` with a traced
    `flip_fraction`.

    **Arguments:**

    - `patterns`: one pattern of shape `(N,)` or a batch of shape `(..., N)`
        ($\pm1$ entries, typically); finite.
    - `flip_fraction`: the fraction of entries to flip, in $[0, 1]$ (a Python number
        or a scalar array, possibly traced).
    - `key`: a `jax.random.key`. (Keyword only argument.)

    **Returns:**

    The corrupted patterns, same shape as `patterns`.
    """
    call = "hopkur.corrupt_patterns"
    patterns = _as_float(patterns)
    if patterns.ndim < 1:
        raise ValueError(
            f"`{call}(patterns)` must have at least one dimension (units last); got a "
            "scalar."
        )
    if isinstance(flip_fraction, int | float) and not 0 <= flip_fraction <= 1:
        raise ValueError(
            f"`{call}(flip_fraction=...)` must be in [0, 1]; got {flip_fraction}."
        )
    fraction = jnp.asarray(flip_fraction)
    if fraction.ndim != 0:
        raise ValueError(
            f"`{call}(flip_fraction=...)` must be a scalar; got shape {fraction.shape}."
        )
    fraction = eqx.error_if(
        fraction,
        ~((fraction >= 0) & (fraction <= 1)),
        f"`{call}(flip_fraction=...)` must be in [0, 1].",
    )
    patterns = ensure_finite(call, "patterns", patterns)
    num_units = patterns.shape[-1]
    uniform = jr.uniform(key, patterns.shape)
    # The rank of each entry in a random order is a uniform random permutation of
    # 0..N-1 per pattern; flipping ranks < m flips exactly m entries, even for traced m.
    ranks = jnp.argsort(jnp.argsort(uniform, axis=-1), axis=-1)
    num_flips = jnp.round(fraction * num_units).astype(ranks.dtype)
    return jnp.where(ranks < num_flips, -patterns, patterns)


def pattern_overlaps(
    s: Float[ArrayLike, "*batch n"], patterns: Float[ArrayLike, "p n"]
) -> Float[Array, "*batch p"]:
    r"""The overlaps $m^\mu = \frac1N \sum_i \xi^\mu_i s_i$ of states with stored
    patterns: 1 for a perfect retrieval of $\pm1$ patterns, about $N^{-1/2}$ for an
    unrelated state.

    **Arguments:**

    - `s`: states in $[-1, 1]$ (e.g. `jnp.sign(x)` of a relaxed Hopfield state, or its
      activation `tanh(x)`), shape `(..., N)`; finite.
    - `patterns`: the patterns, shape `(P, N)`; finite.

    **Returns:**

    The overlaps, shape `(..., P)`.
    """
    call = "hopkur.pattern_overlaps"
    s, patterns = jnp.asarray(s), jnp.asarray(patterns)
    if patterns.ndim != 2 or s.shape[-1:] != patterns.shape[-1:]:
        raise ValueError(
            f"`{call}` needs states (..., N) and patterns (P, N); got {s.shape} and "
            f"{patterns.shape}."
        )
    s = ensure_finite(call, "s", s)
    patterns = ensure_finite(call, "patterns", patterns)
    return s @ patterns.T / patterns.shape[-1]


def overlap(
    x: Real[ArrayLike, " n"],
    patterns: Real[ArrayLike, "p n"],
    *,
    binarise: bool = True,
) -> Float[Array, " p"]:
    r"""The overlaps of one state with each pattern.

    With `binarise=True` (the default, the classical Hopfield overlap)
    $m^\mu = \frac1N \xi^\mu \cdot \operatorname{sign}(x)$, in $[-1, 1]$ for $\pm 1$
    patterns and equal to $1$ exactly when $\operatorname{sign}(x) = \xi^\mu$; note
    $\operatorname{sign}(0) = 0$. With `binarise=False`,
    $m^\mu = \frac1N \xi^\mu \cdot x$, the overlap of the raw (continuous) state, as
    [`hopkur.pattern_overlaps`][] (which takes any leading axes).

    **Arguments:**

    - `x`: the state, shape `(N,)`; finite.
    - `patterns`: the patterns as rows, shape `(P, N)`; finite.
    - `binarise`: whether to take the sign of `x` first. (Keyword only argument.)

    **Returns:**

    The overlaps, shape `(P,)`, in the floating dtype of `x` (`patterns` is cast to it).
    """
    call = "hopkur.data.overlap"
    x = _as_float(x)
    patterns = jnp.asarray(patterns)
    if x.ndim != 1 or patterns.ndim != 2 or patterns.shape[1] != x.shape[0]:
        raise ValueError(
            f"`{call}(x, patterns)` must have shapes (N,) and (P, N); got "
            f"{x.shape} and {patterns.shape}."
        )
    x = ensure_finite(call, "x", x)
    patterns = ensure_finite(call, "patterns", patterns)
    if binarise:
        x = jnp.sign(x)
    return (patterns.astype(x.dtype) @ x) / x.shape[0]
