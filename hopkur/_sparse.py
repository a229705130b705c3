r"""Fast formulations of edge couplings (private).

Two ways to evaluate a coupling over an undirected edge list, with the same results up
to float rounding:

- *segment*: gather both endpoints of every edge, evaluate the interaction per edge and
  sum per node with `jax.ops.segment_sum`: $O(E D)$ work, but the scatter-add that sums
  per node runs one edge at a time on CPU.
- *dense-masked*: the per-edge parameters are scattered once into $N\times N$ matrices
  (zero off the graph), the Gram matrix $G = X X^\top$ is formed, the interaction is
  applied elementwise to $G$ and the drive is one matrix product
  $(\varphi'(G)\circ M)X$: $O(N^2 D)$ work, all of it matrix products and elementwise
  maps.

Dense-masked wins once the graph is dense enough (see `DENSE_THRESHOLD`). Under `vmap`
the dense form would materialise a `(batch, N, N)` array and become memory-bound; it is
therefore wrapped in `hopkur._per_sample.per_sample`, which runs it sample by sample,
also under differentiation.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from ._graphs import edge_matrix
from ._interactions import closed_form, ClosedForm

# for tests/test_fast_paths.py and benchmarks/suite.py, which reach them here
from ._per_sample import _bind, per_sample  # noqa: F401


# Graph density (fraction of the N(N-1)/2 pairs that are edges) from which `"auto"`
# evaluates a closed-form interaction (linear, relu, tanh, sigmoid) densely. Measured on
# a 2-core CPU at N = 896, D = 5, batch 100 (see benchmarks/README.md, "crossover").
DENSE_THRESHOLD = 0.02
# The same for interactions whose derivative is a learned function (MLP, user
# functions): the dense form evaluates it on all N^2 pairs instead of 2E.
DENSE_THRESHOLD_LEARNED = 0.5
# The dense form is never chosen automatically beyond this many nodes (N^2 memory).
DENSE_MAX_NODES = 8192
# Target number of elements of one chunk's N x N intermediates under `vmap`.
_CHUNK_ELEMENTS = 2**18
# Under `vmap`, the dense drive is evaluated in blocks of rows of about this many
# elements once the N x N parameters exceed `_BLOCK_FROM_ELEMENTS` elements (4 MiB in
# float32, beyond the cache; measured at N = 896 and 2048 in the `dense_limit`
# benchmark).
_BLOCK_ELEMENTS = 2**18
_BLOCK_FROM_ELEMENTS = 2**20

METHODS = ("auto", "segment", "dense")


def check_method(call: str, method: str, methods: tuple[str, ...] = METHODS) -> None:
    if method not in methods:
        raise ValueError(
            f"`{call}(method=...)` must be one of {', '.join(map(repr, methods))}; got "
            f"{method!r}."
        )


def density(num_edges: int, n: int) -> float:
    """The fraction of the $N(N-1)/2$ node pairs that are edges."""
    return 0.0 if n < 2 else 2.0 * num_edges / (n * (n - 1))


def choose_dense(method: str, num_edges: int, n: int, threshold: float) -> bool:
    """Whether to use the dense-masked form: `method="dense"`, or `"auto"` with a graph
    at least `threshold` dense and at most `DENSE_MAX_NODES` nodes."""
    if method == "dense":
        return True
    if method == "segment":
        return False
    return n <= DENSE_MAX_NODES and density(num_edges, n) >= threshold


def chunk_size(n: int) -> int:
    """How many samples `per_sample` evaluates together under `vmap` for `n` nodes."""
    return max(1, _CHUNK_ELEMENTS // max(1, n * n))


# ----------------------------------------------------------- dense edge parameters


def dense_symmetric(
    values: Float[Array, " e"], edges: Int[Array, "e 2"], n: int
) -> Float[Array, "n n"]:
    """The symmetric `(n, n)` matrix with `values[e]` at `(i, j)` and `(j, i)` for each
    edge `e = (i, j)` and zeros elsewhere (`hopkur._graphs.edge_matrix`)."""
    return edge_matrix(edges, n, values)


@eqx.filter_custom_jvp
def prescattered(values: Float[Array, " e"], dense: Array, edges: Int[Array, "e 2"]):
    r"""`dense`, given as the symmetric scatter of the per-edge `values`
    (`dense_symmetric(values, edges, n)`, or its flattened `(n * n,)` view) computed
    once outside a loop and passed through `lax.stop_gradient`: the value is `dense`,
    the tangent is the scatter's, so that derivatives still reach `values` per edge.

    This is how the couplings' `_hoisted` forms (`AbstractEnergySystem._hoisted`) keep
    the scatter out of a solve's loops while each sample's parameter cotangents stay
    of shape `(E,)` (an `(N, N)` cotangent would be stacked over the batch under
    `vmap`).
    """
    return dense


@prescattered.def_jvp
def _prescattered_jvp(primals, tangents):
    values, dense, edges = primals
    t_values = tangents[0]
    if t_values is None:
        return dense, None
    n = dense.shape[0] if dense.ndim == 2 else math.isqrt(dense.shape[0])
    return dense, dense_symmetric(t_values, edges, n).reshape(dense.shape)


def hoist_scatters(live, dense, edges):
    """The dense interaction `dense` (from `dense_interaction`, computed before a loop,
    without gradient) with its per-edge leaves tied to those of `live` (the same
    interaction in per-edge form) by `prescattered`, and its other leaves (shared
    parameters) taken from `live`."""

    def leaf(p, q):
        if eqx.is_array(p) and eqx.is_array(q) and jnp.shape(p) != jnp.shape(q):
            return prescattered(p, q, edges)
        return p

    return jax.tree.map(leaf, live, dense)


def sum_over_edges(
    edges: Int[Array, "e 2"], to_first: Array, to_second: Array, n: int
) -> Array:
    """Per node: `to_first[e]` summed at the first endpoint of each edge `e`, plus
    `to_second[e]` at its second (`jax.ops.segment_sum`; leading axis `E`). The one
    scatter-add form of an edge sum: the segment evaluations of the couplings and the
    compiled kernels' reference maps use it."""
    return jax.ops.segment_sum(
        to_first, edges[:, 0], num_segments=n
    ) + jax.ops.segment_sum(to_second, edges[:, 1], num_segments=n)


def adjacency(edges: Int[Array, "e 2"], n: int, dtype) -> Float[Array, "n n"]:
    """The 0/1 adjacency matrix of `edges` as floats of `dtype`."""
    return edge_matrix(edges, n, dtype=dtype)


def dense_source(interaction):
    """What the dense form scatters: the closed form of an interaction that declares
    one (`AbstractClosedFormInteraction`), else the interaction itself."""
    form = closed_form(interaction)
    return interaction if form is None else form


def dense_interaction(interaction, edges: Int[Array, "e 2"], n: int):
    """The interaction with each per-edge parameter (shape `(E,)`) replaced by its
    symmetric dense form, so that it can be applied elementwise to a Gram matrix; and
    whether the result must still be multiplied by the adjacency mask (when some
    parameter is shared by all edges, or the interaction is not a closed form, which
    is not known to vanish with its parameters).

    A closed-form interaction (one that declares `closed_form()`, as the built-in
    linear, relu, tanh and sigmoid ones and their subclasses do) becomes a
    `ClosedForm` with `(n, n)` coefficient matrices, applied to the `(n, n)` Gram
    matrix itself. Any other interaction keeps its type, with flattened `(n * n,)`
    parameters, and is applied to the flattened Gram matrix (interactions are
    documented as functions of a vector of overlaps; `MLPInteraction` maps over it).
    See `apply_dense`. Its per-edge parameters are those of its `per_edge_fields`
    (for `MLPInteraction`, `scale`), or else every array leaf of shape `(E,)`.
    """
    e = edges.shape[0]
    form = closed_form(interaction)
    if form is not None:
        scatter = lambda p: dense_symmetric(p, edges, n) if jnp.ndim(p) == 1 else p
        if form.kind == "zero":  # b is unused
            return ClosedForm(scatter(form.a), form.b, form.kind), jnp.ndim(form.a) == 0
        dense = ClosedForm(scatter(form.a), scatter(form.b), form.kind)
        return dense, jnp.ndim(form.a) == 0 or jnp.ndim(form.b) == 0
    scatter = lambda p: dense_symmetric(p, edges, n).reshape(n * n)
    fields = interaction.per_edge_fields
    if fields is not None:
        where = lambda m: tuple(getattr(m, name) for name in fields)
        new = tuple(scatter(p) if jnp.ndim(p) == 1 else p for p in where(interaction))
        return eqx.tree_at(where, interaction, new), True
    is_edge_leaf = lambda p: eqx.is_array(p) and jnp.shape(p) == (e,)
    dense = jax.tree.map(lambda p: scatter(p) if is_edge_leaf(p) else p, interaction)
    return dense, True


def apply_dense(
    interaction, method: str, s: Float[Array, "r n"]
) -> Float[Array, "r n"]:
    """`interaction.potential` or `.derivative` (`method`) of a dense interaction from
    `dense_interaction` (or a block of its rows) on the overlaps `s`: elementwise on
    the matrix for a `ClosedForm`, on its flattened entries otherwise.

    (Keeping the matrix shape matters for speed: on CPU, XLA evaluates the same
    elementwise map more slowly through the flat view; see benchmarks/README.md,
    "Measurements behind implementation choices".)"""
    if isinstance(interaction, ClosedForm):
        return getattr(interaction, method)(s)
    return getattr(interaction, method)(s.reshape(-1)).reshape(s.shape)


def _gram(x):
    return x @ x.T


def _weights(s, interaction, mask):
    # phi'(s) o M for a block of overlaps `s`; `interaction`, `mask` cover its rows.
    w = apply_dense(interaction, "derivative", s)
    return w if mask is None else w * mask


def _rows_drive(rows, x, interaction, mask):
    # (phi'(R X^T) o M) X for rows R of X; `interaction`, `mask` cover those rows.
    return _weights(rows @ x.T, interaction, mask) @ x


def _transposed_product(a, b):
    # a^T b without forming a^T
    return lax.dot_general(a, b, (((0,), (0,)), ((), ())))


@eqx.filter_custom_jvp
def _symmetric_gram_drive(x, interaction, mask):
    return _rows_drive(x, x, interaction, mask)


@_symmetric_gram_drive.def_jvp
def _symmetric_gram_drive_jvp(primals, tangents):
    r"""The tangent of $F = W X$, $W = \varphi'(G)\circ M$, $G = X X^\top$, written
    so that its transpose (reverse mode) multiplies by no transposed $N\times N$
    matrix.

    With $C = \varphi''(G)\circ M$ (symmetric) and $Q = C\circ(\dot X X^\top)$:
    $\dot F = \dot W_\theta X + W\dot X + QX + Q^\top X$, where $\dot W_\theta$ is the
    parameters' part. $W$ is symmetric, so $W\dot X$ is written $W^\top\dot X$:
    transposed, it is the plain product $W\bar F$; $Q^\top X$ transposes into
    $(C\circ X\bar F^\top) X$, again a plain product (XLA adds it to the
    $(C\circ \bar F X^\top) X$ of $QX$ before multiplying). Autodiff of the forward
    pass asks instead for $W^\top \bar F$ and $\bar G^\top X$, products with a
    transposed $N\times N$ operand that XLA:CPU runs through its generic dot rather than
    its fast matrix-product library (slower; measured in benchmarks/README.md,
    "Measurements behind implementation choices"). Valid because $W$ and $C$ are
    symmetric: the parameters come from `dense_interaction` (scattered to both
    $(i,j)$ and $(j,i)$) and the mask is the symmetric adjacency matrix, a constant
    whose tangent is ignored."""
    x, interaction, mask = primals
    dx, d_interaction, _ = tangents
    g = _gram(x)
    leaves, treedef = jax.tree.flatten(interaction)
    t_leaves = (
        [None] * len(leaves)
        if d_interaction is None
        else treedef.flatten_up_to(d_interaction)
    )
    where = [i for i, leaf in enumerate(leaves) if eqx.is_inexact_array(leaf)]

    def weights(values, g):
        new = list(leaves)
        for i, v in zip(where, values):
            new[i] = v
        return _weights(g, jax.tree.unflatten(treedef, new), mask)

    values = [leaves[i] for i in where]
    d_values = [t_leaves[i] for i in where]
    if all(t is None for t in d_values):
        w, dw = weights(values, g), None
    else:
        d_values = [
            jnp.zeros_like(v) if t is None else t for v, t in zip(values, d_values)
        ]
        w, dw = jax.jvp(lambda vs: weights(vs, g), (values,), (d_values,))
    out = w @ x
    tangent = []
    if dw is not None:
        tangent.append(dw @ x)
    if dx is not None:
        _, c = jax.jvp(lambda g: weights(values, g), (g,), (jnp.ones_like(g),))
        q = c * (dx @ x.T)
        tangent += [_transposed_product(w, dx), q @ x, _transposed_product(q, x)]
    if not tangent:
        return out, jnp.zeros_like(out)
    return out, sum(tangent[1:], tangent[0])


def masked_gram_drive(args) -> Float[Array, "n d"]:
    r"""$(\varphi'(X X^\top) \circ M) X$ for one sample; `args = (x, interaction, mask)`
    with a dense interaction from `dense_interaction` (symmetric parameters) and `mask`
    `None` or a symmetric `(n, n)` matrix."""
    x, interaction, mask = args
    return _symmetric_gram_drive(x, interaction, mask)


def _row_block(n: int) -> int | None:
    """Rows per block for `masked_gram_drive_batched`, or `None` when blocking does not
    pay (the N x N parameter matrices fit in cache) or no divisor of `n` is large
    enough."""
    if n * n <= _BLOCK_FROM_ELEMENTS:
        return None
    target = max(1, _BLOCK_ELEMENTS // n)
    rows = max(r for r in range(1, min(n, target) + 1) if n % r == 0)
    return rows if 4 * rows >= target else None


def masked_gram_drive_batched(args, flags) -> Float[Array, "b n d"] | None:
    r"""`masked_gram_drive` over a batch of states with shared parameters, in row
    blocks: for each block of rows it forms $\varphi'$ of the rows' Gram entries for two
    samples at a time and multiplies by $X$, so that the block's parameters are read
    from memory once for the whole batch (not once per sample). `None` (fall back to
    sample by sample) when the parameters are batched or blocking does not pay."""
    x, interaction, mask = args
    x_flag, interaction_flags, mask_flag = flags
    if not x_flag or any(jax.tree.leaves(interaction_flags)) or mask_flag:
        return None
    b, n, d = x.shape
    rows = _row_block(n)
    if rows is None:
        return None
    chunk = 2 if b % 2 == 0 else 1

    def rows_of(p, start):
        # a block of rows of a dense parameter (matrix or flattened), else `p`
        if not eqx.is_array(p):
            return p
        if jnp.shape(p) == (n, n):
            return lax.dynamic_slice_in_dim(p, start, rows)
        if jnp.shape(p) == (n * n,):
            return lax.dynamic_slice_in_dim(p, start * n, rows * n)
        return p

    def block(r):
        start = r * rows
        sub = jax.tree.map(lambda p: rows_of(p, start), interaction)
        m = None if mask is None else lax.dynamic_slice_in_dim(mask, start, rows)

        def one(y):
            y_rows = lax.dynamic_slice_in_dim(y, start, rows)
            return _rows_drive(y_rows, y, sub, m)

        return lax.map(jax.vmap(one), x.reshape(b // chunk, chunk, n, d))

    out = lax.map(block, jnp.arange(n // rows))  # (blocks, b // chunk, chunk, rows, d)
    return jnp.transpose(out, (1, 2, 0, 3, 4)).reshape(b, n, d)


def dense_edge_parts(interaction, edges, n: int, dtype, hoisted=None):
    """The dense interaction and the mask (`None` when not needed) that the dense
    evaluation of an edge coupling uses: `(dense_interaction(...), adjacency or None)`.
    With `hoisted`, the same pair computed before a loop without gradient, they are
    not computed again: the per-edge parameters are tied to it by `hoist_scatters`.
    """
    if hoisted is not None:
        dense, mask = hoisted
        return hoist_scatters(dense_source(interaction), dense, edges), mask
    dense, needs_mask = dense_interaction(interaction, edges, n)
    return dense, adjacency(edges, n, dtype) if needs_mask else None


def edge_drive_dense(args) -> Float[Array, "n d"]:
    r"""`masked_gram_drive` from the per-edge form: `args = (x, interaction, edges,
    hoisted)` with the interaction's parameters per edge (or shared), and `hoisted`
    `None` or `dense_edge_parts(interaction, ...)` computed before a loop without
    gradient.

    Without `hoisted`, the parameters are scattered into $N\times N$ matrices inside,
    so that the cotangents a sample's backward pass returns are per edge (shape
    `(E,)`), not $N\times N$: under a `vmap`ped derivative (diffrax's checkpointed
    backward pass) they are stacked over the batch before being summed. In the sample
    loops the scatter is loop-invariant and XLA evaluates it once. With `hoisted` the
    scatter is not evaluated at all; `prescattered` gives the same derivatives."""
    x, interaction, edges, hoisted = args
    dense, mask = dense_edge_parts(interaction, edges, x.shape[0], x.dtype, hoisted)
    return masked_gram_drive((x, dense, mask))


def edge_drive_dense_batched(args, flags) -> Float[Array, "b n d"] | None:
    """`edge_drive_dense` over a batch of states with shared parameters: the row-blocked
    `masked_gram_drive_batched`."""
    x, interaction, edges, hoisted = args
    x_flag, interaction_flags, edges_flag, hoisted_flags = flags
    if (
        not x_flag
        or any(jax.tree.leaves(interaction_flags))
        or edges_flag
        or any(jax.tree.leaves(hoisted_flags))
    ):
        return None
    dense, mask = dense_edge_parts(interaction, edges, x.shape[1], x.dtype, hoisted)
    unbatched = jax.tree.map(lambda _: False, (dense, mask))
    return masked_gram_drive_batched((x, dense, mask), (True, *unbatched))


def edge_energy_dense(args) -> Float[Array, ""]:
    """`masked_gram_energy` from the per-edge form, as `edge_drive_dense`."""
    x, interaction, edges, hoisted = args
    dense, mask = dense_edge_parts(interaction, edges, x.shape[0], x.dtype, hoisted)
    return masked_gram_energy((x, dense, mask))


def masked_gram_energy(args) -> Float[Array, ""]:
    r"""$-\tfrac12 \sum_{ij} M_{ij}\varphi_{ij}(x_i\cdot x_j)$ for one sample (each edge
    once: the diagonal is masked out)."""
    x, interaction, mask = args
    phi = apply_dense(interaction, "potential", _gram(x))
    if mask is not None:
        phi = phi * mask
    return -0.5 * jnp.sum(phi)


def coupling_drives(
    g: Float[Array, " n"], x: Float[Array, "n d"], c: Float[Array, "n n"]
) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
    r"""Dense drives of a Hopfield–Kuramoto edge coupling with coefficient matrix $C$:
    $v = (C \circ X X^\top) g$ and $u = g \circ C (g \circ X)$.

    Both come from one product $Y = C (g \circ X)$: $u_i = g_i y_i$ and
    $v_i = \sum_j c_{ij} (x_i\cdot x_j) g_j = x_i \cdot y_i$. No Gram matrix is
    formed, and under `vmap` ($C$ shared by the batch) the product is one matrix
    product for the whole batch."""
    y = c @ (g[:, None] * x)
    return jnp.sum(x * y, axis=-1), g[:, None] * y


def coupling_energy(
    g: Float[Array, " n"], x: Float[Array, "n d"], c: Float[Array, "n n"]
) -> Float[Array, ""]:
    r"""$\tfrac12 g^\top (C \circ X X^\top) g = \tfrac12 \sum_i g_i\, x_i \cdot
    [C (g \circ X)]_i$."""
    gx = g[:, None] * x
    return 0.5 * jnp.sum(gx * (c @ gx))
