"""The compiled CPU kernels of `EdgeCoupling(method="native")`: the same drive as the
segment formulation (the reference) under every transformation — `vmap` with batches
that fill tiles partly or fully, `jvp`, `grad` of the states and the per-edge or shared
parameters, per-sample gradients (`vmap` of `grad`, including groups of samples),
second derivatives, `vmap` over parameters — in float64 and float32, through `simulate`,
and clear errors for what they do not take."""

import functools
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hopkur
from hopkur import _native
from hopkur._edge_graph import EdgeGraph
from hopkur._native import _ffi

from .helpers import _interaction, _Rng, constant_steps, tree_allclose


CLOSED_FORMS = ("linear", "relu", "tanh", "sigmoid")
# the two-parameter closed forms (what `_interaction` builds for each kind)
_CLOSED_FORM_CLASSES = {
    "relu": hopkur.ReluInteraction,
    "tanh": hopkur.TanhInteraction,
    "sigmoid": hopkur.SigmoidInteraction,
}

needs_kernels = pytest.mark.skipif(
    not hopkur.native_kernels()[0],
    reason=f"compiled kernels unavailable: {hopkur.native_kernels()[1]}",
)


def test_kernels_build_where_a_compiler_exists():
    # Guards the skips below: on a Linux machine with a C++ compiler (CI) the kernels
    # must be built, so the tests that need them run.
    if platform.system() != "Linux" or _native.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine")
    ok, detail = hopkur.native_kernels()
    # (`make test` builds them first, `make kernels`; nothing builds them on use)
    assert ok, f"{detail} (run `hopkur kernels build` before the tests)"


def _pair(kind, r, n, degree=None, shared=False):
    edges = r.edges(n) if degree is None else r.edges(n, degree)
    e = edges.shape[0]
    if shared:
        interaction = (
            hopkur.LinearInteraction(0.8)
            if kind == "linear"
            else _CLOSED_FORM_CLASSES[kind](0.7, -1.3)
        )
    else:
        interaction = _interaction(kind, r, e)
    native = hopkur.EdgeCoupling(edges, interaction, method="native")
    segment = hopkur.EdgeCoupling(edges, interaction, method="segment")
    return native, segment


def _inexact(tree):
    return eqx.filter(tree, eqx.is_inexact_array)


@needs_kernels
@pytest.mark.parametrize("kind", CLOSED_FORMS)
@pytest.mark.parametrize("batch, d", [(1, 2), (3, 5), (17, 3), (40, 7)])
def test_drive_equals_segment(kind, batch, d, getkey):
    # batch 17 and 40: several tiles (4 to 16 lanes, by dtype and CPU), the last one
    # partly filled;
    # d = 7 runs the kernels' run-time dimension, 2, 3, 5 the compiled ones
    r = _Rng(getkey())
    n = 13
    native, segment = _pair(kind, r, n)
    xs = jnp.stack([r.sphere(n, d) for _ in range(batch)])
    got = jax.jit(jax.vmap(native.drive))(xs)
    want = jax.vmap(segment.drive)(xs)
    assert tree_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert tree_allclose(native.drive(xs[0]), segment.drive(xs[0]), rtol=1e-12)


@needs_kernels
@pytest.mark.parametrize("kind", CLOSED_FORMS)
@pytest.mark.parametrize("shared", [False, True])
def test_derivatives_equal_segment(kind, shared, getkey):
    r = _Rng(getkey())
    n, d, batch = 11, 4, 19
    native, segment = _pair(kind, r, n, shared=shared)
    xs = jnp.stack([r.sphere(n, d) for _ in range(batch)])
    dxs = r.normal(batch, n, d)

    def loss(c, xs):
        return jnp.sum(jnp.sin(jax.vmap(c.drive)(xs)))

    for c_native, c_segment in [(native, segment)]:
        # reverse mode: the states and the parameters (summed over the batch)
        g_native = eqx.filter_jit(eqx.filter_grad(loss))(c_native, xs)
        g_segment = eqx.filter_grad(loss)(c_segment, xs)
        assert tree_allclose(
            _inexact(g_native.interaction), _inexact(g_segment.interaction), rtol=1e-10
        )
        gx_native = jax.grad(lambda xs: loss(c_native, xs))(xs)
        gx_segment = jax.grad(lambda xs: loss(c_segment, xs))(xs)
        assert tree_allclose(gx_native, gx_segment, rtol=1e-10, atol=1e-12)
        # forward mode
        t_native = jax.jvp(jax.vmap(c_native.drive), (xs,), (dxs,))[1]
        t_segment = jax.jvp(jax.vmap(c_segment.drive), (xs,), (dxs,))[1]
        assert tree_allclose(t_native, t_segment, rtol=1e-10, atol=1e-12)

        # parameter tangents
        def parameter_tangent(c):
            params, static = eqx.partition(c, eqx.is_inexact_array)
            drive = lambda p: jax.vmap(eqx.combine(p, static).drive)(xs)
            ones = jax.tree.map(jnp.ones_like, params)
            return jax.jvp(drive, (params,), (ones,))[1]

        t_native = parameter_tangent(c_native)
        t_segment = parameter_tangent(c_segment)
        assert tree_allclose(t_native, t_segment, rtol=1e-10, atol=1e-12)


@needs_kernels
@pytest.mark.parametrize("kind", ["relu", "tanh"])
def test_per_sample_and_grouped_gradients(kind, getkey):
    r = _Rng(getkey())
    n, d = 10, 3
    native, segment = _pair(kind, r, n)

    # each jitted: one program per coupling and shape, not an op-by-op evaluation
    @eqx.filter_jit
    def per_sample(c, xs):
        # vmap of grad: one parameter cotangent per sample
        one = lambda x: eqx.filter_grad(lambda c: jnp.sum(jnp.sin(c.drive(x))))(c)
        return _inexact(jax.vmap(one)(xs).interaction)

    @eqx.filter_jit
    def grouped(c, xs):
        # vmap (over groups) of grad of a batch sum: cotangents summed per group
        def one(group):
            loss = lambda c: jnp.sum(jnp.cos(jax.vmap(c.drive)(group)))
            return _inexact(eqx.filter_grad(loss)(c).interaction)

        return jax.vmap(one)(xs)

    xs = jnp.stack([r.sphere(n, d) for _ in range(21)])
    assert tree_allclose(per_sample(native, xs), per_sample(segment, xs), rtol=1e-10)
    # groups of 3 samples (lanes of one tile in several groups) and of 10 (a group
    # across tiles)
    for shape in [(7, 3), (2, 10)]:
        ys = jnp.stack([r.sphere(n, d) for _ in range(shape[0] * shape[1])])
        ys = ys.reshape(*shape, n, d)
        assert tree_allclose(grouped(native, ys), grouped(segment, ys), rtol=1e-10)


@needs_kernels
def test_second_order_and_batched_parameters(getkey):
    # Beyond first derivatives and `vmap` over the states the kernels defer to the
    # reference; the results must still be exact.
    r = _Rng(getkey())
    n, d = 9, 3
    native, segment = _pair("tanh", r, n)
    xs = jnp.stack([r.sphere(n, d) for _ in range(4)])
    v = r.normal(*xs.shape)

    # each jitted: one program per coupling, not an op-by-op evaluation
    @eqx.filter_jit
    def hvp(c):
        grad = jax.grad(lambda xs: jnp.sum(jnp.sin(jax.vmap(c.drive)(xs))))
        return jax.jvp(grad, (xs,), (v,))[1]

    assert tree_allclose(hvp(native), hvp(segment), rtol=1e-10, atol=1e-12)

    @eqx.filter_jit
    def parameter_hvp(c):
        def loss(a):
            c2 = eqx.tree_at(lambda c: c.interaction.a, c, a)
            return jnp.sum(jnp.sin(jax.vmap(c2.drive)(xs)))

        a = c.interaction.a
        return jax.jvp(jax.grad(loss), (a,), (jnp.ones_like(a),))[1]

    assert tree_allclose(parameter_hvp(native), parameter_hvp(segment), rtol=1e-9)

    # a batch of parameter sets (vmap over the coupling itself)
    e = native.edges.shape[0]
    a_batch = jnp.stack([r.normal(e) for _ in range(3)])

    @eqx.filter_jit
    def drives(c, a_batch):
        one = lambda a: eqx.tree_at(lambda c: c.interaction.a, c, a).drive(xs[0])
        return jax.vmap(one)(a_batch)

    got = drives(native, a_batch)
    want = drives(segment, a_batch)
    assert tree_allclose(got, want, rtol=1e-12, atol=1e-12)


@needs_kernels
def test_float32(getkey):
    r = _Rng(getkey())
    n, d = 30, 5
    native, segment = _pair("relu", r, n)
    native, segment = (
        jax.tree.map(
            lambda p: p.astype(jnp.float32) if eqx.is_inexact_array(p) else p, c
        )
        for c in (native, segment)
    )
    xs = jnp.stack([r.sphere(n, d) for _ in range(37)]).astype(jnp.float32)

    # the drives and the parameters' gradients in one program per coupling
    @eqx.filter_jit
    def drives_and_gradients(c):
        def loss(c):
            return jnp.sum(jnp.sin(jax.vmap(c.drive)(xs)))

        return jax.vmap(c.drive)(xs), _inexact(eqx.filter_grad(loss)(c).interaction)

    f_native, g_native = drives_and_gradients(native)
    f_segment, g_segment = drives_and_gradients(segment)
    assert f_native.dtype == f_segment.dtype == jnp.float32
    assert tree_allclose(f_native, f_segment, rtol=1e-5, atol=1e-5)
    assert tree_allclose(g_native, g_segment, rtol=1e-4, atol=1e-4)


@needs_kernels
def test_solves_and_training_gradients_equal_segment(getkey):
    r = _Rng(getkey())
    n, d = 12, 3
    # tanh, smooth: with relu a rounding-level difference in an overlap near 0 can
    # switch a kink of the interaction on or off for the gradient
    native, segment = _pair("tanh", r, n)
    y0s = jnp.stack([r.sphere(n, d) for _ in range(5)])

    def loss(c):
        model = hopkur.Kuramoto(c, field=0.3 * jnp.ones((n, d)))

        def one(y0):
            # fixed steps: with an adaptive controller, rounding-level differences
            # in the field can change the step sequence (segment and dense differ
            # that way too), which moves the gradient by about the tolerance. Ten
            # steps, and `max_steps` and the adjoint's checkpoints matched to them
            # (about a quarter less compile time than the 4096-step defaults).
            sol = hopkur.simulate(model, y0, **constant_steps(t1=0.5, dt0=0.05))
            assert sol.ys is not None
            return jnp.sum(sol.ys[-1][:, 0])

        return jnp.sum(jax.vmap(one)(y0s))

    # one compiled program per coupling (value and gradient together)
    value_and_grad = eqx.filter_jit(eqx.filter_value_and_grad(loss))
    v_native, g_native = value_and_grad(native)
    v_segment, g_segment = value_and_grad(segment)
    assert tree_allclose(v_native, v_segment, rtol=1e-11)
    assert tree_allclose(
        _inexact(g_native.interaction), _inexact(g_segment.interaction), rtol=1e-9
    )


@needs_kernels
def test_auto_uses_the_kernels_on_cpu(getkey):
    r = _Rng(getkey())
    edges = r.edges(10)
    relu = hopkur.EdgeCoupling(edges, _interaction("relu", r, edges.shape[0]))
    mlp = hopkur.EdgeCoupling(edges, _interaction("mlp", r, edges.shape[0]))
    assert relu.evaluation_method(10) == "native"
    assert relu.evaluation_method(10, jnp.float16) != "native"
    assert mlp.evaluation_method(10) != "native"


def test_bad_input(getkey):
    r = _Rng(getkey())
    edges = r.edges(8)
    e = edges.shape[0]
    with pytest.raises(ValueError, match="closed-form"):
        hopkur.EdgeCoupling(edges, _interaction("mlp", r, e), method="native")
    with pytest.raises(ValueError, match="method"):
        hopkur.EdgeCoupling(edges, _interaction("relu", r, e), method="kernel")
    if not hopkur.native_kernels()[0]:
        return
    native = hopkur.EdgeCoupling(edges, _interaction("relu", r, e), method="native")
    with pytest.raises(ValueError, match="float32 or float64"):
        native.drive(r.sphere(8, 3).astype(jnp.float16))
    # a node index outside the states, only known at run time: the kernel says so
    bad = jnp.asarray(np.asarray(edges)).at[0, 1].set(8)

    @jax.jit
    def drive(edges, x):
        coupling = hopkur.EdgeCoupling(edges, native.interaction, method="native")
        return coupling.drive(x)

    with pytest.raises(Exception, match="outside"):
        jax.block_until_ready(drive(bad, r.sphere(8, 3)))


@needs_kernels
def test_energy_rate_and_lyapunov_with_the_kernels(getkey):
    # The model-level contract through the kernels: dE/dt = grad E . f <= 0 for the
    # symmetric relu coupling without field rotation.
    r = _Rng(getkey())
    n, d = 15, 4
    native, _ = _pair("relu", r, n)
    model = hopkur.Kuramoto(native, field=r.normal(n, d))

    @eqx.filter_jit  # one program for the five states, not op by op
    def rate_gradient_and_field(model, y):
        rate = model.energy_rate(0.0, y, None)
        grad = jax.grad(lambda y: model.energy(y, None))(y)
        return rate, grad, model.vector_field(0.0, y, None)

    for _ in range(5):
        rate, grad, f = rate_gradient_and_field(model, r.sphere(n, d))
        assert tree_allclose(rate, jnp.sum(grad * f), rtol=1e-9, atol=1e-12)
        assert rate <= 1e-12


def test_reference_matches_its_definition(getkey):
    # The reference (used off CPU and for second derivatives) is the segment drive.
    r = _Rng(getkey())
    n, d = 9, 3
    edges = r.edges(n)
    e = edges.shape[0]
    a, b = r.normal(e), r.normal(e)
    xs = jnp.stack([r.sphere(n, d) for _ in range(3)])
    segment = hopkur.EdgeCoupling(edges, hopkur.ReluInteraction(a, b), method="segment")
    graph = (edges, *segment.graph.table(n))
    got = _ffi._reference_drive(xs, a, b, *graph, mode=1)
    assert tree_allclose(got, jax.vmap(segment.drive)(xs), rtol=1e-12, atol=1e-12)


@functools.partial(jax.jit, static_argnames=("mode", "groups"))
def _layout_references(x, a, b, edges, start, entries, dx, da, db, ct, *, mode, groups):
    # The JAX references of the three primitives (drive, tangent, cotangent with and
    # without the parameters' cotangents) in one compiled program per layout and mode:
    # evaluated op by op they cost most of the test's time. They ignore the compressed
    # rows, so one evaluation serves both tables.
    graph = (edges, start, entries)
    with_params, without = (
        _ffi._reference_cotangent(
            x, a, b, *graph, ct, mode=mode, groups=groups, params=params
        )
        for params in (True, False)
    )
    return (
        _ffi._reference_drive(x, a, b, *graph, mode=mode),
        _ffi._reference_tangent(x, a, b, *graph, dx, da, db, mode=mode),
        *with_params,
        *without,
    )


@functools.partial(jax.jit, static_argnames=("mode", "groups"))
def _layout_kernels(x, a, b, edges, start, entries, dx, da, db, ct, *, mode, groups):
    # The primitives bound directly (their CPU kernels), in the same order. (Under
    # `jit`; their eager evaluation, `_impl`, runs in test_drive_equals_segment and in
    # the eager `jvp` and `grad` of test_derivatives_equal_segment.)
    graph = (edges, start, entries)
    with_params, without = (
        _ffi.edge_cotangent_p.bind(
            x, a, b, *graph, ct, mode=mode, groups=groups, params=params
        )
        for params in (True, False)
    )
    return (
        _ffi.edge_drive_p.bind(x, a, b, *graph, mode=mode),
        _ffi.edge_tangent_p.bind(x, a, b, *graph, dx, da, db, mode=mode),
        *with_params,
        *without,
    )


@needs_kernels
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_kernels_equal_reference_for_every_batch_layout(dtype):
    # The primitives themselves, against their JAX reference, for batches that fill
    # tiles (4 lanes in float64, 8 in float32) fully, partly, or hold one sample, and
    # per-edge cotangents summed over groups of 1, 2, 3, 4 or all samples.
    rng = np.random.default_rng(0)
    n, d = 12, 3
    edges = jnp.asarray(
        np.asarray(hopkur.small_world_edges(jax.random.key(0), n, 4, 0.2))
    )
    edges = edges.astype(jnp.int32)
    e = edges.shape[0]
    tol = 1e-12 if dtype == jnp.float64 else 2e-5
    if dtype == jnp.float64:
        layouts = [(5, 5), (1, 1), (8, 2), (12, 3), (9, 1)]
    else:
        layouts = [(5, 5), (9, 1), (16, 4)]
    # the compressed rows built once in Python (`EdgeGraph`), and none (the kernel
    # builds them from the edges, as for a graph only known under `jit`)
    tables = [EdgeGraph.of(edges).table(n), EdgeGraph(edges).table(n)]
    assert tables[0][0].shape == (n + 1,) and tables[1][0].shape == (0,)
    for batch, groups in layouts:
        x, ct, dx = (
            jnp.asarray(rng.standard_normal((batch, n, d)), dtype) for _ in range(3)
        )
        a, b, da, db = (jnp.asarray(rng.standard_normal(e), dtype) for _ in range(4))
        # every interaction for the first layout, relu for the others
        for mode in range(4) if (batch, groups) == (5, 5) else [1]:
            want = _layout_references(
                x, a, b, edges, *tables[0], dx, da, db, ct, mode=mode, groups=groups
            )
            for table in tables:
                got = _layout_kernels(
                    x, a, b, edges, *table, dx, da, db, ct, mode=mode, groups=groups
                )
                # drive, tangent, then (x, a, b) cotangents with and without params
                assert len(got) == len(want) == 8
                for g, w in zip(got, want):
                    assert g.shape == w.shape
                    assert tree_allclose(g, w, rtol=tol, atol=tol), (batch, groups)


@needs_kernels
def test_graph_table_is_built_once_and_checked(getkey):
    # The compressed rows are built with the coupling (concrete edges), kept on its
    # graph operator and passed to every kernel call; a graph known only under `jit`
    # gets them in `_hoisted` (once per solve). The kernels check a table they are
    # given: a wrong one is an error, never an out-of-bounds read.
    r = _Rng(getkey())
    n, d = 10, 3
    edges = r.edges(n)
    e = edges.shape[0]
    relu = _interaction("relu", r, e)
    assert isinstance(relu, hopkur.ReluInteraction)
    coupling = hopkur.EdgeCoupling(edges, relu, method="native")
    assert coupling.graph.rows is not None
    start, entries = coupling.graph.rows
    assert start.shape == (n + 1,) and entries.shape == (3, 2 * e)
    # every edge once in the rows of each endpoint, first-endpoint flags set once
    rows = np.repeat(np.arange(n), np.diff(np.asarray(start)))
    pairs = {(int(i), int(j)) for i, j in zip(rows, np.asarray(entries[0]))}
    assert pairs == {(int(i), int(j)) for i, j in np.asarray(edges)} | {
        (int(j), int(i)) for i, j in np.asarray(edges)
    }
    assert int(np.asarray(entries[2]).sum()) == e
    # more oscillators than the edges name: the table is padded, not rebuilt
    x = r.sphere(n + 3, d)
    segment = hopkur.EdgeCoupling(edges, relu, method="segment")
    assert tree_allclose(coupling.drive(x), segment.drive(x), rtol=1e-12, atol=1e-12)
    # traced edges: no table on the coupling; `_hoisted` builds one
    built = []

    @jax.jit
    def hoisted_drive(edges, x):
        c = hopkur.EdgeCoupling(edges, relu, method="native")
        built.append(c.graph.rows is None)
        c = c._hoisted(x)
        built.append(c.graph.rows is not None)
        return c.drive(x)

    assert tree_allclose(hoisted_drive(edges, x), segment.drive(x), rtol=1e-12)
    assert built == [True, True]
    # a damaged table
    bad = (start.at[3].set(start[5]), entries)
    x = r.sphere(n, d)[None]
    a = jnp.asarray(relu.a)
    with pytest.raises(Exception, match="table"):
        args = (x, a, jnp.asarray(relu.b), edges.astype(jnp.int32), *bad)
        jax.block_until_ready(_ffi.edge_drive_p.bind(*args, mode=1))
    bad = (start, entries.at[0, 0].set(n + 7))
    with pytest.raises(Exception, match="outside"):
        args = (x, a, jnp.asarray(relu.b), edges.astype(jnp.int32), *bad)
        jax.block_until_ready(_ffi.edge_drive_p.bind(*args, mode=1))


# ------------------------------------------------------- building, cache, verification

_library = _native._library


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache folder for the kernels; the process's view of the library is
    re-read before and after (the real cache again afterwards)."""
    monkeypatch.setenv("HOPKUR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HOPKUR_CACHE_DIR", raising=False)
    monkeypatch.delenv("HOPKUR_NATIVE", raising=False)
    _library.load.cache_clear()
    yield tmp_path / "cache"
    _library.load.cache_clear()


def test_cache_dir(monkeypatch, tmp_path):
    from hopkur._cache import cache_dir

    monkeypatch.delenv("HOPKUR_CACHE", raising=False)
    monkeypatch.delenv("HOPKUR_CACHE_DIR", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "hopkur"
    monkeypatch.setenv("HOPKUR_CACHE_DIR", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="HOPKUR_CACHE"):
        assert cache_dir() == tmp_path / "old"
    monkeypatch.setenv("HOPKUR_CACHE", str(tmp_path / "new"))
    assert cache_dir() == tmp_path / "new"  # the new name wins, without a warning


def _fake_compile(content: bytes):
    calls = []

    def compile(command, output):
        calls.append(output)
        Path(output).write_bytes(content)

    return compile, calls


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # same size, other bytes
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))


def test_not_built_is_silent_for_auto_and_an_error_for_native(fresh_cache, getkey):
    if _native.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    ok, detail = hopkur.native_kernels()
    assert (
        not ok and detail.startswith("not built") and "hopkur kernels build" in detail
    )
    r = _Rng(getkey())
    edges = r.edges(8)
    relu = _interaction("relu", r, edges.shape[0])
    auto = hopkur.EdgeCoupling(edges, relu)
    x = r.sphere(8, 3)
    assert auto.evaluation_method(8) != "native"  # no warning (filterwarnings=error)
    assert tree_allclose(
        auto.drive(x),
        hopkur.EdgeCoupling(edges, relu, method="segment").drive(x),
        rtol=1e-12,
    )
    native = hopkur.EdgeCoupling(edges, relu, method="native")
    with pytest.raises(RuntimeError, match="hopkur kernels build"):
        native.drive(x)
    assert not list(fresh_cache.glob("native/*.so"))  # nothing was compiled


@pytest.mark.parametrize("how", ["truncated", "empty", "checksum"])
def test_build_replaces_a_damaged_library(fresh_cache, monkeypatch, how):
    if _native.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    compile, calls = _fake_compile(bytes(range(256)) * 64)
    monkeypatch.setattr(_library, "_compile", compile)
    status, seconds = _library.build()
    assert status.state == _library.BUILT and seconds is not None and len(calls) == 1
    assert status.path is not None
    record = json.loads(status.path.with_suffix(".json").read_text())
    assert record["size"] == 256 * 64
    # intact: kept
    assert _library.build()[1] is None and len(calls) == 1
    _damage(status.path, how)
    damaged = _library.inspect()
    assert damaged.state == _library.DAMAGED, damaged
    assert "hopkur kernels build" in damaged.detail
    status, seconds = _library.build()
    assert status.state == _library.BUILT and len(calls) == 2
    assert status.path is not None
    assert status.path.read_bytes() == bytes(range(256)) * 64


_DAMAGED_SCRIPT = """
import json, sys, warnings
from pathlib import Path
import jax, jax.numpy as jnp, numpy as np
import hopkur
from hopkur._native import _library

good = Path(sys.argv[1]).read_bytes()
edges = jnp.asarray(hopkur.ring_edges(10, 2))
e = edges.shape[0]
relu = hopkur.ReluInteraction(jnp.linspace(-1.0, 1.0, e), jnp.ones(e))
x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 10, 4)))
x = x / jnp.linalg.norm(x, axis=-1, keepdims=True)
want = jax.vmap(hopkur.EdgeCoupling(edges, relu, method="segment").drive)(x)
out = {}
for how in ("truncated", "empty", "checksum"):
    plan = _library._plan()
    plan.library.parent.mkdir(parents=True, exist_ok=True)
    data = {"truncated": good[: len(good) // 3], "empty": b"",
            "checksum": good[:-1] + bytes([good[-1] ^ 0xFF])}[how]
    plan.library.write_bytes(data)
    record = {"size": len(good), "sha256": _library._sha256(Path(sys.argv[1]))}
    plan.record.write_text(json.dumps(record))
    _library.load.cache_clear()
    _library._warned.clear()
    ok, detail = hopkur.native_kernels()
    auto = hopkur.EdgeCoupling(edges, relu)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        methods = [auto.evaluation_method(10) for _ in range(3)]
        got = jax.jit(jax.vmap(auto.drive))(x)
    try:
        hopkur.EdgeCoupling(edges, relu, method="native").drive(x[0])
        native = "no error"
    except RuntimeError as error:
        native = str(error)
    out[how] = dict(
        ok=ok, detail=detail, methods=methods, native=native,
        warnings=[str(w.message) for w in caught],
        equal=bool(jnp.allclose(got, want, rtol=1e-12, atol=1e-12)),
    )
print(json.dumps(out))
"""


def test_damaged_library_is_never_loaded(tmp_path):
    # A library cut short once made the process die of SIGBUS when loaded; a 0-byte
    # one was never rebuilt. Each is now refused before the dynamic loader sees it:
    # `native_kernels()` says it is damaged, "auto" falls back to the JAX formulations
    # and warns once, "native" says how to rebuild. (In a subprocess, so that a
    # regression shows as a failed test, not as a dead test run.)
    if _native.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    status = _library.inspect()
    # a real shared library if one is built here (the truncated ELF file is what
    # crashed), else any bytes: the check happens before loading either way
    good = tmp_path / "good.so"
    if status.state == _library.BUILT:
        assert status.path is not None
        shutil.copyfile(status.path, good)
    else:
        good.write_bytes(b"\x7fELF" + bytes(range(256)) * 256)
    env = dict(os.environ, HOPKUR_CACHE=str(tmp_path / "cache"), JAX_ENABLE_X64="1")
    env.pop("HOPKUR_CACHE_DIR", None)
    env.pop("HOPKUR_NATIVE", None)
    result = subprocess.run(
        [sys.executable, "-c", _DAMAGED_SCRIPT, str(good)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for how, seen in out.items():
        assert not seen["ok"] and seen["detail"].startswith("damaged"), (how, seen)
        assert "hopkur kernels build" in seen["detail"]
        assert "native" not in seen["methods"] and seen["equal"], (how, seen)
        assert len(seen["warnings"]) == 1, (how, seen["warnings"])
        assert "falls back" in seen["warnings"][0]
        assert "hopkur kernels build" in seen["native"], (how, seen["native"])


def test_kernels_command(fresh_cache, monkeypatch, capsys):
    from hopkur import cli

    if _native.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    assert cli.main(["kernels", "status"]) == 1
    assert "not built" in capsys.readouterr().out
    compile, calls = _fake_compile(b"library")
    real_compile = _library._compile
    monkeypatch.setattr(_library, "_compile", compile)
    assert cli.main(["kernels", "build"]) == 0
    assert "compiled in" in capsys.readouterr().out and len(calls) == 1
    assert cli.main(["kernels", "build"]) == 0
    assert "already built at" in capsys.readouterr().out and len(calls) == 1
    assert cli.main(["kernels", "status"]) == 0
    assert "built at" in capsys.readouterr().out
    assert cli.main(["kernels", "build", "--force"]) == 0 and len(calls) == 2
    capsys.readouterr()
    # bad setups: one line, exit 2
    monkeypatch.setattr(_library, "_compile", real_compile)
    monkeypatch.setenv("CXX", str(fresh_cache / "no-such-compiler"))
    assert cli.main(["kernels", "build"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hopkur kernels: error:") and "not found" in err
    monkeypatch.delenv("CXX")
    blocker = fresh_cache.parent / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HOPKUR_CACHE", str(blocker))
    assert cli.main(["kernels", "build"]) == 2
    assert "cannot write the kernels' cache" in capsys.readouterr().err


def test_a_library_without_its_record_is_not_used(fresh_cache, monkeypatch):
    # e.g. left by a version of hopkur that kept no records: it cannot be verified,
    # so it is treated as not built (silently for "auto") and a build replaces it
    if _native.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    plan = _library._plan()
    assert plan is not None
    plan.library.parent.mkdir(parents=True)
    plan.library.write_bytes(b"")
    status = _library.inspect()
    assert status.state == _library.NOT_BUILT and "no build record" in status.detail
    compile, calls = _fake_compile(b"library")
    monkeypatch.setattr(_library, "_compile", compile)
    assert _library.build()[0].state == _library.BUILT and len(calls) == 1
