"""Private helpers: input validation shared by the model constructors."""

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np


def is_concrete(*arrays) -> bool:
    """True when every argument holds concrete values (not a tracer under a
    transform)."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def numpy_rng(key) -> np.random.Generator:
    """A NumPy generator seeded by the data of a `jax.random.key` (for host-side
    draws that must follow the key: graphs, pattern sets)."""
    data = np.asarray(jax.random.key_data(key)).ravel()
    return np.random.default_rng([int(v) for v in data])


def float_array(x) -> jax.Array:
    """`jnp.asarray(x)`, with integer and boolean values converted to JAX's default
    floating dtype (float64 with x64 enabled, else float32). The models' parameters are
    floats: an integer array would be skipped by `eqx.is_inexact_array` (so never
    trained) and fails under strict dtype promotion."""
    a = jnp.asarray(x)
    if not jnp.issubdtype(a.dtype, jnp.inexact):
        a = a.astype(jnp.result_type(float))
    return a


def check_shape(call: str, name: str, array, expected: tuple) -> None:
    """Raise a `ValueError` unless `array.shape` matches `expected`.

    `None` entries in `expected` match any size.
    """
    shape = tuple(jnp.shape(array))
    ok = len(shape) == len(expected) and all(
        e is None or e == s for e, s in zip(expected, shape)
    )
    if not ok:
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected)
        want += ",)" if len(expected) == 1 else ")"
        raise ValueError(f"`{call}({name}=...)` must have shape {want}; got {shape}.")


def check_finite(call: str, name: str, array) -> None:
    """Raise a `ValueError` if a concrete floating array contains NaN or infinity."""
    if array is None or not is_concrete(array):
        return
    a = np.asarray(array)
    if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.sum(np.isfinite(a)))
        raise ValueError(
            f"`{call}({name}=...)` must be finite; got {bad} NaN or infinite "
            f"value(s) out of {a.size}."
        )


def check_finite_tree(call: str, name: str, tree) -> None:
    """`check_finite` over every array leaf of a pytree."""
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.Array | np.ndarray):
            check_finite(call, name, leaf)


def check_edges(call: str, edges, num_nodes: int | None) -> None:
    """Validate an undirected edge list: shape `(E, 2)`, integer, in range, no
    self-loops, each undirected edge at most once (value checks only when concrete)."""
    shape = tuple(jnp.shape(edges))
    if len(shape) != 2 or shape[1] != 2:
        raise ValueError(f"`{call}(edges=...)` must have shape (E, 2); got {shape}.")
    if not jnp.issubdtype(jnp.result_type(edges), jnp.integer):
        raise ValueError(
            f"`{call}(edges=...)` must be an integer array; got dtype "
            f"{jnp.result_type(edges)}."
        )
    if not is_concrete(edges) or shape[0] == 0:
        return
    e = np.asarray(edges)
    if e.min() < 0 or (num_nodes is not None and e.max() >= num_nodes):
        raise ValueError(
            f"`{call}(edges=...)` must index nodes in [0, {num_nodes}); got values in "
            f"[{e.min()}, {e.max()}]."
        )
    loops = np.flatnonzero(e[:, 0] == e[:, 1])
    if loops.size:
        raise ValueError(
            f"`{call}(edges=...)` must not contain self-loops; edge {int(loops[0])} is "
            f"({e[loops[0], 0]}, {e[loops[0], 1]})."
        )
    lo, hi = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
    keys = lo.astype(np.int64) * (int(hi.max()) + 1) + hi
    uniq, counts = np.unique(keys, return_counts=True)
    if uniq.size != e.shape[0]:
        dup = uniq[counts > 1][0]
        i, j = divmod(int(dup), int(hi.max()) + 1)
        raise ValueError(
            f"`{call}(edges=...)` must list each undirected edge once; ({i}, {j}) "
            "appears more than once (possibly as both (i, j) and (j, i))."
        )


def tolerance(*arrays) -> float:
    """An absolute tolerance for structural value checks (symmetry, commutation),
    scaled to the arrays' magnitude and floating precision."""
    eps, scale = 0.0, 1.0
    for a in arrays:
        if a is None:
            continue
        eps = max(eps, float(jnp.finfo(jnp.result_type(a)).eps))
        if is_concrete(a) and jnp.size(a):
            scale = max(scale, float(jnp.max(jnp.abs(a))))
    return 100 * (eps or float(jnp.finfo(jnp.float32).eps)) * scale


def ensure_finite(call: str, name: str, array):
    """`array`, checked to hold no NaN or infinity.

    Concrete floating values are checked at once (a `ValueError` naming `name`, as
    `check_finite`); traced ones (under `jit` or `vmap`) through `eqx.error_if`, so
    the returned array must be used in their place. Integer and boolean arrays are
    returned as they are.
    """
    if not jnp.issubdtype(jnp.result_type(array), jnp.inexact):
        return array
    if is_concrete(array):
        check_finite(call, name, array)
        return array
    return eqx.error_if(
        array,
        ~jnp.all(jnp.isfinite(array)),
        f"`{call}({name}=...)` must be finite; got NaN or infinite values.",
    )
