r"""The couplings between the threshold units and the oscillators of
[`hopkur.HopfieldKuramoto`][] (MODELS.md §3): coefficients $c_{ij}$ on an undirected
graph (or all-to-all), and the drives $v$, $u$ and the coupling energy they give.
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, ArrayLike, Float, Int

from . import _native
from ._custom_types import Scalar
from ._edge_graph import EdgeGraph
from ._misc import check_edges, check_finite, check_shape
from ._sparse import (
    check_method,
    coupling_drives,
    coupling_energy,
    DENSE_THRESHOLD,
    METHODS,
    prescattered,
)
from ._sphere import row_dot


class AbstractHopfieldKuramotoCoupling(eqx.Module):
    r"""Abstract base class for the coupling between threshold units and oscillators
    in [`hopkur.HopfieldKuramoto`][]: coefficients $c_{ij}$ on an undirected graph.

    Subclasses give, from the activations $g$, the oscillators $X$ and the symmetrised
    Hopfield weights $W_s$, the three quantities the model needs: the drive on the
    threshold units $v_i = \sum_j c_{ij} (x_i\cdot x_j) g_j$, the drive on the
    oscillators $u_i = \sum_j c_{ij} g_i g_j x_j$, and the coupling energy
    $\sum_{(i,j)} c_{ij} (x_i\cdot x_j) g_i g_j$ (each edge once; the model's energy
    subtracts it).
    """

    #: Whether `drives` and `energy` read the Hopfield weights $W_s$ (only the
    #: multiplicative coupling); the others get `w_s=None`, so that a Hopfield part
    #: without a dense matrix ([`hopkur.HebbianHopfield`][]) never forms one.
    needs_hopfield_weights: ClassVar[bool] = False

    @abc.abstractmethod
    def drives(
        self,
        g: Float[Array, " n"],
        x: Float[Array, "n d"],
        w_s: Float[Array, "n n"] | None,
    ) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
        """The drives `(v, u)` on the threshold units and on the oscillators."""

    @abc.abstractmethod
    def energy(
        self,
        g: Float[Array, " n"],
        x: Float[Array, "n d"],
        w_s: Float[Array, "n n"] | None,
    ) -> Scalar:
        r"""$\sum_{(i,j)} c_{ij} (x_i\cdot x_j) g_i g_j$."""

    @abc.abstractmethod
    def coefficients(self, w_s: Float[Array, "n n"]) -> Float[Array, "n n"]:
        """The dense symmetric matrix $C$ of coefficients with zero diagonal. $O(N^2)$
        memory: for analysis and tests, never used by the dynamics."""

    @property
    @abc.abstractmethod
    def is_low_rank(self) -> bool:
        r"""Whether $C \circ X X^\top$ is a low-rank (rank $\le D$) correction: only the
        all-to-all additive coupling. With a sparse graph the correction is generically
        full rank."""

    @abc.abstractmethod
    def _hoisted(self, x: Float[Array, "n d"]) -> "AbstractHopfieldKuramotoCoupling":
        # This coupling with what its drives compute from the parameters alone computed
        # once, here, for a solve from oscillator states like `x` (see
        # `AbstractEnergySystem._hoisted`).
        ...


def _edge_native(method, dtype) -> bool:
    # the drives' evaluation by the compiled CPU kernels: y = C (g o X) is the drive of
    # a linear edge interaction with coefficients c on the states g o X
    if method == "native":
        _native.require("the coupling")
        return True
    return method == "auto" and _native.usable(dtype)


def _edge_dense(graph: EdgeGraph, method: str, n: int) -> bool:
    # the energy's evaluation (and the drives' without the compiled kernels)
    return graph.is_dense(method, n, DENSE_THRESHOLD)


def _edge_drives(graph: EdgeGraph, c, g, x, method="auto", cm=None):
    # `cm`: the dense coefficient matrix if hoisted out of the solve (`_hoisted`)
    n = x.shape[0]
    if _edge_native(method, x.dtype):
        y = graph.kernel_linear(g[:, None] * x, c)
        return row_dot(x, y), g[:, None] * y
    if _edge_dense(graph, method, n):
        if cm is None:
            cm = graph.dense(c, n)
        return coupling_drives(g, x, cm)
    i, j = graph.edges[:, 0], graph.edges[:, 1]
    xi, xj, s = graph.overlaps(x)
    cs = c * s
    v = graph.sum_over_edges(cs * g[j], cs * g[i], n)
    cgg = (c * g[i] * g[j])[:, None]
    u = graph.sum_over_edges(cgg * xj, cgg * xi, n)
    return v, u


def _edge_energy(graph: EdgeGraph, c, g, x, method="auto", cm=None):
    n = x.shape[0]
    if _edge_dense(graph, method, n):
        if cm is None:
            cm = graph.dense(c, n)
        return coupling_energy(g, x, cm)
    i, j = graph.edges[:, 0], graph.edges[:, 1]
    _, _, s = graph.overlaps(x)
    return jnp.sum(c * s * g[i] * g[j])


def _hoisted_graph(graph: EdgeGraph, method: str, x, dense):
    # the graph for a solve from oscillator states like `x`: the kernels' table, or
    # `dense()` (the dense coefficients or mask, without gradient) kept on it
    n = x.shape[0]
    if _edge_native(method, x.dtype):
        return graph.hoist(n, rows=True)
    if _edge_dense(graph, method, n):
        return graph.hoist(n, lax.stop_gradient(dense()), rows=False)
    return graph


class NetworkCoupling(AbstractHopfieldKuramotoCoupling):
    r"""Free coefficients $c_e$, one per coupling edge (the *network* variant, trained
    with everything else)."""

    graph: EdgeGraph
    weights: Float[Array, " e"] = eqx.field(converter=jnp.asarray)
    method: str = eqx.field(static=True)

    def __init__(self, edges: ArrayLike, weights: ArrayLike, method: str = "auto"):
        self.graph = EdgeGraph.of(edges)
        self.weights = jnp.asarray(weights)
        self.method = method

    @property
    def edges(self) -> Int[Array, "e 2"]:
        """The coupling graph `(E, 2)`."""
        return self.graph.edges

    def __check_init__(self):
        check_edges("NetworkCoupling", self.edges, None)
        check_method("NetworkCoupling", self.method, (*METHODS, "native"))
        check_shape("NetworkCoupling", "weights", self.weights, (self.edges.shape[0],))
        check_finite("NetworkCoupling", "weights", self.weights)

    @property
    def is_low_rank(self):
        return False

    def _dense_coefficients(self):
        # the hoisted dense coefficient matrix C (tied to the per-edge weights), or
        # None to build it per evaluation
        if self.graph.hoisted is None:
            return None
        return prescattered(self.weights, self.graph.hoisted, self.edges)

    def drives(self, g, x, w_s):
        cm = self._dense_coefficients()
        return _edge_drives(self.graph, self.weights, g, x, self.method, cm)

    def energy(self, g, x, w_s):
        cm = self._dense_coefficients()
        return _edge_energy(self.graph, self.weights, g, x, self.method, cm)

    def _hoisted(self, x):
        dense = lambda: self.graph.dense(self.weights, x.shape[0])
        graph = _hoisted_graph(self.graph, self.method, x, dense)
        return eqx.tree_at(lambda c: c.graph, self, graph)

    def coefficients(self, w_s):
        return self.graph.dense(self.weights.astype(w_s.dtype), w_s.shape[0])


NetworkCoupling.__init__.__doc__ = """**Arguments:**

- `edges`: integer array `(E, 2)`, each undirected edge once, no self-loops.
- `weights`: the coefficients $c_e$, shape `(E,)`.
- `method`: `"auto"`, `"segment"`, `"dense"` or `"native"`: evaluation over the edge
  list, with dense-masked matrices, or (the drives) by the compiled CPU kernels, as for
  [`hopkur.EdgeCoupling`][] (same results up to float rounding; `"auto"` uses the
  kernels on CPU when they are available, else chooses by density).
"""


def _check_scaled_coupling(call: str, coupling) -> None:
    # The constructor checks shared by the additive and multiplicative couplings: a
    # scalar, finite `alpha` on an optional graph.
    check_shape(call, "alpha", coupling.alpha, ())
    check_method(call, coupling.method, (*METHODS, "native"))
    check_finite(call, "alpha", coupling.alpha)
    if coupling.edges is not None:
        check_edges(call, coupling.edges, None)


class AdditiveCoupling(AbstractHopfieldKuramotoCoupling):
    r"""$c_{ij} = \alpha M_{ij}$ (the *additive* variant), $M$ the adjacency of `edges`,
    or all-to-all ($M = 1 - I$) when `edges` is `None`.

    All-to-all, the threshold units see $W_s + \kappa_H^{-1}\alpha(XX^\top - I)$: a
    rank-$\le D$ (Hebbian, LoRA-like) correction, evaluated in $O(ND)$ as
    $v = \alpha\big(X(X^\top g) - |x_i|^2 g_i\big)$ — the $N\times N$ matrix is never
    formed. ($|x_i|^2 = 1$ on the spheres; keeping it makes the energy and the drives
    exactly consistent off the spheres too.)
    """

    alpha: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    graph: EdgeGraph | None
    method: str = eqx.field(static=True)

    def __init__(
        self, alpha: ArrayLike, edges: ArrayLike | None = None, method: str = "auto"
    ):
        self.alpha = jnp.asarray(alpha)
        self.graph = None if edges is None else EdgeGraph.of(edges)
        self.method = method

    @property
    def edges(self) -> Int[Array, "e 2"] | None:
        """The coupling graph `(E, 2)`, or `None` (all-to-all)."""
        return None if self.graph is None else self.graph.edges

    def __check_init__(self):
        _check_scaled_coupling("AdditiveCoupling", self)

    @property
    def is_low_rank(self):
        return self.edges is None

    def _dense_coefficients(self):
        # C = alpha M with the adjacency M hoisted, or None
        if self.graph is None or self.graph.hoisted is None:
            return None
        return self.alpha * self.graph.hoisted

    def drives(self, g, x, w_s):
        if self.graph is not None:
            c = jnp.broadcast_to(self.alpha, self.graph.edges.shape[:1])
            cm = self._dense_coefficients()
            return _edge_drives(self.graph, c, g, x, self.method, cm)
        norms = jnp.sum(x * x, axis=-1)
        m = x.T @ g  # (D,) = X^T g
        v = self.alpha * (x @ m - norms * g)
        u = self.alpha * g[:, None] * (m[None, :] - g[:, None] * x)
        return v, u

    def energy(self, g, x, w_s):
        if self.graph is not None:
            c = jnp.broadcast_to(self.alpha, self.graph.edges.shape[:1])
            cm = self._dense_coefficients()
            return _edge_energy(self.graph, c, g, x, self.method, cm)
        m = x.T @ g
        return (
            0.5
            * self.alpha
            * (jnp.sum(m * m) - jnp.sum(jnp.sum(x * x, axis=-1) * g * g))
        )

    def coefficients(self, w_s):
        n = w_s.shape[0]
        if self.graph is None:
            return self.alpha * (
                jnp.ones((n, n), w_s.dtype) - jnp.eye(n, dtype=w_s.dtype)
            )
        c = jnp.broadcast_to(self.alpha, self.graph.edges.shape[:1]).astype(w_s.dtype)
        return self.graph.dense(c, n)

    def _hoisted(self, x):
        return _with_hoisted_mask(self, x)


def _with_hoisted_mask(coupling, x):
    # `coupling` (additive or multiplicative) with the adjacency matrix of its graph
    # formed once (if the graph is evaluated densely) or the kernels' table built
    graph = coupling.graph
    if graph is None:
        return coupling
    dtype = jnp.result_type(coupling.alpha)
    mask = lambda: graph.adjacency(x.shape[0], dtype)
    graph = _hoisted_graph(graph, coupling.method, x, mask)
    return eqx.tree_at(lambda c: c.graph, coupling, graph)


AdditiveCoupling.__init__.__doc__ = """**Arguments:**

- `alpha`: the coupling scale $\\alpha$ (a scalar).
- `edges`: the coupling graph `(E, 2)`, or `None` for all-to-all (the $O(ND)$ low-rank
  path).
- `method`: for a coupling graph, `"auto"`, `"segment"` or `"dense"` (see
  [`hopkur.NetworkCoupling`][]); ignored when `edges` is `None`.
"""


class MultiplicativeCoupling(AbstractHopfieldKuramotoCoupling):
    r"""$c_{ij} = \alpha M_{ij} (W_s)_{ij}$ (the *multiplicative* variant), $M$ the
    adjacency of `edges`, or all-to-all when `edges` is `None`.

    All-to-all it is evaluated as $v_i = \alpha\, x_i\cdot [W_s (g \circ X)]_i$ minus
    the diagonal term: one $N\times N$ by $N\times D$ product, no Gram matrix.
    """

    needs_hopfield_weights: ClassVar[bool] = True
    alpha: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    graph: EdgeGraph | None
    method: str = eqx.field(static=True)

    def __init__(
        self, alpha: ArrayLike, edges: ArrayLike | None = None, method: str = "auto"
    ):
        self.alpha = jnp.asarray(alpha)
        self.graph = None if edges is None else EdgeGraph.of(edges)
        self.method = method

    @property
    def edges(self) -> Int[Array, "e 2"] | None:
        """The coupling graph `(E, 2)`, or `None` (all-to-all)."""
        return None if self.graph is None else self.graph.edges

    def __check_init__(self):
        _check_scaled_coupling("MultiplicativeCoupling", self)

    @property
    def is_low_rank(self):
        return False

    def _edge_coefficients(self, w_s):
        assert self.graph is not None
        edges = self.graph.edges
        return self.alpha * w_s[edges[:, 0], edges[:, 1]]

    def _dense_coefficients(self, w_s):
        # C = alpha M o W_s with the adjacency M hoisted (W_s is symmetric: this is
        # the scatter of alpha (W_s)_ij to (i, j), (j, i)), or None
        if self.graph is None or self.graph.hoisted is None:
            return None
        return self.alpha * self.graph.hoisted * w_s

    def drives(self, g, x, w_s):
        assert w_s is not None, "MultiplicativeCoupling got no `w_s`; please report"
        if self.graph is not None:
            c = self._edge_coefficients(w_s)
            cm = self._dense_coefficients(w_s)
            return _edge_drives(self.graph, c, g, x, self.method, cm)
        gx = g[:, None] * x
        z = w_s @ gx
        diag = jnp.diag(w_s)
        v = self.alpha * (jnp.sum(x * z, axis=-1) - diag * jnp.sum(x * x, axis=-1) * g)
        u = self.alpha * g[:, None] * (z - diag[:, None] * gx)
        return v, u

    def energy(self, g, x, w_s):
        assert w_s is not None, "MultiplicativeCoupling got no `w_s`; please report"
        if self.graph is not None:
            c = self._edge_coefficients(w_s)
            cm = self._dense_coefficients(w_s)
            return _edge_energy(self.graph, c, g, x, self.method, cm)
        gx = g[:, None] * x
        total = jnp.sum(gx * (w_s @ gx)) - jnp.sum(
            jnp.diag(w_s) * jnp.sum(gx * gx, axis=-1)
        )
        return 0.5 * self.alpha * total

    def coefficients(self, w_s):
        n = w_s.shape[0]
        if self.graph is None:
            return self.alpha * (w_s - jnp.diag(jnp.diag(w_s)))
        return self.graph.dense(self._edge_coefficients(w_s).astype(w_s.dtype), n)

    def _hoisted(self, x):
        return _with_hoisted_mask(self, x)


MultiplicativeCoupling.__init__.__doc__ = """**Arguments:**

- `alpha`: the coupling scale $\\alpha$ (a scalar).
- `edges`: the coupling graph `(E, 2)`, or `None` for all-to-all.
- `method`: for a coupling graph, `"auto"`, `"segment"` or `"dense"` (see
  [`hopkur.NetworkCoupling`][]); ignored when `edges` is `None`.
"""
