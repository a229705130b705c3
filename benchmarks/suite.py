"""The benchmark suite run by `hopkur bench` (and `make bench`).

Each case is a function `(config) -> dict` with keys `title`, `columns`, `rows` (a list
of dicts keyed by column), `notes` (a list of strings) and `targets` (a list of
`{"target": str, "met": bool | None, "measured": str}`). `render_markdown` turns the
results into the tables kept in `benchmarks/README.md`.

All times are medians over repeated runs after compilation (see `timing.py`); speed-ups
are medians of ratios measured in the same round; compile times are separate; memory is
XLA's account of the compiled program (`memory_analysis()`).
"""

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import hopkur
from hopkur import _backend, _sparse

from . import problems as P, timing as T


@dataclasses.dataclass
class Config:
    """`level`: `"full"` (the sizes of the targets), `"quick"` (small sizes, a smoke run
    of every case) or `"tiny"` (toy sizes, for the test of the runner)."""

    level: str = "full"
    repeats: int = 5
    slow_repeats: int = 3
    log: Callable[[str], None] = print

    @property
    def quick(self) -> bool:
        return self.level != "full"

    def pick(self, full, quick, tiny):
        return {"full": full, "quick": quick, "tiny": tiny}[self.level]


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.3g} ms"


def _mb(nbytes: int | None) -> str:
    if nbytes is None:
        return "–"
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.2f} GiB"
    return f"{nbytes / 2**20:.1f} MiB"


def _norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(v * v) for v in jax.tree.leaves(tree))))


def backend() -> dict:
    """The device the suite runs on, and the evaluation paths hopkur takes there
    (`hopkur._backend`: the CPU fast paths or the accelerator paths)."""
    device = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": getattr(device, "device_kind", ""),
        "device_count": jax.device_count(),
        "paths": _backend.paths(),
    }


def _cpu_target(cfg: Config) -> bool:
    # The speed-up targets were set for CPUs (against a baseline whose per-edge
    # scatter-adds run one edge at a time there); elsewhere they are reported only.
    return not cfg.quick and jax.default_backend() == "cpu"


def _x(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.1f}×"


# ------------------------------------------------------------------ 1-3: research size


_RESEARCH_TARGETS = {"vector field": 20.0, "solve": 15.0, "training step": 15.0}
# The joint-batch training step (one ODE over the batch, a shared step size): targets
# per problem.
_JOINT_TARGETS = {"kuramoto": 40.0, "hopfield_kuramoto": 30.0}
_JOINT = "training step, joint solve"


def _difference(name: str, cb, cf) -> str:
    if name == "solve":
        diff = P.max_difference(cb.output[0], cf.output[0])
        steps_b = float(np.mean(np.asarray(cb.output[1])))
        steps_f = float(np.mean(np.asarray(cf.output[1])))
        return f"{diff:.1e} (steps {steps_b:.1f} / {steps_f:.1f})"
    diff = P.max_difference(cb.output, cf.output)
    return f"{diff:.1e} (of {P.max_magnitude(cb.output):.2g})"


def _research(cfg: Config, make) -> dict:
    problem = make(cfg.pick(P.RESEARCH, P.QUICK, P.TINY))
    p, g, ys, targets = problem.params, problem.graph, problem.y0, problem.targets
    rows, result_targets = [], []
    base_step, fast_step = P.training_steps(problem)
    _, joint_step = P.joint_training_steps(problem)
    workloads = [
        ("vector field", P.vector_fields(problem), (p, g, ys), cfg.repeats),
        ("solve", P.solves(problem), (p, g, ys), cfg.slow_repeats),
        # The per-sample (vmapped) and the joint training steps are timed in the same
        # rounds as one baseline, the most expensive call of the suite.
        (
            "training step",
            (base_step, fast_step, joint_step),
            (p, g, ys, targets),
            cfg.slow_repeats,
        ),
    ]
    for name, (base, *fasts), args, repeats in workloads:
        cfg.log(f"  {problem.name}: {name}: compiling")
        cb = T.compile_call("baseline", base, *args)
        labels = [name, _JOINT][: len(fasts)]
        compiled = [
            T.compile_call(label, fast, *args) for label, fast in zip(labels, fasts)
        ]
        cfg.log(f"  {problem.name}: {name}: timing ({repeats} rounds)")
        times = T.run_interleaved([cb, *compiled], repeats)
        for label, cf in zip(labels, compiled):
            ratio = T.paired_ratio(times["baseline"], times[label])
            row = {
                "workload": label,
                "baseline": _ms(T.median(times["baseline"])),
                "hopkur": _ms(T.median(times[label])),
                "speed-up": _x(ratio),
                "max |difference|": _difference(name, cb, cf),
                "compile (baseline / hopkur)": (
                    f"{_ms(cb.compile_s)} / {_ms(cf.compile_s)}"
                ),
                "memory (baseline / hopkur)": (
                    f"{_mb(cb.memory_bytes)} / {_mb(cf.memory_bytes)}"
                ),
                "_ratio": ratio,
                "_times": {"baseline": times["baseline"], "hopkur": times[label]},
                "_compile_s": {"baseline": cb.compile_s, "hopkur": cf.compile_s},
                "_memory": {"baseline": cb.memory_bytes, "hopkur": cf.memory_bytes},
            }
            rows.append(row)
            goal = (
                _JOINT_TARGETS[problem.name]
                if label == _JOINT
                else _RESEARCH_TARGETS[name]
            )
            result_targets.append(
                {
                    "target": f"{problem.name} {label} ≥ {goal:g}× faster than the "
                    "baseline",
                    "met": bool(ratio >= goal) if _cpu_target(cfg) else None,
                    "measured": _x(ratio),
                    "why": "(quick run)"
                    if cfg.quick
                    else "(a CPU target; not judged here)",
                }
            )
    s = problem.size
    dtype = jnp.result_type(jax.tree.leaves(problem.params)[0]).name
    notes = [
        f"N = {s.n}, D = {s.dim}, small-world k = {s.k} (p = {s.p}), relu interaction, "
        f"batch {s.batch}, {dtype}; solves: Tsit5, t ∈ [0, {P.T1:g}], rtol {P.RTOL:g}, "
        f"atol {P.ATOL:g}; "
        "training step: loss + gradient through the solve "
        "(RecursiveCheckpointAdjoint), hopkur's solve vmapped over the batch (each "
        "sample its own steps) and, in the row after it, the joint solve "
        "(`simulate_batch(..., joint=True)`: one ODE over the batch, one step size "
        "chosen by the largest per-sample error), timed in the same rounds against "
        "the same baseline.",
        f"Device: {jax.devices()[0]} ({jax.default_backend()}, hopkur's "
        f"{_backend.paths()} paths).",
        "Vector fields agree to float rounding. Solves agree to the solver tolerance: "
        "hopkur retracts onto the spheres after each step, the baseline renormalises "
        "inside the field, so the two integrate the same ODE by slightly different "
        "schemes (the gradients differ accordingly).",
    ]
    title = {
        "kuramoto": "Research size: Kuramoto (relu, small-world graph)",
        "hopfield_kuramoto": "Research size: Hopfield–Kuramoto (network coupling)",
    }[problem.name]
    return {
        "title": title,
        "columns": [
            "workload",
            "baseline",
            "hopkur",
            "speed-up",
            "max |difference|",
            "compile (baseline / hopkur)",
            "memory (baseline / hopkur)",
        ],
        "rows": rows,
        "notes": notes,
        "targets": result_targets,
    }


def research_kuramoto(cfg: Config) -> dict:
    return _research(cfg, P.kuramoto)


def research_hopfield_kuramoto(cfg: Config) -> dict:
    return _research(cfg, P.hopfield_kuramoto)


# ---------------------------------------------------------------- arithmetic limit


def _kuramoto_field_flops(n: int, e: int, d: int) -> int:
    r"""Floating-point operations of one evaluation of the relu Kuramoto vector field
    in its least-work (per-edge) form, an FMA counted as 2: per edge the overlap
    $x_i\cdot x_j$ ($2D$), $\varphi'(s) = a + b\,\mathrm{relu}(s)$ (3) and the two
    updates $f_i \mathrel{+}= \varphi' x_j$, $f_j \mathrel{+}= \varphi' x_i$ ($4D$);
    per node the tangent projection $f - (x\cdot f)\,x$ ($4D$)."""
    return e * (6 * d + 3) + 4 * n * d


def arithmetic_limit(cfg: Config) -> dict:
    problem = P.kuramoto(cfg.pick(P.RESEARCH, P.QUICK, P.TINY))
    size = problem.size
    e = int(problem.graph["edges"].shape[0])
    p, g, ys = problem.params, problem.graph, problem.y0
    # The model built once, outside the compiled call, as a user builds it: its graph
    # operator holds the compressed rows (what a solve hoists), so the call times the
    # field alone, not the rows' construction from a traced edge list.
    model = problem.hopkur_model(p, g)

    def fast(ys):
        return jax.vmap(lambda y: model.vector_field(0.0, y, None))(ys)

    m = cfg.pick(2048, 512, 64)
    a = jnp.asarray(np.random.default_rng(0).standard_normal((m, m)), jnp.float32)
    calls = [
        T.compile_call("matmul", lambda a: a @ a, a),
        T.compile_call("field", fast, ys),
    ]
    times = T.run_interleaved(calls, cfg.repeats)
    throughput = 2 * m**3 / T.median(times["matmul"])
    flops = size.batch * _kuramoto_field_flops(size.n, e, size.dim)
    limit = flops / throughput
    ratios = [
        f / (flops / (2 * m**3 / t)) for f, t in zip(times["field"], times["matmul"])
    ]
    ratio = T.median(ratios)
    dense_flops = 4 * size.n**2 * size.dim + 4 * size.n**2
    rows = [
        {
            "quantity": f"FMA throughput: a {m}×{m} float32 matrix product",
            "value": f"{throughput / 1e9:.1f} GFLOP/s "
            f"({_ms(T.median(times['matmul']))})",
        },
        {
            "quantity": f"flops of the vector field (N = {size.n}, E = {e:,}, "
            f"D = {size.dim}, batch {size.batch}), per-edge form",
            "value": f"{flops / 1e6:.1f} MFLOP",
        },
        {
            "quantity": "arithmetic limit: flops / throughput",
            "value": _ms(limit),
        },
        {
            "quantity": "hopkur's vector field (measured)",
            "value": _ms(T.median(times["field"])),
        },
        {
            "quantity": "ratio to the limit",
            "value": f"{ratio:.1f}×",
            "_ratio": ratio,
        },
    ]
    return {
        "title": "Research-size vector field against the machine's arithmetic limit",
        "columns": ["quantity", "value"],
        "rows": rows,
        "notes": [
            "The Kuramoto research problem (relu interaction, small-world graph, "
            "float32). Flops: per edge 6D + 3 (overlap, interaction, two updates), per "
            "node 4D (tangent projection), an FMA counted as 2 — the least work of the "
            "per-edge form; the dense-masked form does about 4N²D + 4N² per sample, "
            f"{dense_flops / _kuramoto_field_flops(size.n, e, size.dim):.0f}× more. "
            "Throughput: XLA's matrix product, near the FMA units' peak, timed in the "
            "same rounds as the field. The limit ignores memory traffic and the "
            "gathers of a graph's neighbours, which a matrix product does not have. "
            "The model is built once outside the timed call, its graph's compressed "
            "rows with it (as in a solve).",
        ],
        "targets": [
            {
                "target": "vector field within 2× of the arithmetic limit",
                "met": bool(ratio <= 2.0) if _cpu_target(cfg) else None,
                "measured": f"{ratio:.1f}×",
                "why": "(quick run)"
                if cfg.quick
                else "(a CPU target; not judged here)",
            }
        ],
    }


# ------------------------------------------------------------- one network, devices

# Run in a child process: the number of (host) devices is fixed when JAX starts.
_NODE_SHARDING_SCRIPT = """
import json, sys, time
import diffrax as dfx, equinox as eqx, jax, jax.numpy as jnp, numpy as np
import hopkur, hopkur.distributed as hd
from jax.sharding import Mesh

n_dense, n_mean, d, repeats = (int(v) for v in sys.argv[1:5])
rng = np.random.default_rng(0)

def sphere(n):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))

def device0_bytes(tree):
    first = jax.devices()[0]
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    return sum(
        s.data.nbytes for leaf in leaves for s in leaf.addressable_shards
        if s.device == first
    )

def timed(f, *args):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))

w = rng.standard_normal((n_dense, n_dense)).astype(np.float32) / np.sqrt(n_dense)
dense = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.asarray((w + w.T) / 2)))
x_dense = sphere(n_dense)
field = eqx.filter_jit(lambda m, y: m.vector_field(0.0, y, None))
rows = []
for count in (1, 2, 4):
    mesh = Mesh(np.asarray(jax.devices()[:count]), ("nodes",))
    m = hd.shard_nodes(dense, n_dense, mesh)
    y = hd.shard_nodes(x_dense, n_dense, mesh)
    compiled = jax.jit(lambda m, y: m.vector_field(0.0, y, None)).lower(m, y).compile()
    memory = compiled.memory_analysis()
    temp = None if memory is None else int(memory.temp_size_in_bytes)
    rows.append({
        "devices": count, "bytes": device0_bytes((m, y)), "temp": temp,
        "seconds": timed(field, m, y),
    })

mean = hopkur.Kuramoto(hopkur.MeanFieldCoupling(2.0))
mesh = Mesh(np.asarray(jax.devices()), ("nodes",))
x_mean = hd.shard_nodes(sphere(n_mean), n_mean, mesh)
solve = eqx.filter_jit(
    lambda y: hopkur.simulate(
        mean, y, t1=0.5, dt0=0.05, stepsize_controller=dfx.ConstantStepSize()
    ).ys
)
start = time.perf_counter()
ys = jax.block_until_ready(solve(x_mean))
first = time.perf_counter() - start
seconds = timed(solve, x_mean)
r0 = float(jnp.linalg.norm(jnp.mean(x_mean, axis=0)))
r1 = float(jnp.linalg.norm(jnp.mean(ys[-1], axis=0)))
drift = float(jnp.max(jnp.abs(jnp.linalg.norm(ys[-1], axis=-1) - 1)))
print(json.dumps({
    "dense": rows,
    "mean_field": {
        "devices": len(jax.devices()), "bytes": device0_bytes(x_mean),
        "total": int(x_mean.nbytes), "seconds": seconds, "first": first,
        "r0": r0, "r1": r1, "drift": drift,
    },
}))
"""


def node_sharding(cfg: Config) -> dict:
    import os
    import subprocess
    import sys

    n_dense, n_mean = cfg.pick((8192, 10_000_000), (1024, 100_000), (64, 1000))
    d = 3
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    argv = [str(n_dense), str(n_mean), str(d), str(cfg.repeats)]
    done = subprocess.run(
        [sys.executable, "-c", _NODE_SHARDING_SCRIPT, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"node_sharding: the child failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    one = out["dense"][0]["bytes"]
    rows = []
    for r in out["dense"]:
        rows.append(
            {
                "case": f"dense Kuramoto, N = {n_dense:,}, D = {d}",
                "devices": r["devices"],
                "arrays on device 0": _mb(r["bytes"]),
                "share of one device's": f"{r['bytes'] / one:.3f}",
                "compiled temporaries per device": _mb(r["temp"]),
                "vector field": _ms(r["seconds"]),
            }
        )
    mf = out["mean_field"]
    rows.append(
        {
            "case": f"mean-field Kuramoto, N = {n_mean:,}, D = {d}: a solve of 10 "
            "fixed Tsit5 steps",
            "devices": mf["devices"],
            "arrays on device 0": _mb(mf["bytes"]),
            "share of one device's": f"{mf['bytes'] / mf['total']:.3f}",
            "compiled temporaries per device": "–",
            "vector field": f"{_ms(mf['seconds'])} (solve; first call "
            f"{_ms(mf['first'])}); R {mf['r0']:.4f} → {mf['r1']:.4f}; "
            f"|x| drift {mf['drift']:.1e}",
        }
    )
    shares = [r["bytes"] / one for r in out["dense"]]
    expected = [1 / r["devices"] for r in out["dense"]]
    falls = all(abs(s - e) <= 0.02 * e for s, e in zip(shares, expected))
    return {
        "title": "One network over several devices (`hopkur.distributed.shard_nodes`)",
        "columns": [
            "case",
            "devices",
            "arrays on device 0",
            "share of one device's",
            "compiled temporaries per device",
            "vector field",
        ],
        "rows": rows,
        "notes": [
            "4 host devices forced on the CPU (`--xla_force_host_platform_device_count"
            "=4`) in a child process; float32. The model and the state are split by "
            "node partition (`shard_nodes`): the rows of the dense couplings and the "
            "oscillators of the state, a contiguous block per device. 'Arrays on "
            "device 0' counts the bytes of the model's and the state's shards held by "
            "device 0. Host devices share the machine's cores and memory, so the times "
            "show the cost of the partitioned program, not a speed-up.",
            "The mean-field case keeps only the state per device (its coupling is one "
            "scalar); the mean over the 10⁷ oscillators is an all-reduce across the "
            "devices at every evaluation.",
        ],
        "targets": [
            {
                "target": "per-device memory of a sharded network falls as 1/devices",
                "met": falls,
                "measured": ", ".join(f"{s:.3f}" for s in shares),
                "why": "",
            }
        ],
    }


# ------------------------------------------------------------------ 4: dense limit


def dense_limit(cfg: Config) -> dict:
    n, d, batch = cfg.pick((2048, 4, 16), (512, 4, 4), (48, 3, 2))
    rng = np.random.default_rng(0)
    edges = hopkur.complete_edges(n)
    e = edges.shape[0]
    a = jnp.asarray(rng.standard_normal(e) / np.sqrt(n), jnp.float32)
    b = jnp.asarray(rng.standard_normal(e) / np.sqrt(n), jnp.float32)
    x = rng.standard_normal((batch, n, d))
    x = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), jnp.float32)
    edges = jnp.asarray(edges)

    def field(a, b, edges, xs):
        coupling = hopkur.EdgeCoupling(
            edges, hopkur.ReluInteraction(a, b), method="dense"
        )
        model = hopkur.Kuramoto(coupling)
        return jax.vmap(lambda y: model.vector_field(0.0, y, None))(xs)

    def dense_params(a, b, edges):
        return (
            _sparse.dense_symmetric(a, edges, n),
            _sparse.dense_symmetric(b, edges, n),
        )

    def field_given_dense(am, bm, xs):
        # the dense (n, n) parameters in place of the per-edge ones
        interaction = eqx.tree_at(
            lambda m: (m.a, m.b), hopkur.ReluInteraction(0.0, 0.0), (am, bm)
        )

        def one(y):
            drive = _sparse.per_sample(
                _sparse.masked_gram_drive,
                (y, interaction, None),
                batch_size=_sparse.chunk_size(n),
                batched=_sparse.masked_gram_drive_batched,
            )
            return hopkur.project_tangent(y, drive)

        return jax.vmap(one)(xs)

    def matmuls(xs):
        def one(y):
            gram = jax.lax.optimization_barrier(y @ y.T)
            return gram @ y

        return jax.lax.map(one, xs)

    am, bm = jax.jit(dense_params)(a, b, edges)
    calls = [
        T.compile_call("matmuls", matmuls, x),
        T.compile_call("field", field, a, b, edges, x),
        T.compile_call("field_given_dense", field_given_dense, am, bm, x),
        T.compile_call("scatter", dense_params, a, b, edges),
    ]
    times = T.run_interleaved(calls, cfg.repeats)
    ratio_full = T.paired_ratio(times["field"], times["matmuls"])
    ratio_dense = T.paired_ratio(times["field_given_dense"], times["matmuls"])
    rows = [
        {
            "computation": "X Xᵀ and (X Xᵀ) X alone (lax.map over the batch)",
            "time": _ms(T.median(times["matmuls"])),
            "ratio to the matrix products": "1.0×",
        },
        {
            "computation": "vector field, per-edge parameters (includes scattering "
            f"{2 * e:,} parameters into N×N matrices)",
            "time": _ms(T.median(times["field"])),
            "ratio to the matrix products": f"{ratio_full:.2f}×",
            "_ratio": ratio_full,
        },
        {
            "computation": "vector field, parameters already dense (as inside a solve: "
            "simulate scatters them once, before it)",
            "time": _ms(T.median(times["field_given_dense"])),
            "ratio to the matrix products": f"{ratio_dense:.2f}×",
            "_ratio": ratio_dense,
        },
        {
            "computation": "the parameter scatter alone",
            "time": _ms(T.median(times["scatter"])),
            "ratio to the matrix products": "–",
        },
    ]
    return {
        "title": f"Dense coupling near the limit (N = {n}, D = {d}, batch {batch})",
        "columns": ["computation", "time", "ratio to the matrix products"],
        "rows": rows,
        "notes": [
            f"`EdgeCoupling(complete_edges({n}), ReluInteraction(a, b), "
            'method="dense")`'
            f" with per-edge a, b ({e:,} edges), float32. The reference is the two "
            "products the dense form cannot avoid, with an optimisation barrier so "
            "that "
            "XLA cannot reassociate them.",
        ],
        "targets": [
            {
                # Judged per evaluation inside a solve: `simulate` scatters the
                # parameters once, before the solve (`_hoisted`; tested in
                # tests/test_fast_paths.py), so every evaluation costs the
                # dense-parameter time.
                "target": "dense vector field ≤ 2× the two matrix products",
                "met": None if cfg.quick else bool(ratio_dense <= 2.0),
                "measured": (
                    f"{ratio_dense:.2f}× per evaluation in a solve "
                    f"({ratio_full:.2f}× for one call that also scatters the "
                    "per-edge parameters)"
                ),
            },
        ],
    }


# ------------------------------------------------------------------ 5: scale


def _mean_field_model(n, d, seed=0, strength=2.0, spread=0.5):
    rng = np.random.default_rng(seed)
    generator = np.zeros((d, d))
    generator[0, 1], generator[1, 0] = -1.0, 1.0
    omega = spread * rng.standard_normal(n)[:, None, None] * generator
    model = hopkur.Kuramoto(
        hopkur.MeanFieldCoupling(jnp.float32(strength)),
        omega=jnp.asarray(omega, jnp.float32),
    )
    x = rng.standard_normal((n, d))
    x = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), jnp.float32)
    return model, x


def mean_field_scale(cfg: Config) -> dict:
    sizes = cfg.pick(
        [10**3, 10**4, 10**5, 10**6], [10**3, 10**4, 10**5], [10**2, 10**3]
    )
    big = sizes[-1]
    rows, targets = [], []
    for d in (2, 4):
        per_nd = []
        for n in sizes:
            model, x = _mean_field_model(n, d)
            params, static = eqx.partition(model, eqx.is_array)

            def field(params, x, static=static):
                return eqx.combine(params, static).vector_field(0.0, x, None)

            c = T.compile_call("field", field, params, x)
            t = T.median(T.run_interleaved([c], cfg.repeats)["field"])
            per_nd.append(t / (n * d))
            rows.append(
                {
                    "D": d,
                    "N": f"{n:,}",
                    "computation": "vector field",
                    "time": _ms(t),
                    "ns per N·D": f"{1e9 * t / (n * d):.2f}",
                    "memory": _mb(c.memory_bytes),
                }
            )
        # Linear growth: the time of the largest size over the one a decade smaller (10
        # for O(N D); 100 for O(N^2)). The smallest sizes are dominated by fixed costs.
        growth = 10 * per_nd[-1] / per_nd[-2]
        cfg.log(f"  mean field D={d}: vector fields done")
        model, x = _mean_field_model(big, d)
        params, static = eqx.partition(model, eqx.is_array)

        def solve(params, x, static=static):
            sol = hopkur.simulate(
                eqx.combine(params, static),
                x,
                t1=10.0,
                stepsize_controller=dfx.PIDController(rtol=1e-4, atol=1e-7),
                max_steps=100_000,
            )
            assert sol.ys is not None
            order = jnp.linalg.norm(jnp.mean(sol.ys[-1], axis=0))
            return order, sol.stats["num_steps"]

        c = T.compile_call("solve", solve, params, x)
        t = T.time_once(c.call)
        r, steps = c.output
        rows.append(
            {
                "D": d,
                "N": f"{big:,}",
                "computation": "solve to t = 10 (Tsit5, rtol 1e-4)",
                "time": _ms(t),
                "ns per N·D": f"{int(steps)} steps, order parameter {float(r):.3f}",
                "memory": _mb(c.memory_bytes),
            }
        )
        targets.append(
            {
                "target": f"mean-field vector field O(N·D) (D = {d}): linear growth",
                "met": None if cfg.quick else bool(growth < 20.0),
                "measured": f"×{growth:.1f} from N = {sizes[-2]:,} to {big:,} "
                "(linear: ×10, quadratic: ×100)",
            }
        )
        targets.append(
            {
                "target": f"all-to-all Kuramoto, N = {big:,}, D = {d}, integrates to "
                "t = 10 in one process",
                "met": None if cfg.quick else bool(np.isfinite(float(r))),
                "measured": f"{_ms(t)}, {int(steps)} steps",
            }
        )
    return {
        "title": "Scale: all-to-all (mean-field) Kuramoto",
        "columns": ["D", "N", "computation", "time", "ns per N·D", "memory"],
        "rows": rows,
        "notes": [
            "`Kuramoto(MeanFieldCoupling(2.0), omega=...)` with per-oscillator natural "
            "frequencies ω_i ~ N(0, 0.5²) in the first plane, float32, one state (no "
            "batch). The solve's time is one run after compilation.",
        ],
        "targets": targets,
    }


def additive_scale(cfg: Config) -> dict:
    n, d, p = cfg.pick(10**5, 10**4, 10**3), 4, 16
    rng = np.random.default_rng(0)
    patterns = jnp.asarray(rng.choice([-1.0, 1.0], size=(p, n)), jnp.float32)
    x = rng.standard_normal((n, d))
    x = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), jnp.float32)
    x_h = jnp.asarray(rng.standard_normal(n), jnp.float32)
    y = (x_h, x)

    def model_of(alpha, k):
        # The full coupled model: a Hebbian Hopfield part (P stored patterns, kept
        # factored), all-to-all mean-field Kuramoto, all-to-all additive coupling.
        one = jnp.float32(1.0)  # float32 scalars, also under jax_enable_x64
        hopfield = hopkur.HebbianHopfield(
            patterns, jnp.zeros(n, jnp.float32), hopkur.lagrangian_tanh, one
        )
        kuramoto = hopkur.Kuramoto(hopkur.MeanFieldCoupling(k))
        return hopkur.HopfieldKuramoto(
            hopfield, kuramoto, hopkur.AdditiveCoupling(alpha), one, one
        )

    # All-to-all couplings scaled by 1/N (as Kuramoto's K/N): otherwise the drive
    # grows with N and the problem becomes stiff.
    alpha, k = jnp.float32(0.3 / n), jnp.float32(1.0)

    def field(alpha, k, y):
        return model_of(alpha, k).vector_field(0.0, y, None)

    def energy(alpha, k, y):
        return model_of(alpha, k).energy(y, None)

    def solve(alpha, k, y):
        # float32 states with diffrax's times: standard promotion (for the test suite,
        # which runs with jax_enable_x64 and strict promotion).
        with jax.numpy_dtype_promotion("standard"):
            sol = hopkur.simulate(model_of(alpha, k), y, t1=1.0)
        assert sol.ys is not None
        return sol.ys[0][-1], sol.ys[1][-1], sol.stats["num_steps"]

    c1 = T.compile_call("field", field, alpha, k, y)
    c2 = T.compile_call("energy", energy, alpha, k, y)
    c3 = T.compile_call("solve", solve, alpha, k, y)
    times = T.run_interleaved([c1, c2], cfg.repeats)
    solve_times = T.run_interleaved([c3], cfg.slow_repeats)
    steps = int(np.asarray(c3.output[2]))
    drift = float(jnp.max(jnp.abs(jnp.linalg.norm(c3.output[1], axis=-1) - 1)))
    dense_bytes = n * n * 4
    rows = [
        {
            "computation": "HopfieldKuramoto vector field (x_h, X)",
            "time": _ms(T.median(times["field"])),
            "peak memory": _mb(c1.memory_bytes),
            "an N×N float32 array": _mb(dense_bytes),
        },
        {
            "computation": "HopfieldKuramoto energy",
            "time": _ms(T.median(times["energy"])),
            "peak memory": _mb(c2.memory_bytes),
            "an N×N float32 array": _mb(dense_bytes),
        },
        {
            "computation": f"simulate to t = 1 (Tsit5, {steps} steps; max |‖x_i‖ − 1| "
            f"= {drift:.1e})",
            "time": _ms(T.median(solve_times["solve"])),
            "peak memory": _mb(c3.memory_bytes),
            "an N×N float32 array": _mb(dense_bytes),
        },
    ]
    peak = max(c.memory_bytes or 0 for c in (c1, c2, c3))
    ok = all(
        c.memory_bytes is not None and c.memory_bytes < dense_bytes / 100
        for c in (c1, c2, c3)
    )
    return {
        "title": "Scale: all-to-all additive Hopfield–Kuramoto model "
        f"(N = {n:,}, D = {d}, P = {p} stored patterns)",
        "columns": ["computation", "time", "peak memory", "an N×N float32 array"],
        "rows": rows,
        "notes": [
            "The full `HopfieldKuramoto` model: a `HebbianHopfield` threshold part "
            "(W = ΞᵀΞ/N with zero diagonal, applied as Ξᵀ(Ξg)/N − diag∘g in O(NP)), "
            "all-to-all mean-field Kuramoto oscillators and the all-to-all additive "
            "coupling α(X(Xᵀg) − g): every part O(N(D + P)), no N×N array. Peak "
            "memory is XLA's account of the compiled program.",
        ],
        "targets": [
            {
                "target": f"additive all-to-all Hopfield–Kuramoto at N = {n:,} without "
                "an N×N array",
                "met": None if cfg.quick else bool(ok),
                "measured": f"peak {_mb(peak)} vs {_mb(dense_bytes)} for one N×N array",
            },
        ],
    }


# ------------------------------------------------------------------ 6: crossover


def _native_speedup(times) -> float:
    # the compiled kernels against the faster JAX formulation, paired per round
    return min(
        T.paired_ratio(times["segment"], times["native"]),
        T.paired_ratio(times["dense"], times["native"]),
    )


def crossover(cfg: Config) -> dict:
    n, d, batch, ks = cfg.pick(
        (896, 5, 100, [2, 6, 10, 16, 24, 40, 64, 150, 300, 600]),
        (128, 5, 8, [2, 8, 32, 64]),
        (32, 3, 2, [2, 8]),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n, d))
    x = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), jnp.float32)
    rows, points = [], []
    # The compiled kernels are a CPU path only.
    native = hopkur.native_kernels()[0] and _backend.cpu_paths()
    for k in ks:
        edges = jnp.asarray(hopkur.small_world_edges(jax.random.key(k), n, k, 0.1))
        e = edges.shape[0]
        a = jnp.asarray(rng.standard_normal(e), jnp.float32)
        b = jnp.asarray(rng.standard_normal(e), jnp.float32)

        def field(a, b, edges, xs, method):
            coupling = hopkur.EdgeCoupling(
                edges, hopkur.ReluInteraction(a, b), method=method
            )
            model = hopkur.Kuramoto(coupling)
            return jax.vmap(lambda y: model.vector_field(0.0, y, None))(xs)

        def compile_method(method):
            return T.compile_call(
                method, functools.partial(field, method=method), a, b, edges, x
            )

        cs = compile_method("segment")
        cd = compile_method("dense")
        cn = compile_method("native") if native else None
        calls = [cs, cd] if cn is None else [cs, cd, cn]
        times = T.run_interleaved(calls, cfg.repeats)
        ratio = T.paired_ratio(times["segment"], times["dense"])
        density = _sparse.density(e, n)
        auto = hopkur.EdgeCoupling(
            edges, hopkur.ReluInteraction(a, b)
        ).evaluation_method(n)
        points.append((density, ratio))
        rows.append(
            {
                "k": k,
                "density": f"{density:.4f}",
                "segment": _ms(T.median(times["segment"])),
                "dense": _ms(T.median(times["dense"])),
                "dense speed-up": f"{ratio:.2f}×",
                "native": _ms(T.median(times["native"])) if native else "–",
                "native vs the faster of the two": (
                    f"{_native_speedup(times):.2f}×" if native else "–"
                ),
                "auto picks": auto,
                "max |difference|": f"{P.max_difference(cs.output, cd.output):.1e}",
                "native max |difference|": (
                    "–"
                    if cn is None
                    else f"{P.max_difference(cs.output, cn.output):.1e}"
                ),
            }
        )
        cfg.log(f"  crossover k={k}: {ratio:.2f}")
    crossing = None
    for (d0, r0), (d1, r1) in zip(points, points[1:]):
        if r0 < 1.0 <= r1:
            # interpolate log-linearly in density
            t = (0.0 - math.log(r0)) / (math.log(r1) - math.log(r0))
            crossing = math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0)))
            break
    if crossing is None and points and points[0][1] >= 1.0:
        crossing = points[0][0]
    return {
        "title": "Sparse graphs: segment-sum vs dense-masked vs native "
        f"(N = {n}, D = {d}, batch {batch})",
        "columns": [
            "k",
            "density",
            "segment",
            "dense",
            "dense speed-up",
            "native",
            "native vs the faster of the two",
            "auto picks",
            "max |difference|",
            "native max |difference|",
        ],
        "rows": rows,
        "notes": [
            "Small-world graphs (p = 0.1) with k neighbours per node, relu interaction "
            "with per-edge parameters, float32. Measured crossover (dense faster from "
            f"here): density ≈ {crossing:.3g}"
            if crossing
            else "No crossover in range.",
            '`EdgeCoupling(method="auto")` uses the compiled kernels (`native`) for '
            "the closed-form interactions on CPU when they are available; otherwise "
            f"it switches from segment to dense from density {_sparse.DENSE_THRESHOLD} "
            f"(closed-form interactions) and {_sparse.DENSE_THRESHOLD_LEARNED} "
            "(MLP / user functions). Max |difference|: dense vs segment; native max "
            "|difference|: native vs segment.",
        ],
        "targets": [
            {
                "target": "EdgeCoupling chooses by density; measured crossover in the "
                "table",
                "met": None if cfg.quick else crossing is not None,
                "measured": "–"
                if crossing is None
                else f"crossover at density ≈ {crossing:.3g}",
            },
        ],
        "crossover_density": crossing,
    }


# ------------------------------------------------------------------ 7: adjoints


def adjoints(cfg: Config) -> dict:
    size = cfg.pick(
        dataclasses.replace(P.RESEARCH, batch=16),
        dataclasses.replace(P.QUICK, batch=4),
        P.TINY,
    )
    problem = P.kuramoto(size)
    p, g, ys, targets = problem.params, problem.graph, problem.y0, problem.targets
    # A field (the encoded image, scaled) breaks the rotation symmetry, so that fixed
    # points are isolated and the implicit gradient of `relax` is well defined.
    fields = 2.0 * ys

    def model_of(p, g):
        interaction = hopkur.ReluInteraction(p["a"], p["b"])
        return hopkur.EdgeCoupling(g["edges"], interaction)

    def loss_simulate(adjoint, retract=True):
        def step(p, g, ys, fields, targets):
            def loss(p):
                coupling = model_of(p, g)

                def one(y, c):
                    model = hopkur.Kuramoto(coupling, field=c)
                    sol = hopkur.simulate(
                        model,
                        y,
                        t1=P.T1,
                        stepsize_controller=P.controller(),
                        max_steps=P.MAX_STEPS,
                        adjoint=adjoint,
                        retract=retract,
                    )
                    assert sol.ys is not None
                    return sol.ys[-1]

                finals = jax.vmap(one)(ys, fields)
                return P.loss_from_finals(problem, finals, targets)

            return jax.value_and_grad(loss)(p)

        return step

    def step_relax(p, g, ys, fields, targets):
        def loss(p):
            coupling = model_of(p, g)

            def one(y, c):
                model = hopkur.Kuramoto(coupling, field=c)
                return hopkur.relax(model, y, rtol=P.RTOL, atol=P.ATOL)

            finals = jax.vmap(one)(ys, fields)
            return P.loss_from_finals(problem, finals, targets)

        return jax.value_and_grad(loss)(p)

    variants = [
        (
            "RecursiveCheckpointAdjoint (simulate, default)",
            loss_simulate(dfx.RecursiveCheckpointAdjoint()),
        ),
        # The retracting solver does not accept BacksolveAdjoint's augmented state.
        (
            "BacksolveAdjoint (simulate, retract=False)",
            loss_simulate(dfx.BacksolveAdjoint(), retract=False),
        ),
        ("ImplicitAdjoint (relax to the fixed point; LSMR solve)", step_relax),
    ]
    calls = []
    for name, fn in variants:
        cfg.log(f"  adjoints: compiling {name}")
        calls.append(T.compile_call(name, fn, p, g, ys, fields, targets))
    times = T.run_interleaved(calls, cfg.slow_repeats)
    rows = []
    for c in calls:
        loss, grads = c.output
        rows.append(
            {
                "adjoint": c.name,
                "time": _ms(T.median(times[c.name])),
                "peak memory": _mb(c.memory_bytes),
                "compile": _ms(c.compile_s),
                "loss": f"{float(loss):.4f}",
                "|gradient|": f"{_norm(grads):.3g}",
            }
        )
    s = size
    return {
        "title": f"Gradients: adjoints for one training step (N = {s.n}, D = {s.dim}, "
        f"k = {s.k}, batch {s.batch})",
        "columns": ["adjoint", "time", "peak memory", "compile", "loss", "|gradient|"],
        "rows": rows,
        "notes": [
            "The Kuramoto classifier with the encoded image also applied as a field "
            "(so that fixed points are isolated). The first two differentiate the "
            f"solve over t ∈ [0, {P.T1:g}]; the third differentiates the fixed point "
            "reached by "
            "`relax` (a different loss: the state at rest, not at t = 1).",
        ],
        "targets": [],
    }


# ------------------------------------------------------------------ 8: compile time


def compile_time(cfg: Config) -> dict:
    size = cfg.pick(P.RESEARCH, P.QUICK, P.TINY)
    rows, targets = [], []
    for make in (P.kuramoto, P.hopfield_kuramoto):
        problem = make(size)
        p, g = problem.params, problem.graph
        y_one = jax.tree.map(lambda a: a[0], problem.y0)

        traces = []

        @eqx.filter_jit
        def solve(model, y):
            traces.append(1)
            return hopkur.simulate(
                model,
                y,
                t1=P.T1,
                stepsize_controller=P.controller(),
                max_steps=P.MAX_STEPS,
            ).ys

        model = problem.hopkur_model(p, g)
        start = time.perf_counter()
        jax.block_until_ready(solve(model, y_one))
        first = time.perf_counter() - start
        steady = T.time_once(lambda: solve(model, y_one))
        new_params = jax.tree.map(lambda a: a * 1.01, p)
        jax.block_until_ready(solve(problem.hopkur_model(new_params, g), y_one))
        retraces = len(traces) - 1

        def batched(p, g, ys):
            return jax.vmap(lambda y: P.hopkur_solve(problem, p, g, y))(ys).ys

        c = T.compile_call("batched", batched, p, g, problem.y0)
        rows.append(
            {
                "model": problem.name,
                "simulate, one state: first call − steady call": _ms(first - steady),
                "simulate under vmap (batch): trace + compile": _ms(c.compile_s),
                "recompilations after new parameter values": retraces,
            }
        )
        targets.append(
            {
                "target": f"{problem.name}: compiling simulate ≤ 10 s",
                "met": None
                if cfg.quick
                else bool(max(first - steady, c.compile_s) <= 10.0),
                "measured": (
                    f"{_ms(first - steady)} (one state), {_ms(c.compile_s)} (batched)"
                ),
            }
        )
        targets.append(
            {
                "target": f"{problem.name}: new parameter values never recompile",
                "met": retraces == 0,
                "measured": f"{retraces} recompilations",
            }
        )
    return {
        "title": "Compile time of `hopkur.simulate` (research size)",
        "columns": [
            "model",
            "simulate, one state: first call − steady call",
            "simulate under vmap (batch): trace + compile",
            "recompilations after new parameter values",
        ],
        "rows": rows,
        "notes": [
            "Tsit5 with a PID controller, t ∈ [0, 1], float32; trace counter on "
            "an `eqx.filter_jit`-compiled wrapper (also checked in "
            "tests/test_fast_paths.py)."
        ],
        "targets": targets,
    }


CASES: dict[str, Callable[[Config], dict]] = {
    "research_kuramoto": research_kuramoto,
    "research_hopfield_kuramoto": research_hopfield_kuramoto,
    "dense_limit": dense_limit,
    "mean_field_scale": mean_field_scale,
    "additive_scale": additive_scale,
    "crossover": crossover,
    "adjoints": adjoints,
    "compile_time": compile_time,
    "node_sharding": node_sharding,
    "arithmetic_limit": arithmetic_limit,
}


# ------------------------------------------------------------------ reporting


def _cell(value) -> str:
    return str(value).replace("|", "\\|")


def render_table(result: dict) -> str:
    columns = result["columns"]
    header = " | ".join(_cell(c) for c in columns)
    lines = ["| " + header + " |", "|" + "---|" * len(columns)]
    for row in result["rows"]:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def render_markdown(results: dict, machine: dict) -> str:
    device = machine.get("device", {})
    on = machine["cpu"]
    if device.get("backend", "cpu") != "cpu":
        on = f"{device['device_count']} × {device['device_kind']} (host: {on})"
    out = [
        f"Measured {machine['date']} on {on} ({machine['cores']} cores), "
        f"{machine['platform']}, jax {machine['jax']}, jaxlib {machine['jaxlib']}, "
        f"Python {machine['python']}; load average at start "
        f"{machine.get('load_start')}, at end {machine.get('load_end')}. "
        f"Command: `{machine['command']}`.",
        "",
    ]
    summary = []
    for name, result in results.items():
        for t in result.get("targets", []):
            why = t.get("why", "(quick run)")
            met = {True: "met", False: "**not met**", None: why}[t["met"]]
            summary.append(f"| {_cell(t['target'])} | {_cell(t['measured'])} | {met} |")
    if summary:
        out += ["| target | measured | |", "|---|---|---|", *summary, ""]
    for name, result in results.items():
        out.append(f"### {result['title']}")
        out.append("")
        out.append(render_table(result))
        out.append("")
        for note in result.get("notes", []):
            out.append(f"- {note}")
        load = result.get("load")
        if load:
            out.append(f"- Load average during this case: {load[0]} → {load[1]}.")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
