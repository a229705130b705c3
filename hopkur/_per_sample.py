r"""The `per_sample` primitive (private): a function of one sample that, when batched,
runs sample by sample.

Under `vmap` the dense edge drives of `hopkur._sparse` would materialise a
`(batch, N, N)` array and become memory-bound; they are therefore wrapped in
`per_sample`, a primitive that, when batched, runs its function sample by sample
(`lax.map`, in chunks small enough that each chunk's $N\times N$ intermediates stay in
cache) and that stays sample by sample under `jvp`, `grad`, transposition and nested
`vmap`, in either order of `vmap` and differentiation: its derivatives recompute each
sample's intermediates rather than saving them.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex_core
from jax.interpreters import ad, batching, mlir
from jaxtyping import PyTree

from . import _backend


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

    On the accelerator paths (`hopkur._backend`: any backend but CPU, or
    `HOPKUR_PATHS=accelerator`) it is a plain call of `fun`: under `vmap` the batch is
    evaluated as batched array operations, and autodiff is JAX's own.
    """
    if not _backend.cpu_paths():
        return fun(args)
    dynamic, static = eqx.partition(args, eqx.is_array)
    flat, tree = jax.tree.flatten(dynamic)
    out_tree = []
    flat_batched: Callable | None = None
    if batched is not None:

        def _flat_batched(leaves, flags):
            args = eqx.combine(jax.tree.unflatten(tree, leaves), static)
            out = batched(args, jax.tree.unflatten(tree, flags))
            return None if out is None else jax.tree.leaves(out)

        flat_batched = _flat_batched

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
    # few samples together here, as above, made transposed dense drives several times
    # slower: the vectorised transposes become batched matrix products; measured in
    # benchmarks/README.md, "Measurements behind implementation choices".)
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
        return out, [ad.Zero(jax.typeof(o).to_tangent_aval()) for o in out]
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
