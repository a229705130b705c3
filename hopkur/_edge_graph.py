r"""The edge-graph operator (private): one object per undirected graph that serves
every sum over its edges.

[`hopkur.EdgeCoupling`][] and the Hopfield–Kuramoto edge couplings
([`hopkur.NetworkCoupling`][], and [`hopkur.AdditiveCoupling`][] /
[`hopkur.MultiplicativeCoupling`][] with a graph) hold one `EdgeGraph` and ask it for
what their evaluation needs, as lineax's linear operators are asked by each solver:

- `overlaps(x)`: the endpoints' states and $s_e = x_i\cdot x_j$ of every edge;
- `sum_over_edges(to_first, to_second, n)`: the per-node sums
  $\sum_{e=(i,j)} t^{(1)}_e$ at $i$ plus $\sum_{e=(i,j)} t^{(2)}_e$ at $j$ (segment
  sums; the one scatter-add form, shared with the kernels' reference maps);
- `dense(values, n)` / `adjacency(n, dtype)`: per-edge values scattered into a
  symmetric $N\times N$ matrix, and the 0/1 mask;
- `kernel_drive(x, form)` / `kernel_linear(z, c)`: the compiled kernels, fed with the
  graph's compressed rows (neighbour table).

It is built once per graph, when the coupling is constructed: the compressed rows (both
directions of every edge, grouped by node) are computed then, with NumPy, if the edges
are concrete, and kept on it (`rows`), instead of being rebuilt by every kernel call.
For edges only known under a transformation (a coupling built inside `jit`), `rows` is
`None` and the kernels build the table themselves; `hoist` (what `simulate` and `relax`
call before a solve, through the models' `_hoisted`) builds it once for the solve.
`hoist` also keeps the dense parts of a solve (parameters scattered into $N\times N$
matrices, the adjacency mask) on the operator (`hoisted`), so that the solve's loops
do not rebuild them.
"""

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from . import _native, _sparse
from ._interactions import ClosedForm
from ._misc import is_concrete


def _numpy_rows(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    # entry 2e is edge e seen from its first endpoint, 2e + 1 from its second; a stable
    # sort by node groups them by node, each node's entries in edge order
    keys = edges.reshape(-1)
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=n)[:n]
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    entry = np.arange(keys.size)
    entries = np.stack(
        [edges[:, ::-1].reshape(-1)[order], entry[order] // 2, 1 - entry[order] % 2]
    ).astype(np.int32)
    return start, entries


def _jax_rows(edges: Array, n: int) -> tuple[Array, Array]:
    # `_numpy_rows` in JAX (edges known only under a transformation). Nodes outside
    # [0, n) drop out of `start`, whose last entry then differs from 2E: the kernels
    # refuse such a table.
    edges = edges.astype(jnp.int32)
    keys = edges.reshape(-1)
    order = jnp.argsort(keys, stable=True)
    counts = jnp.zeros((n,), jnp.int32).at[keys].add(1, mode="drop")
    start = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(counts)])
    entry = jnp.arange(keys.shape[0], dtype=jnp.int32)[order]
    nbr = edges[:, ::-1].reshape(-1)[order]
    return start.astype(jnp.int32), jnp.stack([nbr, entry // 2, 1 - entry % 2])


class EdgeGraph(eqx.Module):
    """An undirected graph resolved once; see the module docstring. Construct with
    `EdgeGraph.of(edges)`."""

    edges: Int[Array, "e 2"]
    # (start (m + 1,), entries (3, 2E): neighbour, edge, first-endpoint flag), int32,
    # for nodes [0, m), or None
    rows: tuple[Int[Array, " m1"], Int[Array, "3 f"]] | None = None
    # dense parts of one solve (`hoist`), whatever the coupling asked to keep
    hoisted: Any = None

    @classmethod
    def of(cls, edges, n: int | None = None) -> "EdgeGraph":
        """The operator of `edges` (an `(E, 2)` integer array), with its compressed
        rows when the edges are concrete and valid (checking them is the coupling's
        job)."""
        edges = jnp.asarray(edges)
        rows = None
        if (
            is_concrete(edges)
            and edges.ndim == 2
            and edges.shape[1] == 2
            and jnp.issubdtype(edges.dtype, jnp.integer)
        ):
            e = np.asarray(edges)
            if e.size == 0 or e.min() >= 0:
                m = int(e.max()) + 1 if e.size else 0
                m = max(m, n or 0)
                start, entries = _numpy_rows(e.astype(np.int64), m)
                rows = (jnp.asarray(start), jnp.asarray(entries))
        return cls(edges, rows)

    @property
    def num_edges(self) -> int:
        return self.edges.shape[0]

    def density(self, n: int) -> float:
        return _sparse.density(self.num_edges, n)

    def is_dense(self, method: str, n: int, threshold: float) -> bool:
        """Whether to evaluate densely (see `_sparse.choose_dense`)."""
        return _sparse.choose_dense(method, self.num_edges, n, threshold)

    def hoist(self, n: int, hoisted: Any = None, *, rows: bool) -> "EdgeGraph":
        """This graph for one solve on `n` nodes: with its compressed rows (built now
        if `rows` and they were not known) and the dense parts `hoisted` kept."""
        table = self.rows
        if rows and table is None:
            table = _jax_rows(self.edges, n)
        return EdgeGraph(self.edges, table, hoisted)

    # --------------------------------------------------------------- segment form

    def overlaps(self, x: Float[Array, "n d"]):
        """`(x_i, x_j, s)` per edge: the endpoints' states and their inner products."""
        i, j = self.edges[:, 0], self.edges[:, 1]
        xi, xj = x[i], x[j]
        return xi, xj, jnp.sum(xi * xj, axis=-1)

    def sum_over_edges(self, to_first: Array, to_second: Array, n: int) -> Array:
        """Per node: `to_first[e]` summed at the first endpoint of each edge `e`, plus
        `to_second[e]` at its second (leading axis `E`, any trailing shape)."""
        return _sparse.sum_over_edges(self.edges, to_first, to_second, n)

    def weighted_sum(self, w: Array, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        r"""$\sum_{j\sim i} w_{ij} x_j$ for per-edge weights `w` `(E,)`."""
        xi, xj = x[self.edges[:, 0]], x[self.edges[:, 1]]
        w = w[:, None]
        return self.sum_over_edges(w * xj, w * xi, x.shape[0])

    # ----------------------------------------------------------------- dense form

    def dense(self, values: Float[Array, " e"], n: int) -> Float[Array, "n n"]:
        """The symmetric `(n, n)` matrix of the per-edge `values` (zero elsewhere)."""
        return _sparse.dense_symmetric(values, self.edges, n)

    def adjacency(self, n: int, dtype) -> Float[Array, "n n"]:
        return _sparse.adjacency(self.edges, n, dtype)

    # -------------------------------------------------------------------- kernels

    def table(self, n: int) -> tuple[Array, Array]:
        """The compressed rows for `n` nodes, as the kernels take them: empty arrays
        when not known (the kernels then build them from the edges)."""
        if self.rows is None:
            return jnp.zeros((0,), jnp.int32), jnp.zeros((3, 0), jnp.int32)
        start, entries = self.rows
        m = start.shape[0] - 1
        if n > m:  # nodes after the last one on an edge: no neighbours
            start = jnp.concatenate([start, jnp.broadcast_to(start[-1:], (n - m,))])
        return start, entries

    def kernel_drive(self, x: Float[Array, "n d"], form: ClosedForm):
        r"""$\sum_{j\sim i}\varphi'_{ij}(x_i\cdot x_j)\,x_j$ by the compiled kernels
        (one state; batches from `vmap`)."""
        return _native.native_edge_drive(x, form, self.edges, self.table(x.shape[0]))

    def kernel_linear(self, z: Float[Array, "n d"], c) -> Float[Array, "n d"]:
        r"""$\sum_{j\sim i} c_{ij} z_j$ by the compiled kernels (`c` per edge or
        shared)."""
        return _native.linear_edge_drive(z, c, self.edges, self.table(z.shape[0]))
