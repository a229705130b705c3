"""Undirected coupling graphs as edge lists `(E, 2)`, each edge once with `i < j`."""

import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Int, PRNGKeyArray, Shaped

from ._misc import numpy_rng


def _as_edges(pairs) -> Int[np.ndarray, "e 2"]:
    e = np.asarray(sorted(pairs), dtype=np.int32).reshape(-1, 2)
    return e


def edge_matrix(
    edges: Int[ArrayLike, "e 2"],
    n: int,
    values: Shaped[ArrayLike, " e"] | None = None,
    *,
    dtype: DTypeLike | None = None,
) -> Shaped[Array, "n n"]:
    """The dense symmetric `(n, n)` matrix of an undirected graph: `values[e]` at
    `(i, j)` and `(j, i)` for each edge `e = (i, j)`, zeros elsewhere (one scatter of
    `2E` entries; differentiable in `values`). With `values=None`, the adjacency
    matrix: ones of `dtype` (default `bool`) on the edges.

    The one builder of dense edge matrices of the library: coupling coefficients,
    masks and adjacency matrices. Each undirected edge must appear once (as
    `check_edges` ensures).
    """
    edges = jnp.asarray(edges)
    if values is None:
        values = jnp.ones(edges.shape[:1], bool if dtype is None else dtype)
    elif dtype is not None:
        values = jnp.asarray(values, dtype)
    else:
        values = jnp.asarray(values)
    i, j = edges[:, 0], edges[:, 1]
    index = jnp.concatenate([i * n + j, j * n + i])
    flat = jnp.zeros((n * n,), values.dtype)
    flat = flat.at[index].set(jnp.concatenate([values, values]), unique_indices=True)
    return flat.reshape(n, n)


def complete_edges(n: int) -> Int[np.ndarray, "e 2"]:
    """All `n (n - 1) / 2` pairs `i < j` (the all-to-all graph).

    For large `n` prefer the all-to-all paths that take `edges=None` (they never list
    the edges).

    **Arguments:**

    - `n`: the number of nodes.

    **Returns:**

    An `int32` array of shape `(n (n - 1) / 2, 2)`.
    """
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], axis=1).astype(np.int32)


def ring_edges(n: int, k: int) -> Int[np.ndarray, "e 2"]:
    """The ring lattice: each node joined to its `k / 2` nearest neighbours on each
    side.

    **Arguments:**

    - `n`: the number of nodes.
    - `k`: the (even) number of neighbours of each node, `2 <= k < n`.

    **Returns:**

    An `int32` array of shape `(n k / 2, 2)`.
    """
    if k % 2 or not 2 <= k < n:
        raise ValueError(
            f"`ring_edges(k=...)` must be even with 2 <= k < n = {n}; got {k}."
        )
    pairs = {
        (min(u, (u + d) % n), max(u, (u + d) % n))
        for u in range(n)
        for d in range(1, k // 2 + 1)
    }
    return _as_edges(pairs)


def _connected(n: int, edges: np.ndarray) -> bool:
    parent = np.arange(n)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    components = n
    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[ru] = rv
            components -= 1
    return components == 1


def small_world_edges(
    key: PRNGKeyArray, n: int, k: int, p: float, *, max_tries: int = 100
) -> Int[np.ndarray, "e 2"]:
    """A connected Watts–Strogatz small-world graph with exactly `n k / 2` edges.

    Starts from [`hopkur.ring_edges`][] and rewires each lattice edge `(u, u + d)` with
    probability `p` to `(u, w)`, `w` uniform among the nodes that are neither `u` nor
    already joined to `u`; draws again until the graph is connected.

    **Arguments:**

    - `key`: a `jax.random.key` (the graph is a deterministic function of it).
    - `n`: the number of nodes.
    - `k`: the (even) number of lattice neighbours of each node.
    - `p`: the rewiring probability in `[0, 1]`.
    - `max_tries`: how many graphs to draw before giving up. (Keyword only argument.)

    **Returns:**

    An `int32` array of shape `(n k / 2, 2)`, each edge once with `i < j`.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"`small_world_edges(p=...)` must lie in [0, 1]; got {p}.")
    lattice = ring_edges(n, k)
    rng = numpy_rng(key)
    for _ in range(max_tries):
        adjacency = [set() for _ in range(n)]
        for u, v in lattice:
            adjacency[u].add(v)
            adjacency[v].add(u)
        for d in range(1, k // 2 + 1):
            for u in range(n):
                v = (u + d) % n
                if rng.random() >= p or v not in adjacency[u]:
                    continue
                if len(adjacency[u]) >= n - 1:
                    continue
                while True:
                    w = int(rng.integers(n))
                    if w != u and w not in adjacency[u]:
                        break
                adjacency[u].discard(v)
                adjacency[v].discard(u)
                adjacency[u].add(w)
                adjacency[w].add(u)
        edges = _as_edges(
            {(min(u, v), max(u, v)) for u in range(n) for v in adjacency[u]}
        )
        if _connected(n, edges):
            return edges
    raise ValueError(
        f"`small_world_edges` found no connected graph in {max_tries} tries "
        f"(n={n}, k={k}, p={p}); increase `k` or decrease `p`."
    )
