r"""The kernels' FFI binding (private): three JAX primitives and their rules.

For the closed-form interactions $\varphi'_e(s) = a_e + b_e h(s)$ ($h = 0$, relu,
tanh or the logistic sigmoid) the drive
$d_i = \sum_{j\sim i}\varphi'_{ij}(x_i\cdot x_j)\,x_j$ is a loop over each node's
neighbours: $O(E D)$ work, no scatter-add and no $N\times N$ array. XLA:CPU cannot
generate that loop well (the segment formulation scatters one edge at a time; the dense
formulation does $O(N^2 D)$ work), so it is written in C++ (`csrc/edge_kernels.cc`):
each node's sum runs over its own neighbour list, vectorised over the batch (tiles of
one SIMD vector of samples: 16 in float32 and 8 in float64 with AVX-512, 8 and 4
otherwise), on XLA's intra-op threads.

- `edge_drive_p(x, a, b, edges)`: the drive of a batch of states `x` `(B, N, D)`;
- `edge_tangent_p(x, a, b, edges, dx, da, db)`: its tangent, linear in `(dx, da, db)`;
- `edge_cotangent_p(x, a, b, edges, ct)`: the transpose of the tangent: the
  cotangents of `x`, `a` and `b` (the last two summed over each of `groups` groups of
  consecutive samples).

`jvp` of the drive is the tangent primitive and its transpose the cotangent primitive,
so forward and reverse mode both run compiled code. `vmap` over the states folds the
new axis into the batch. Everything else — `vmap` over the parameters or the graph,
second derivatives, other backends than CPU — goes through the `_reference_*`
functions, the same maps written with gathers and scatter-adds in JAX, which are also
the lowering on GPU and TPU (the library stays device-agnostic; the kernels are a CPU
fast path). The CPU lowering needs the library loaded (`_library.load()`); it is never
built here.
"""

import functools

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core
from jax.interpreters import ad, batching, mlir
from jaxtyping import Array, ArrayLike, Float, Int

from .._interactions import ClosedForm
from .._sparse import sum_over_edges
from . import _library


# h(s) of the closed forms phi'(s) = a + b h(s) (`ClosedForm.kind`): the kernels' `mode`
MODES = {"zero": 0, "relu": 1, "tanh": 2, "sigmoid": 3}

# ------------------------------------------------------------- reference (pure JAX)


def _h(mode: int, s):
    if mode == 0:
        return jnp.zeros_like(s)
    if mode == 1:
        return jax.nn.relu(s)
    if mode == 2:
        return jnp.tanh(s)
    if mode == 3:
        return jax.nn.sigmoid(s)
    raise ValueError(f"unknown interaction mode {mode}")


def _reference_drive(x, a, b, edges, start, entries, *, mode):
    """`edge_drive_p` by gathers and segment sums (any backend and transformation;
    the compressed rows `start`, `entries` are not needed)."""
    del start, entries
    i, j = edges[:, 0], edges[:, 1]

    def one(x):
        xi, xj = x[i], x[j]
        w = (a + b * _h(mode, jnp.sum(xi * xj, axis=-1)))[:, None]
        return sum_over_edges(edges, w * xj, w * xi, x.shape[0])

    return jax.vmap(one)(x)


def _reference_tangent(x, a, b, edges, start, entries, dx, da, db, *, mode):
    drive = lambda x, a, b: _reference_drive(x, a, b, edges, start, entries, mode=mode)
    return jax.jvp(drive, (x, a, b), (dx, da, db))[1]


def _reference_cotangent(x, a, b, edges, start, entries, ct, *, mode, groups, params):
    size, n, d = x.shape
    per = size // groups

    def one(x, ct):
        drive = lambda x, a, b: _reference_drive(
            x, a, b, edges, start, entries, mode=mode
        )
        return jax.vjp(drive, x, a, b)[1](ct)

    xs = x.reshape(groups, per, n, d)
    cts = ct.reshape(groups, per, n, d)
    xbar, abar, bbar = jax.vmap(one)(xs, cts)
    if not params:
        abar, bbar = abar[:, :0], bbar[:, :0]
    return xbar.reshape(x.shape), abar, bbar


# -------------------------------------------------------------------- primitives

edge_drive_p = jex_core.Primitive("hopkur_edge_drive")
edge_tangent_p = jex_core.Primitive("hopkur_edge_tangent")
edge_cotangent_p = jex_core.Primitive("hopkur_edge_cotangent")
edge_cotangent_p.multiple_results = True

_REFERENCE = {
    edge_drive_p: _reference_drive,
    edge_tangent_p: _reference_tangent,
    edge_cotangent_p: _reference_cotangent,
}
# which arguments have the states' shape (B, N, D) and fold a `vmap` axis into B
_STATE_ARGS = {edge_drive_p: (0,), edge_tangent_p: (0, 6), edge_cotangent_p: (0, 6)}
# the graph's arguments: the edges and their compressed rows (integers)
_GRAPH_ARGS = (3, 4, 5)


def _drive_abstract(x, a, b, edges, start, entries, *, mode):
    del a, b, edges, start, entries, mode
    return jax.core.ShapedArray(x.shape, x.dtype)


def _tangent_abstract(x, a, b, edges, start, entries, dx, da, db, *, mode):
    del a, b, edges, start, entries, dx, da, db, mode
    return jax.core.ShapedArray(x.shape, x.dtype)


def _cotangent_abstract(x, a, b, edges, start, entries, ct, *, mode, groups, params):
    # the parameters' cotangents are (groups, E); (groups, 0) when not wanted
    del b, start, entries, ct, mode
    e = edges.shape[0] if params else 0
    return (
        jax.core.ShapedArray(x.shape, x.dtype),
        jax.core.ShapedArray((groups, e), a.dtype),
        jax.core.ShapedArray((groups, e), a.dtype),
    )


edge_drive_p.def_abstract_eval(_drive_abstract)
edge_tangent_p.def_abstract_eval(_tangent_abstract)
edge_cotangent_p.def_abstract_eval(_cotangent_abstract)


@functools.cache
def _jitted(prim, params: tuple):
    # one compiled function per primitive and parameters, reused by eager calls
    return jax.jit(functools.partial(prim.bind, **dict(params)))


def _impl(prim):
    def impl(*args, **params):
        return _jitted(prim, tuple(sorted(params.items())))(*args)

    return impl


for _prim in _REFERENCE:
    _prim.def_impl(_impl(_prim))
    # every backend: the reference; CPU: the kernels (below)
    mlir.register_lowering(
        _prim,
        mlir.lower_fun(_REFERENCE[_prim], multiple_results=_prim.multiple_results),
    )


def _cpu_lowering(target: str):
    def lowering(ctx, *args, **params):
        status = _library.load()
        if status.state != _library.BUILT:
            raise RuntimeError(
                f"hopkur's compiled CPU kernels are not available: {status.detail}"
            )
        attrs = {
            "mode": np.int32(params["mode"]),
            **({"groups": np.int64(params["groups"])} if "groups" in params else {}),
            **({"params": bool(params["params"])} if "params" in params else {}),
        }
        return jax.ffi.ffi_lowering(target)(ctx, *args, **attrs)

    return lowering


mlir.register_lowering(edge_drive_p, _cpu_lowering("HopkurEdgeDrive"), platform="cpu")
mlir.register_lowering(
    edge_tangent_p, _cpu_lowering("HopkurEdgeTangent"), platform="cpu"
)
mlir.register_lowering(
    edge_cotangent_p, _cpu_lowering("HopkurEdgeCotangent"), platform="cpu"
)


# ------------------------------------------------------------------------ autodiff


def _instantiate(t, like):
    return (
        jnp.zeros(jnp.shape(like), jnp.result_type(like)) if type(t) is ad.Zero else t
    )


def _drive_jvp(primals, tangents, *, mode):
    x, a, b, *graph = primals
    dx, da, db = tangents[:3]
    out = edge_drive_p.bind(x, a, b, *graph, mode=mode)
    if all(type(t) is ad.Zero for t in (dx, da, db)):
        return out, ad.Zero(jax.typeof(out).to_tangent_aval())
    dx, da, db = (_instantiate(t, p) for t, p in zip((dx, da, db), (x, a, b)))
    return out, edge_tangent_p.bind(x, a, b, *graph, dx, da, db, mode=mode)


def _tangent_transpose(ct, x, a, b, edges, start, entries, dx, da, db, *, mode):
    if any(ad.is_undefined_primal(p) for p in (x, a, b, edges, start, entries)):
        raise NotImplementedError("the edge tangent is linear in (dx, da, db) only")
    if type(ct) is ad.Zero:
        return [None] * 9
    wants_params = ad.is_undefined_primal(da) or ad.is_undefined_primal(db)
    xbar, abar, bbar = edge_cotangent_p.bind(
        x, a, b, edges, start, entries, ct, mode=mode, groups=1, params=wants_params
    )
    return [
        *[None] * 6,
        xbar if ad.is_undefined_primal(dx) else None,
        abar[0] if ad.is_undefined_primal(da) else None,
        bbar[0] if ad.is_undefined_primal(db) else None,
    ]


def _reference_jvp(prim):
    # Second and higher derivatives: the reference written in JAX (exact, not fast).
    def jvp(primals, tangents, **params):
        graph = [primals[k] for k in _GRAPH_ARGS]
        rest = [p for k, p in enumerate(primals) if k not in _GRAPH_ARGS]
        rest_t = [
            _instantiate(t, p)
            for k, (t, p) in enumerate(zip(tangents, primals))
            if k not in _GRAPH_ARGS
        ]

        def fun(*rest):
            args = list(rest)
            for k, g in zip(_GRAPH_ARGS, graph):
                args.insert(k, g)
            return _REFERENCE[prim](*args, **params)

        out, t_out = jax.jvp(fun, tuple(rest), tuple(rest_t))
        if prim.multiple_results:
            return list(out), list(t_out)
        return out, t_out

    return jvp


def _cotangent_transpose(
    cts, x, a, b, edges, start, entries, ct, *, mode, groups, params
):
    # The cotangent is linear in `ct`; its transpose (rarely needed: transposing a
    # VJP) through the reference.
    graph = (edges, start, entries)
    if not ad.is_undefined_primal(ct) or any(
        ad.is_undefined_primal(p) for p in (x, a, b, *graph)
    ):
        raise NotImplementedError("the edge cotangent is linear in `ct` only")
    cts = [
        _instantiate(c, s)
        for c, s in zip(
            cts,
            _cotangent_abstract(
                x, a, b, *graph, ct.aval, mode=mode, groups=groups, params=params
            ),
        )
    ]
    fun = lambda ct: _reference_cotangent(
        x, a, b, *graph, ct, mode=mode, groups=groups, params=params
    )
    (ct_bar,) = jax.linear_transpose(fun, ct.aval)(tuple(cts))
    return [*[None] * 6, ct_bar]


ad.primitive_jvps[edge_drive_p] = _drive_jvp
ad.primitive_jvps[edge_tangent_p] = _reference_jvp(edge_tangent_p)
ad.primitive_jvps[edge_cotangent_p] = _reference_jvp(edge_cotangent_p)
ad.primitive_transposes[edge_tangent_p] = _tangent_transpose
ad.primitive_transposes[edge_cotangent_p] = _cotangent_transpose


# ------------------------------------------------------------------------ batching


def _batcher(prim):
    state_args = _STATE_ARGS[prim]

    def batch(args, dims, **params):
        others = [d for k, d in enumerate(dims) if k not in state_args]
        if any(d is not None for d in others):
            # batched parameters or graphs: the reference, vectorised
            fun = functools.partial(_REFERENCE[prim], **params)
            out = jax.vmap(fun, in_axes=tuple(dims))(*args)
            return out, ([0] * len(out) if prim.multiple_results else 0)
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        args = list(args)
        for k in state_args:
            a, d = args[k], dims[k]
            a = (
                jnp.broadcast_to(a, (size, *a.shape))
                if d is None
                else jnp.moveaxis(a, d, 0)
            )
            args[k] = a.reshape(size * a.shape[1], *a.shape[2:])
        if prim is edge_cotangent_p:
            groups = params["groups"]
            params = dict(params, groups=size * groups)
            xbar, abar, bbar = prim.bind(*args, **params)
            xbar = xbar.reshape(size, -1, *xbar.shape[1:])
            abar = abar.reshape(size, groups, abar.shape[-1])
            bbar = bbar.reshape(size, groups, bbar.shape[-1])
            return (xbar, abar, bbar), (0, 0, 0)
        out = prim.bind(*args, **params)
        return out.reshape(size, -1, *out.shape[1:]), 0

    return batch


for _prim in _REFERENCE:
    batching.primitive_batchers[_prim] = _batcher(_prim)


# ------------------------------------------------------------------------- entry


def _drive(x, mode: int, a, b, edges, table):
    # one state through `edge_drive_p`: the coefficients as (E,) arrays of the states'
    # dtype (shared ones broadcast), the edges as int32, `table` the compressed rows
    # `(start, entries)` (empty: the kernel builds them)
    shape = edges.shape[:1]
    a = jnp.broadcast_to(jnp.asarray(a).astype(x.dtype), shape)
    b = jnp.broadcast_to(jnp.asarray(b).astype(x.dtype), shape)
    graph = (edges.astype(jnp.int32), *table)
    return edge_drive_p.bind(x[None], a, b, *graph, mode=mode)[0]


def native_edge_drive(
    x: Float[Array, "n d"], form: ClosedForm, edges: Int[Array, "e 2"], table
) -> Float[Array, "n d"]:
    r"""$d_i = \sum_{j\sim i}\varphi'_{ij}(x_i\cdot x_j)\,x_j$ for one state (batches
    come from `vmap`) with the compiled kernels, $\varphi$ a closed form; `table` the
    graph's compressed rows (`EdgeGraph.table`)."""
    if form.kind == "zero":
        return linear_edge_drive(x, form.a, edges, table)
    return _drive(x, MODES[form.kind], form.a, form.b, edges, table)


def linear_edge_drive(
    z: Float[Array, "n d"], c: Float[ArrayLike, "*e"], edges: Int[Array, "e 2"], table
) -> Float[Array, "n d"]:
    r"""$y_i = \sum_{j\sim i} c_{ij} z_j$ for one state (the linear interaction's drive
    on the states $z$; `c` per edge or shared) with the compiled kernels."""
    return _drive(z, MODES["zero"], c, 0.0, edges, table)
