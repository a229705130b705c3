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
therefore wrapped in `per_sample`, a primitive that, when batched, runs its function
sample by sample (`lax.map`, in chunks small enough that each chunk's $N\times N$
intermediates stay in cache) and that stays sample by sample under `jvp`, `grad`,
transposition and nested `vmap`, in either order of `vmap` and differentiation: its
derivatives recompute each sample's intermediates rather than saving them.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex_core
from jax.interpreters import ad, batching, mlir
from jaxtyping import Array, Float, Int, PyTree

from ._interactions import closed_form, ClosedForm


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


# ----------------------------------------------------------------- per-sample primitive

per_sample_p = jex_core.Primitive("hopkur_per_sample")
per_sample_p.multiple_results = True

# The primitive's parameters: `jaxpr`, the function of ONE sample (flat inputs to flat
# outputs); `batch_size`, the samples evaluated together; `batched`, the optional
# value-only hook; `in_batched`, which inputs carry a leading batch axis (none: a plain
# call of `jaxpr`); `out_summed`, which outputs are summed over the batch instead of
# stacked along it (transposition needs these for the cotangents of unbatched inputs).
# Batching is a parameter rather than an immediate `lax.map`, so that differentiating a
# batched call still goes through `_jvp` and `_transpose` below: they derive the
# per-sample tangent and transposed functions and loop over the samples again, each
# sample recomputing its own intermediates. Autodiff of a `lax.map` would instead save
# every sample's N x N intermediates as residuals (hundreds of MB per evaluation).


def _bind(args, jaxpr, batch_size, batched=None, in_batched=None, out_summed=None):
    if in_batched is None:
        in_batched = (False,) * len(args)
    if out_summed is None:
        out_summed = (False,) * len(jaxpr.out_avals)
    return per_sample_p.bind(
        *args,
        jaxpr=jaxpr,
        batch_size=batch_size,
        batched=batched,
        in_batched=tuple(in_batched),
        out_summed=tuple(out_summed),
    )


def _struct(x) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x))


def _sample_struct(shape, dtype, batched: bool) -> jax.ShapeDtypeStruct:
    """The shape of one sample of an input (its batch axis, if any, removed)."""
    return jax.ShapeDtypeStruct(tuple(shape[1:] if batched else shape), dtype)


def per_sample(
    fun: Callable[[PyTree], PyTree],
    args: PyTree,
    *,
    batch_size: int,
    batched: Callable[[PyTree, PyTree], PyTree | None] | None = None,
):
    """Calls `fun(args)`; under `vmap`, evaluates it on `batch_size` samples at a time
    (`lax.map`) instead of vectorising it over the whole batch.

    `fun` must use no closed-over arrays: everything it needs comes through `args` (any
    pytree; its non-array leaves are passed through as they are). Differentiable in both
    modes, to any order, before or after `vmap`; the derivatives are again evaluated
    sample by sample, each sample recomputing what it needs (nothing per sample is kept
    between the forward and the backward pass but the inputs).

    `batched`, if given, is tried first under `vmap` (for the value only, not for the
    derivatives): `batched(args, flags)` receives `args` with a leading batch axis on
    the batched arrays and `flags`, a pytree of booleans over the array leaves of
    `args` saying which are batched; it returns the batched outputs (batch axis first),
    or `None` to fall back to the sample-by-sample evaluation.
    """
    dynamic, static = eqx.partition(args, eqx.is_array)
    flat, tree = jax.tree.flatten(dynamic)
    out_tree = []
    flat_batched = None
    if batched is not None:

        def flat_batched(leaves, flags):
            args = eqx.combine(jax.tree.unflatten(tree, leaves), static)
            out = batched(args, jax.tree.unflatten(tree, flags))
            return None if out is None else jax.tree.leaves(out)

    def flat_fun(*leaves):
        out = fun(eqx.combine(jax.tree.unflatten(tree, leaves), static))
        out, t = jax.tree.flatten(out)
        out_tree.append(t)
        return out

    jaxpr = jax.make_jaxpr(flat_fun)(*map(_struct, flat))
    return jax.tree.unflatten(out_tree[0], _bind(flat, jaxpr, batch_size, flat_batched))


def _batch_length(shapes, in_batched) -> int:
    """The batch size: the leading dimension of the first batched input's shape."""
    return next(s[0] for s, b in zip(shapes, in_batched) if b)


def _sample_loop(fun, args, in_batched, out_summed, batch_size):
    """`fun` sample by sample over the batched `args`: stacked outputs (`batch_size`
    samples at a time), or sums over the samples where `out_summed`."""
    mapped = [a for a, b in zip(args, in_batched) if b]

    def one(sample):
        it = iter(sample)
        return fun(*[next(it) if b else a for a, b in zip(args, in_batched)])

    if not any(out_summed):
        size = _batch_length(map(jnp.shape, args), in_batched)
        if batch_size >= size:
            return jax.vmap(one)(mapped)
        return lax.map(one, mapped, batch_size=batch_size if batch_size > 1 else None)

    # Sums over the samples: one sample per step, the totals carried. (Evaluating a
    # few samples together here, as above, made transposed dense drives 5-6x slower at
    # N = 256-512: the vectorised transposes become batched matrix products.)
    def body(totals, sample):
        outs = one(sample)
        it = iter(totals)
        totals = [next(it) + o for o, s in zip(outs, out_summed) if s]
        return totals, [o for o, s in zip(outs, out_summed) if not s]

    sample_avals = jax.eval_shape(one, [m[0] for m in mapped])
    totals = [
        jnp.zeros(o.shape, o.dtype) for o, s in zip(sample_avals, out_summed) if s
    ]
    totals, stacked = lax.scan(body, totals, mapped)
    summed_it, stacked_it = iter(totals), iter(stacked)
    return [next(summed_it) if s else next(stacked_it) for s in out_summed]


def _impl(*args, jaxpr, batch_size, batched, in_batched, out_summed):
    fun = jex_core.jaxpr_as_fun(jaxpr)
    if not any(in_batched):
        return fun(*args)
    if batched is not None and not any(out_summed):
        outs = batched(list(args), list(in_batched))
        if outs is not None:
            return outs
    return _sample_loop(fun, args, in_batched, out_summed, batch_size)


def _abstract_eval(*args, jaxpr, batch_size, batched, in_batched, out_summed):
    del batch_size, batched
    if not any(in_batched):
        return jaxpr.out_avals
    size = _batch_length([a.shape for a in args], in_batched)
    return [
        a if s else a.update(shape=(size, *a.shape))
        for a, s in zip(jaxpr.out_avals, out_summed)
    ]


def _zero_tangent(x):
    if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
        return jnp.zeros(jnp.shape(x), jnp.result_type(x))
    return np.zeros(jnp.shape(x), jax.dtypes.float0)


def _jvp(primals, tangents, *, jaxpr, batch_size, batched, in_batched, out_summed):
    out = _bind(primals, jaxpr, batch_size, batched, in_batched, out_summed)
    nonzero = [type(t) is not ad.Zero for t in tangents]
    if not any(nonzero):
        return out, [ad.Zero.from_primal_value(o) for o in out]
    fun = jex_core.jaxpr_as_fun(jaxpr)
    n = len(primals)

    def tangent_fun(*args):
        ps, ts = args[:n], iter(args[n:])
        ts = [next(ts) if nz else _zero_tangent(p) for p, nz in zip(ps, nonzero)]
        return jax.jvp(fun, tuple(ps), tuple(ts))[1]

    ts = [t for t in tangents if type(t) is not ad.Zero]
    t_batched = [b for b, nz in zip(in_batched, nonzero) if nz]
    all_batched = (*in_batched, *t_batched)
    structs = [
        _sample_struct(jnp.shape(a), jnp.result_type(a), b)
        for a, b in zip([*primals, *ts], all_batched)
    ]
    tangent_jaxpr = jax.make_jaxpr(tangent_fun)(*structs)
    return out, _bind(
        [*primals, *ts], tangent_jaxpr, batch_size, None, all_batched, out_summed
    )


def _transpose(cts, *args, jaxpr, batch_size, batched, in_batched, out_summed):
    del batched
    linear = [ad.is_undefined_primal(a) for a in args]
    shapes = [a.aval.shape if lin else jnp.shape(a) for a, lin in zip(args, linear)]
    is_batched = any(in_batched)
    size = _batch_length(shapes, in_batched) if is_batched else 0
    residuals = [a for a, lin in zip(args, linear) if not lin]
    res_batched = [b for b, lin in zip(in_batched, linear) if not lin]
    lin_batched = [b for b, lin in zip(in_batched, linear) if lin]
    linear_structs = [
        _sample_struct(a.aval.shape, a.aval.dtype, b)
        for a, lin, b in zip(args, linear, in_batched)
        if lin
    ]
    cts = [ad.instantiate_zeros(c) for c in cts]
    ct_batched = [is_batched and not s for s in out_summed]
    fun = jex_core.jaxpr_as_fun(jaxpr)
    num_res = len(residuals)

    def transposed_fun(*res_and_cts):
        res, ct = res_and_cts[:num_res], list(res_and_cts[num_res:])

        def linear_fun(*lin):
            res_it, lin_it = iter(res), iter(lin)
            return fun(*[next(lin_it) if m else next(res_it) for m in linear])

        return jax.linear_transpose(linear_fun, *linear_structs)(ct)

    t_in = [*residuals, *cts]
    t_batched = (*res_batched, *ct_batched)
    structs = [
        _sample_struct(jnp.shape(a), jnp.result_type(a), b)
        for a, b in zip(t_in, t_batched)
    ]
    t_jaxpr = jax.make_jaxpr(transposed_fun)(*structs)
    if any(t_batched):
        summed = [not b for b in lin_batched]
        outs = _bind(t_in, t_jaxpr, batch_size, None, t_batched, summed)
    else:
        # Every sample sees the same residuals and cotangents: one evaluation serves
        # them all (broadcast to the batched inputs, times the batch for the others).
        outs = _bind(t_in, t_jaxpr, batch_size)
        if is_batched:
            outs = [
                jnp.broadcast_to(o, (size, *o.shape)) if b else size * o
                for o, b in zip(outs, lin_batched)
            ]
    outs = iter(outs)
    return [next(outs) if lin else None for lin in linear]


def _batch(args, dims, *, jaxpr, batch_size, batched, in_batched, out_summed):
    moved = [a if d is None else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims)]
    if not any(in_batched):
        flags = [d is not None for d in dims]
        outs = _bind(moved, jaxpr, batch_size, batched, flags)
        return outs, [0] * len(outs)
    # Already batched (nested `vmap`): one call of the batched primitive per entry of
    # the new axis.
    params = (jaxpr, batch_size, batched, in_batched, out_summed)
    mapped = [a for a, d in zip(moved, dims) if d is not None]

    def one(sample):
        it = iter(sample)
        return _bind(
            [next(it) if d is not None else a for a, d in zip(moved, dims)], *params
        )

    outs = lax.map(one, mapped)
    return outs, [0] * len(outs)


per_sample_p.def_impl(_impl)
per_sample_p.def_abstract_eval(_abstract_eval)
mlir.register_lowering(per_sample_p, mlir.lower_fun(_impl, multiple_results=True))
ad.primitive_jvps[per_sample_p] = _jvp
ad.primitive_transposes[per_sample_p] = _transpose
batching.primitive_batchers[per_sample_p] = _batch


# ----------------------------------------------------------- dense edge parameters


def dense_symmetric(
    values: Float[Array, " e"], edges: Int[Array, "e 2"], n: int
) -> Float[Array, "n n"]:
    """The symmetric `(n, n)` matrix with `values[e]` at `(i, j)` and `(j, i)` for each
    edge `e = (i, j)` and zeros elsewhere (one scatter of `2E` scalars)."""
    i, j = edges[:, 0], edges[:, 1]
    index = jnp.concatenate([i * n + j, j * n + i])
    flat = jnp.zeros((n * n,), jnp.result_type(values))
    flat = flat.at[index].set(jnp.concatenate([values, values]), unique_indices=True)
    return flat.reshape(n, n)


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
    return dense_symmetric(jnp.ones(edges.shape[:1], dtype), edges, n)


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

    (Keeping the matrix shape matters for speed: on CPU, XLA evaluated the same
    elementwise map 1.5x slower through the flat view.)"""
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
    its fast matrix-product library (one vector-field VJP at the research size: 429 ms
    that way, 295 ms this way). Valid because $W$ and $C$ are symmetric: the
    parameters come from `dense_interaction` (scattered to both $(i,j)$ and $(j,i)$)
    and the mask is the symmetric adjacency matrix, a constant whose tangent is
    ignored."""
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
