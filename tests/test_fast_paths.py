"""The fast formulations: dense-masked vs segment-sum edge couplings (same results),
the per-sample batching primitive under every transform, no recompilation for new
parameter values, the naive baseline of the benchmarks, and a smoke run of
`hopkur bench`."""

import json
import re
import shutil
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hopkur
from hopkur import _sparse

from .helpers import _interaction, _Rng, INTERACTIONS, tree_allclose


REPO = Path(__file__).resolve().parent.parent


def _inexact(tree):
    return eqx.filter(tree, eqx.is_inexact_array)


@eqx.filter_jit
def _forward(coupling, xs):
    batched = jax.vmap(coupling.drive)(xs), jax.vmap(coupling.energy)(xs)
    return batched, coupling.drive(xs[0]), coupling.energy(xs[0])


@eqx.filter_jit
def _gradients(coupling, xs):
    def loss(c, xs):
        return jnp.sum(jnp.sin(jax.vmap(c.drive)(xs))) + jnp.sum(jax.vmap(c.energy)(xs))

    grad_params = eqx.filter_grad(loss)(coupling, xs)
    grad_x = jax.grad(lambda xs: loss(coupling, xs))(xs)
    return _inexact(grad_params.interaction), grad_x


def _edge_couplings(kind, key):
    r = _Rng(key)
    n, d = 9, 3
    edges = r.edges(n)
    interaction = _interaction(kind, r, edges.shape[0])
    xs = jnp.stack([r.sphere(n, d) for _ in range(3)])
    segment = hopkur.EdgeCoupling(edges, interaction, method="segment")
    dense = hopkur.EdgeCoupling(edges, interaction, method="dense")
    assert segment.evaluation_method(n) == "segment"
    assert dense.evaluation_method(n) == "dense"
    return segment, dense, xs


@pytest.mark.parametrize("kind", INTERACTIONS)
def test_edge_coupling_dense_equals_segment(kind, getkey):
    segment, dense, xs = _edge_couplings(kind, getkey())
    tol = dict(rtol=1e-10, atol=1e-10)
    assert tree_allclose(_forward(dense, xs), _forward(segment, xs), **tol)


@pytest.mark.parametrize("kind", INTERACTIONS)
def test_edge_coupling_gradients_dense_equals_segment(kind, getkey):
    # The dense drive has its own tangent rule (`_symmetric_gram_drive`); reverse mode
    # transposes it.
    segment, dense, xs = _edge_couplings(kind, getkey())
    assert tree_allclose(
        _gradients(dense, xs), _gradients(segment, xs), rtol=1e-10, atol=1e-10
    )


@eqx.filter_jit
def _forward_mode_and_second_order(coupling, x, dx):
    params, static = eqx.partition(coupling, eqx.is_inexact_array)
    d_params = jax.tree.map(
        lambda p: jnp.cos(jnp.arange(p.size)).reshape(p.shape), params
    )
    drive = lambda p: eqx.combine(p, static).drive(x)
    return (
        jax.jacfwd(coupling.drive)(x),
        jax.jvp(drive, (params,), (d_params,))[1],
        # both tangents at once
        jax.jvp(
            lambda p, y: eqx.combine(p, static).drive(y), (params, x), (d_params, dx)
        )[1],
        jax.hessian(lambda y: jnp.sum(jnp.sin(coupling.drive(y))))(x),
        # reverse over reverse, in the parameters and the state together
        jax.grad(
            lambda p: jnp.sum(
                jax.grad(
                    lambda y: jnp.sum(jnp.cos(drive(p)))
                    + jnp.sum(jnp.sin(eqx.combine(p, static).drive(y)))
                )(x)
                ** 2
            )
        )(params).interaction,
    )


@pytest.mark.parametrize("kind", INTERACTIONS)
def test_edge_coupling_forward_mode_and_second_order_dense_equals_segment(kind, getkey):
    segment, dense, xs = _edge_couplings(kind, getkey())
    dx = jnp.sin(3 * xs[1])
    assert tree_allclose(
        _forward_mode_and_second_order(dense, xs[0], dx),
        _forward_mode_and_second_order(segment, xs[0], dx),
        rtol=1e-10,
        atol=1e-10,
    )


def test_edge_coupling_shared_parameters_dense_equals_segment(getkey):
    # Scalar (shared) parameters need the adjacency mask on the dense path.
    r = _Rng(getkey())
    n, d = 8, 4
    edges = r.edges(n, 0.3)
    interaction = hopkur.TanhInteraction(0.7, -1.3)
    x = r.sphere(n, d)
    segment = hopkur.EdgeCoupling(edges, interaction, method="segment")
    dense = hopkur.EdgeCoupling(edges, interaction, method="dense")
    assert tree_allclose(dense.drive(x), segment.drive(x), rtol=1e-12, atol=1e-12)
    assert tree_allclose(dense.energy(x), segment.energy(x), rtol=1e-12, atol=1e-12)


def test_auto_chooses_by_density():
    n = 200
    relu = lambda e: hopkur.ReluInteraction(jnp.ones(e), jnp.ones(e))
    sparse_edges = hopkur.ring_edges(n, 2)  # density 0.01
    dense_edges = hopkur.ring_edges(n, 20)  # density ~0.1
    assert _sparse.density(len(sparse_edges), n) < _sparse.DENSE_THRESHOLD
    assert _sparse.density(len(dense_edges), n) > _sparse.DENSE_THRESHOLD
    sparse = hopkur.EdgeCoupling(sparse_edges, relu(len(sparse_edges)))
    dense = hopkur.EdgeCoupling(dense_edges, relu(len(dense_edges)))
    # On CPU with the compiled kernels, closed-form interactions use them at any
    # density; between the two JAX formulations (the energy, and the drive elsewhere)
    # the density decides.
    native = hopkur.native_kernels()[0] and jax.default_backend() == "cpu"
    assert sparse.evaluation_method(n) == ("native" if native else "segment")
    assert dense.evaluation_method(n) == ("native" if native else "dense")
    assert sparse._gram_method(n) == "segment"
    assert dense._gram_method(n) == "dense"
    # The explicit override wins.
    forced = hopkur.EdgeCoupling(sparse_edges, relu(len(sparse_edges)), method="dense")
    assert forced.evaluation_method(n) == "dense"
    forced = hopkur.EdgeCoupling(dense_edges, relu(len(dense_edges)), method="segment")
    assert forced.evaluation_method(n) == "segment"
    # Learned interactions are evaluated on all N^2 pairs by the dense form: they need
    # a denser graph.
    function = hopkur.FunctionInteraction(
        lambda s, p: p * s**3, jnp.ones(len(dense_edges))
    )
    learned = hopkur.EdgeCoupling(dense_edges, function)
    assert learned.evaluation_method(n) == "segment"
    complete = hopkur.complete_edges(20)
    function = hopkur.FunctionInteraction(
        lambda s, p: p * s**3, jnp.ones(len(complete))
    )
    assert hopkur.EdgeCoupling(complete, function).evaluation_method(20) == "dense"


@pytest.mark.parametrize(
    "make",
    [
        lambda edges, alpha: hopkur.EdgeCoupling(
            edges, hopkur.LinearInteraction(alpha), method="fast"
        ),
        lambda edges, alpha: hopkur.NetworkCoupling(
            edges, jnp.ones(len(edges)), method="x"
        ),
        lambda edges, alpha: hopkur.AdditiveCoupling(alpha, edges, method="sparse"),
        lambda edges, alpha: hopkur.MultiplicativeCoupling(alpha, edges, method=""),
    ],
)
def test_bad_method(make):
    with pytest.raises(ValueError, match=r"^`\w+\(method=\.\.\.\)` must be one of"):
        make(jnp.asarray(hopkur.ring_edges(6, 2)), 1.0)


def _coupled(kind, method, r_seed):
    r = _Rng(jax.random.key(r_seed))
    n, d = 8, 3
    w = r.normal(n, n) / np.sqrt(n)
    hopfield = hopkur.Hopfield(w, 0.2 * r.normal(n), hopkur.lagrangian_tanh)
    edges = r.edges(n)
    e = edges.shape[0]
    interaction = hopkur.ReluInteraction(r.normal(e), r.normal(e))
    kuramoto = hopkur.Kuramoto(
        hopkur.EdgeCoupling(edges, interaction, method=method),
        field=0.5 * r.normal(n, d),
    )
    cedges = r.edges(n, 0.6)
    if kind == "network":
        coupling = hopkur.NetworkCoupling(
            cedges, r.normal(cedges.shape[0]), method=method
        )
    elif kind == "additive":
        coupling = hopkur.AdditiveCoupling(0.7, cedges, method=method)
    else:
        coupling = hopkur.MultiplicativeCoupling(-0.4, cedges, method=method)
    model = hopkur.HopfieldKuramoto(hopfield, kuramoto, coupling, 0.6, 1.7)
    ys = (
        jnp.stack([r.normal(n) for _ in range(2)]),
        jnp.stack([r.sphere(n, d) for _ in range(2)]),
    )
    return model, ys


@eqx.filter_jit
def _coupled_outputs(model, ys):
    fields = jax.vmap(model.vector_field, (None, 0, None))(0.0, ys, None)
    energies = jax.vmap(model.energy, (0, None))(ys, None)

    def loss(m):
        f = jax.vmap(m.vector_field, (None, 0, None))(0.0, ys, None)
        return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(f)) + jnp.sum(
            jax.vmap(m.energy, (0, None))(ys, None)
        )

    # (leaves only: the models differ in a static field, `method`)
    return fields, energies, jax.tree.leaves(_inexact(eqx.filter_grad(loss)(model)))


@pytest.mark.parametrize("method", ["dense", "native"])
@pytest.mark.parametrize("kind", ["network", "additive", "multiplicative"])
def test_coupled_dense_and_native_equal_segment(kind, method):
    if method == "native" and not hopkur.native_kernels()[0]:
        pytest.skip(hopkur.native_kernels()[1])
    segment = _coupled_outputs(*_coupled(kind, "segment", 3))
    other = _coupled_outputs(*_coupled(kind, method, 3))
    assert tree_allclose(other, segment, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------ per-sample primitive


def _plain(args):
    x, a, b = args
    gram = x @ x.T
    return (a + b * jnp.tanh(gram)) @ x, jnp.sum(gram * a)


def _wrapped(x, a, b, batch_size=2):
    return _sparse.per_sample(_plain, (x, a, b), batch_size=batch_size)


def _reference(x, a, b):
    return _plain((x, a, b))


@pytest.fixture
def sample_inputs():
    rng = np.random.default_rng(0)
    n, d = 5, 3
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    xs = rng.standard_normal(
        (5, n, d)
    )  # batch 5 > batch_size 2: chunks and a remainder
    return jnp.asarray(xs), jnp.asarray(a + a.T), jnp.asarray(b + b.T)


def _both(transform, *args):
    """`transform(f)(*args)` for the wrapped and the reference function, compiled."""
    return (
        jax.jit(transform(_wrapped))(*args),
        jax.jit(transform(_reference))(*args),
    )


def _vm(f):
    return jax.vmap(f, (0, None, None))


def test_per_sample_vmap_and_grad(sample_inputs):
    xs, a, b = sample_inputs
    tol = dict(rtol=1e-12, atol=1e-12)
    assert tree_allclose(*_both(_vm, xs, a, b), **tol)
    # nested vmap (over parameters too)
    a2 = jnp.stack([a, 2 * a])
    assert tree_allclose(
        *_both(lambda f: jax.vmap(_vm(f), (None, 0, None)), xs, a2, b), **tol
    )

    def grad_of_vmap(f):
        def loss(x, a, b):
            return sum(jnp.sum(jnp.cos(o)) for o in jax.tree.leaves(_vm(f)(x, a, b)))

        return jax.grad(loss, (0, 1, 2))

    assert tree_allclose(*_both(grad_of_vmap, xs, a, b), **tol)

    def vmap_of_grad(f):
        return _vm(jax.grad(lambda x, a, b: jnp.sum(jnp.sin(f(x, a, b)[0])), (0, 1)))

    assert tree_allclose(*_both(vmap_of_grad, xs, a, b), **tol)


def test_per_sample_forward_mode_and_second_order(sample_inputs):
    xs, a, b = sample_inputs
    tol = dict(rtol=1e-10, atol=1e-10)
    assert tree_allclose(*_both(lambda f: jax.jacfwd(f, (0, 1)), xs[0], a, b), **tol)
    assert tree_allclose(*_both(lambda f: jax.jacrev(f, (0, 2)), xs[0], a, b), **tol)
    hessian = lambda f: jax.hessian(lambda x, a, b: f(x, a, b)[1])
    assert tree_allclose(*_both(hessian, xs[0], a, b), **tol)

    def vmap_of_jvp(f):
        return _vm(lambda x, a, b: jax.jvp(lambda y: f(y, a, b), (x,), (x,)))

    assert tree_allclose(*_both(vmap_of_jvp, xs, a, b), **tol)


def test_per_sample_grad_of_nested_vmap(sample_inputs):
    xs, a, b = sample_inputs
    a2 = jnp.stack([a, 2 * a])

    def grad_nested(f):
        nested = jax.vmap(_vm(f), (None, 0, None))
        loss = lambda x, a, b: jnp.sum(jnp.cos(nested(x, a, b)[0]))
        return jax.grad(loss, (0, 1, 2))

    assert tree_allclose(*_both(grad_nested, xs, a2, b), rtol=1e-12, atol=1e-12)


def _batched_linear_call(c, k):
    # sum over the samples of 2 c_s + 3 k, as the primitive's own batched, summed call
    # (the form transposition produces for unbatched inputs)
    jaxpr = jax.make_jaxpr(lambda c, k: [2 * c + 3 * k])(c[0], k)
    (out,) = _sparse._bind(
        [c, k], jaxpr, 1, in_batched=(True, False), out_summed=(True,)
    )
    return out


def test_per_sample_transpose_of_summed_outputs():
    c = jnp.arange(12.0).reshape(4, 3)
    k = jnp.array([1.0, -2.0, 0.5])
    assert tree_allclose(_batched_linear_call(c, k), jnp.sum(2 * c, axis=0) + 12 * k)
    ct = jnp.array([0.3, 1.0, -1.5])
    # Nothing batched reaches the transposed call: its one evaluation is broadcast to
    # the batched input and counted once per sample for the unbatched one.
    ct_c, ct_k = jax.linear_transpose(_batched_linear_call, c, k)(ct)
    assert tree_allclose(ct_c, jnp.broadcast_to(2 * ct, c.shape))
    assert tree_allclose(ct_k, 4 * 3 * ct)


def test_dense_drive_gradient_keeps_no_per_sample_intermediates():
    # Reverse mode through the batched dense drive recomputes each sample's N x N Gram
    # matrix in the backward pass instead of saving (batch, N, N) residuals (autodiff
    # of a sample loop would save them: 720 MB per evaluation at N = 896, batch 100).
    n, d, batch = 600, 2, 3
    rng = np.random.default_rng(0)
    edges = jnp.asarray(hopkur.small_world_edges(jax.random.key(0), n, 40, 0.1))
    e = edges.shape[0]
    a, b = (jnp.asarray(rng.standard_normal(e) / 8) for _ in range(2))
    xs = rng.standard_normal((batch, n, d))
    xs = jnp.asarray(xs / np.linalg.norm(xs, axis=-1, keepdims=True))
    assert _sparse.chunk_size(n) < batch  # the forward pass too goes sample by sample

    def loss(a, b, xs):
        coupling = hopkur.EdgeCoupling(
            edges, hopkur.ReluInteraction(a, b), method="dense"
        )
        field = jax.vmap(lambda y: hopkur.Kuramoto(coupling).vector_field(0, y, None))
        return jnp.sum(jnp.sin(field(xs)))

    # the compiled program inspected is the one run below (calling the jitted
    # function instead would compile it a second time)
    grad = jax.jit(jax.grad(loss, (0, 1, 2))).lower(a, b, xs).compile()
    hlo = grad.as_text()
    assert hlo is not None
    assert re.search(rf"\[{n},{n}\]", hlo)  # one sample's Gram matrix is there
    stacked = re.findall(rf"\[{batch},({n},{n}|{n * n})\]", hlo)
    assert not stacked, stacked
    # and the gradients are those of the sample-by-sample evaluation (jitted: one
    # program, not an op-by-op evaluation of each sample)
    loop = lambda a, b, xs: sum(loss(a, b, x[None]) for x in xs)
    want = jax.jit(jax.grad(loop, (0, 1, 2)))(a, b, xs)
    assert tree_allclose(grad(a, b, xs), want)


@pytest.mark.parametrize(
    "adjoint, retract",
    [
        # checkpoints matched to the solve's 10 steps (as `max_steps` below): the
        # same gradients as the 4096-step default, about a quarter less compile time
        (dfx.RecursiveCheckpointAdjoint(checkpoints=10), True),
        pytest.param(dfx.BacksolveAdjoint(), False, marks=pytest.mark.slow),
    ],
    ids=["recursive_checkpoint", "backsolve"],
)
def test_dense_path_gradients_through_solves(adjoint, retract, getkey):
    r = _Rng(getkey())
    n, d = 7, 3
    edges = r.edges(n, 0.6)
    e = edges.shape[0]
    params = (0.5 * r.normal(e), 0.5 * r.normal(e))
    y0s = jnp.stack([r.sphere(n, d) for _ in range(3)])
    field = 0.5 * r.normal(n, d)

    def gradient(method):
        @eqx.filter_jit
        def loss(params):
            interaction = hopkur.ReluInteraction(*params)
            coupling = hopkur.EdgeCoupling(edges, interaction, method=method)
            model = hopkur.Kuramoto(coupling, field=field)

            def one(y0):
                sol = hopkur.simulate(
                    model,
                    y0,
                    t1=0.5,
                    dt0=0.05,
                    stepsize_controller=dfx.ConstantStepSize(),
                    max_steps=10,  # the solve's steps; more would raise
                    adjoint=adjoint,
                    retract=retract,
                )
                assert sol.ys is not None
                return jnp.sum(sol.ys[-1][:, 0])

            return jnp.sum(jax.vmap(one)(y0s))

        return jax.grad(loss)(params)

    assert tree_allclose(gradient("dense"), gradient("segment"), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", ["dense", "native"])
def test_no_recompilation_for_new_parameter_values(method, getkey):
    r = _Rng(getkey())
    n, d = 10, 3
    edges = r.edges(n, 0.5)
    e = edges.shape[0]
    traces = []

    @eqx.filter_jit
    def solve(model, y0):
        traces.append(1)
        return hopkur.simulate(model, y0, t1=0.2).ys

    def model_of(a, b):
        interaction = hopkur.ReluInteraction(a, b)
        return hopkur.Kuramoto(hopkur.EdgeCoupling(edges, interaction, method=method))

    coupling = model_of(r.normal(e), r.normal(e)).coupling
    assert isinstance(coupling, hopkur.EdgeCoupling)
    assert coupling.evaluation_method(n) == method
    y0 = r.sphere(n, d)
    first = solve(model_of(r.normal(e), r.normal(e)), y0)
    second = solve(model_of(r.normal(e), r.normal(e)), r.sphere(n, d))
    assert len(traces) == 1
    assert first is not None and second is not None
    assert not jnp.allclose(first, second)


# ------------------------------------------------------------------ benchmarks


def test_baseline_matches_hopkur():
    from benchmarks import problems

    for make in (problems.kuramoto, problems.hopfield_kuramoto):
        problem = make(problems.TINY, dtype=jnp.float64)
        base, fast = problems.vector_fields(problem)  # auto: dense at this density
        args = (problem.params, problem.graph, problem.y0)
        expected = jax.jit(base)(*args)
        got = jax.jit(fast)(*args)
        assert tree_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_bench_runner_smoke(tmp_path):
    from hopkur.cli import main

    suite_copy = tmp_path / "benchmarks"
    shutil.copytree(
        REPO / "benchmarks", suite_copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path / "out"
    code = main(
        [
            "bench",
            "--tiny",
            "--quiet",
            "--only",
            "additive_scale,crossover",
            "--repeats",
            "1",
            "--out",
            str(out),
            "--update-readme",
            "--benchmarks-dir",
            str(suite_copy),
        ]
    )
    assert code == 0
    assert (out / "COMPLETE").exists()
    record = json.loads((out / "results.json").read_text())
    assert set(record["results"]) == {"additive_scale", "crossover"}
    assert record["machine"]["cores"] and record["machine"]["jax"] == jax.__version__
    rows = record["results"]["crossover"]["rows"]
    assert [row["k"] for row in rows] == [2, 8]
    assert all(float(row["max |difference|"]) < 1e-4 for row in rows)
    if hopkur.native_kernels()[0]:
        assert all(float(row["native max |difference|"]) < 1e-4 for row in rows)
    markdown = (out / "results.md").read_text()
    assert "| k | density |" in markdown
    readme = (suite_copy / "README.md").read_text()
    start, end = (
        readme.index("<!-- hopkur-bench:start -->"),
        readme.index("<!-- hopkur-bench:end -->"),
    )
    assert "| k | density |" in readme[start:end]
    # A bad case name is a usage error (exit code 2).
    assert main(["bench", "--only", "nope", "--out", str(tmp_path / "x")]) == 2


# ------------------------------------------------------ row-blocked dense drive


def test_row_block_sizes():
    # Below 2^20 parameter entries the per-sample form is kept.
    assert _sparse._row_block(896) is None
    assert _sparse._row_block(1024) is None
    rows = _sparse._row_block(2048)
    assert rows is not None and 2048 % rows == 0 and rows >= 32
    # A prime number of nodes has no useful divisor: no blocking.
    assert _sparse._row_block(1031) is None


@pytest.mark.parametrize("kind, batch", [("relu", 4), ("tanh_shared", 3), ("mlp", 2)])
def test_row_blocked_dense_drive_equals_per_sample(kind, batch, monkeypatch):
    # N = 1040 > 1024 triggers the row-blocked evaluation under vmap (blocks of 208
    # rows); odd batches are evaluated one sample per chunk, even ones two.
    n, d = 1040, 3
    rng = np.random.default_rng(batch)
    edges = hopkur.complete_edges(n)
    e = edges.shape[0]
    a = jnp.asarray(rng.standard_normal(e) / np.sqrt(n))
    b = jnp.asarray(rng.standard_normal(e) / np.sqrt(n))
    x = rng.standard_normal((batch, n, d))
    x = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))

    def interaction(a, b):
        if kind == "relu":
            return hopkur.ReluInteraction(a, b)
        if kind == "tanh_shared":  # a shared parameter: the adjacency mask is used
            return hopkur.TanhInteraction(a, 0.7)
        return hopkur.MLPInteraction(
            4, 1, scale=a, key=jax.random.key(0), dtype=a.dtype
        )

    def fields(a, b, edges, xs, blocked):
        coupling = hopkur.EdgeCoupling(edges, interaction(a, b), method="dense")
        model = hopkur.Kuramoto(coupling)
        f = lambda y: model.vector_field(0.0, y, None)
        return jax.vmap(f)(xs) if blocked else jax.lax.map(f, xs)

    used = []

    def spy(args, flags):
        out = _sparse.edge_drive_dense_batched(args, flags)
        used.append(out is not None)
        return out

    monkeypatch.setattr(hopkur._kuramoto, "edge_drive_dense_batched", spy)
    blocked = jax.jit(lambda a, b, edges, x: fields(a, b, edges, x, True))(
        a, b, edges, x
    )
    assert used == [True]  # the row-blocked form ran, not the fallback
    plain = jax.jit(lambda a, b, edges, x: fields(a, b, edges, x, False))(
        a, b, edges, x
    )
    assert tree_allclose(blocked, plain, rtol=1e-10, atol=1e-12)

    def grad(blocked):
        loss = lambda a: jnp.sum(jnp.sin(fields(a, b, edges, x, blocked)))
        return jax.jit(jax.grad(loss))(a)

    assert tree_allclose(grad(True), grad(False), rtol=1e-9, atol=1e-12)
    if kind != "relu":
        return
    # Parameters batched too (vmap over models): the sample-by-sample fallback.
    both = jax.jit(jax.vmap(lambda a: fields(a, b, edges, x, True)))(jnp.stack([a, -a]))
    assert tree_allclose(
        both[1], fields(-a, b, edges, x, False), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("scan_kind", ["bounded", "checkpointed"])
def test_dense_parameter_scatter_is_hoisted_out_of_the_solve(scan_kind):
    # The dense form scatters per-edge parameters into N x N matrices; inside a solve
    # that scatter is loop-invariant and must run once, not once per step. (`simulate`
    # does it before the solve, `_hoisted`; with the default "checkpointed" stage loop
    # XLA would hoist it itself, with the "bounded" one - inside a conditional - not.)
    n, d = 64, 3
    rng = np.random.default_rng(0)
    edges = jnp.asarray(hopkur.complete_edges(n))
    e = edges.shape[0]
    a, b = (jnp.asarray(rng.standard_normal(e) / 8) for _ in range(2))
    x = rng.standard_normal((n, d))
    x = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))

    def run(a, b, edges, x):
        coupling = hopkur.EdgeCoupling(
            edges, hopkur.ReluInteraction(a, b), method="dense"
        )
        solver = dfx.Tsit5(scan_kind=scan_kind)
        return hopkur.simulate(hopkur.Kuramoto(coupling), x, t1=1.0, solver=solver)

    def final(a, b, edges, x):
        ys = run(a, b, edges, x).ys
        assert ys is not None
        return ys[-1]

    def loss(a, b, edges, x):
        return jnp.sum(final(a, b, edges, x) ** 3)

    def in_loops(fun, *args):
        # the scatters inside while loops (their bodies, conditions and everything
        # they call) of `fun`'s compiled program
        hlo = jax.jit(fun).lower(*args).compile().as_text()
        assert hlo is not None
        computations, name = {}, None
        for line in hlo.splitlines():
            if line and not line.startswith(" "):
                name = line.split(" ")[1 if line.startswith("ENTRY") else 0]
            computations.setdefault(name, []).append(line)
        loops = [
            m
            for lines in computations.values()
            for line in lines
            if " while(" in line
            for m in re.findall(r"(?:body|condition)=(%[\w.\-]+)", line)
        ]
        seen, stack = set(), list(loops)
        while stack:
            c = stack.pop()
            if c in seen or c not in computations:
                continue
            seen.add(c)
            for line in computations[c][1:]:
                stack += re.findall(r"%[\w.\-]+", line)
        scatters = [c for c in seen if any(" scatter(" in l for l in computations[c])]
        return loops, scatters, hlo

    loops, scatters, hlo = in_loops(final, a, b, edges, x)
    assert loops and " scatter(" in hlo  # the solve's loops; the scatter, before them
    assert not scatters, scatters
    # and reverse mode: the scatter's transpose in the loops is a gather
    loops, scatters, _ = in_loops(jax.grad(loss, (0, 1)), a, b, edges, x)
    assert loops and not scatters, scatters


def _hoisted_outputs(build, params, ys):
    # What `simulate` integrates: the model hoisted for a solve from `ys[0]` (inside the
    # differentiated function, as in a training step), against the model itself.
    def outputs(params, ys, hoist):
        model = build(params)
        if hoist:
            model = model._hoisted(jax.tree.map(lambda y: y[0], ys))
        fields = jax.vmap(model.vector_field, (None, 0, None))(0.0, ys, None)
        energies = jax.vmap(model.energy, (0, None))(ys, None)
        return fields, energies

    def loss(params, ys, hoist):
        fields, energies = outputs(params, ys, hoist)
        total = sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(fields))
        return total + jnp.sum(energies)

    def results(hoist):
        grads = eqx.filter_grad(loss)(params, ys, hoist)
        grad_ys = jax.grad(loss, 1)(params, ys, hoist)
        tangents = jax.tree.map(
            lambda p: jnp.cos(jnp.arange(p.size)).reshape(p.shape), params
        )
        _, jvp = eqx.filter_jvp(lambda p: outputs(p, ys, hoist), (params,), (tangents,))
        return outputs(params, ys, hoist), grads, grad_ys, jvp

    return eqx.filter_jit(results)(True), eqx.filter_jit(results)(False)


@pytest.mark.parametrize("kind", [*INTERACTIONS, "shared"])
def test_hoisted_edge_coupling_equals_the_coupling(kind, getkey):
    # `simulate` and `relax` integrate `model._hoisted(y0)`: the per-edge parameters
    # scattered into N x N matrices once, before the solve, not at every evaluation
    # (inside Tsit5's "bounded" stage loop XLA does not hoist that scatter itself).
    # Same fields, energies and derivatives in both modes.
    r = _Rng(getkey())
    n, d = 9, 3
    edges = r.edges(n)
    e = edges.shape[0]
    if kind == "shared":  # a shared parameter next to a per-edge one
        params = {"a": jnp.asarray(0.3), "b": r.normal(e)}
        make = lambda p: hopkur.ReluInteraction(p["a"], p["b"])
    else:
        interaction = _interaction(kind, r, e)
        params, static = eqx.partition(interaction, eqx.is_inexact_array)
        make = lambda p: eqx.combine(p, static)

    def build(p):
        coupling = hopkur.EdgeCoupling(edges, make(p), method="dense")
        return hopkur.Kuramoto(coupling, field=0.3 * jnp.ones((n, d)))

    ys = jnp.stack([r.sphere(n, d) for _ in range(3)])
    hoisted, plain = _hoisted_outputs(build, params, ys)
    assert tree_allclose(hoisted, plain, rtol=1e-12, atol=1e-12)
    model = build(params)
    assert "scatter" in str(
        jax.make_jaxpr(lambda y: model.vector_field(0, y, None))(ys[0])
    )
    hoisted_model = model._hoisted(ys[0])
    field = lambda y: hoisted_model.vector_field(0.0, y, None)
    assert "scatter" not in str(jax.make_jaxpr(field)(ys[0]))


@pytest.mark.parametrize("kind", ["network", "additive", "multiplicative"])
def test_hoisted_coupled_model_equals_the_model(kind):
    model, ys = _coupled(kind, "dense", 5)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    build = lambda p: eqx.combine(p, static)
    hoisted, plain = _hoisted_outputs(build, params, ys)
    assert tree_allclose(hoisted, plain, rtol=1e-12, atol=1e-12)
    y = jax.tree.map(lambda a: a[0], ys)
    field = lambda m: lambda y: m.vector_field(0.0, y, None)
    assert "scatter" in str(jax.make_jaxpr(field(model))(y))
    assert "scatter" not in str(jax.make_jaxpr(field(model._hoisted(y)))(y))


class _MyRelu(hopkur.ReluInteraction):
    # A user's subclass of a closed-form interaction: new behaviour, the same
    # interaction, so it must keep the fast paths (they used to be chosen by class
    # name, and such a subclass silently lost them).
    def describe(self) -> str:
        return "my relu"


def test_a_subclass_of_a_closed_form_interaction_keeps_the_fast_paths(
    getkey, monkeypatch
):
    r = _Rng(getkey())
    n, d = 40, 3
    # density ~0.1: dense for a closed form (from 0.02), segment for a learned
    # interaction (from 0.5)
    edges = r.edges(n, 0.1)
    e = edges.shape[0]
    assert 0.02 < _sparse.density(e, n) < 0.5
    mine = _MyRelu(r.normal(e), r.normal(e))
    xs = jnp.stack([r.sphere(n, d) for _ in range(3)])
    segment = hopkur.EdgeCoupling(edges, mine, method="segment")
    coupling = hopkur.EdgeCoupling(edges, mine)  # method="auto"
    primitives = lambda f, *args: {
        eqn.primitive.name for eqn in jax.make_jaxpr(f)(*args).jaxpr.eqns
    }

    # compiled kernels: chosen, and the kernel primitives are what runs (forward and
    # reverse mode)
    if hopkur.native_kernels()[0] and jax.default_backend() == "cpu":
        assert coupling.evaluation_method(n) == "native"
        drive = jax.vmap(coupling.drive)
        assert "hopkur_edge_drive" in primitives(drive, xs)
        grad = jax.grad(lambda xs: jnp.sum(jnp.sin(drive(xs))))
        assert "hopkur_edge_cotangent" in str(jax.make_jaxpr(grad)(xs))
        assert tree_allclose(drive(xs), jax.vmap(segment.drive)(xs), rtol=1e-12)

    # the dense form (the energy always; the drive without the kernels): chosen at
    # this density, and evaluated as a closed form on the N x N Gram matrix
    monkeypatch.setattr(hopkur._native, "usable", lambda *args, **kwargs: False)
    assert coupling.evaluation_method(n) == "dense"
    assert coupling._gram_method(n) == "dense"
    for f in (jax.vmap(coupling.drive), jax.vmap(coupling.energy)):
        assert "hopkur_per_sample" in primitives(f, xs)
    dense, needs_mask = _sparse.dense_interaction(mine, edges, n)
    assert dense.kind == "relu" and dense.a.shape == (n, n) and not needs_mask
    assert tree_allclose(
        _forward(coupling, xs), _forward(segment, xs), rtol=1e-10, atol=1e-10
    )
    # a learned interaction at the same density keeps the segment form
    learned = hopkur.FunctionInteraction(lambda s, p: p * s**3, jnp.ones(e))
    assert hopkur.EdgeCoupling(edges, learned).evaluation_method(n) == "segment"
