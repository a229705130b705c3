"""The research note's MNIST-size problems, built from a fixed seed, each in two forms:
a hopkur model and the naive baseline of `baseline.py` with the same parameters.

Sizes (`RESEARCH`): N = 896 units (784 pixels + 100 extra + 10 class units), D = 5,
small-world graphs with k = 150 neighbours (rewiring probability 0.1), relu interaction,
batch 100, float32 (JAX's default). The images are synthetic (uniform random pixels):
the cost of a solve does not depend on what the pixels show, and nothing is downloaded.
"""

import dataclasses
from typing import Any

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import hopkur
from hopkur.data.encoders import encode_hopfield, encode_oscillators

from . import baseline


@dataclasses.dataclass(frozen=True)
class Size:
    n: int
    dim: int
    k: int
    batch: int
    pixels: int
    classes: int = 10
    p: float = 0.1


RESEARCH = Size(n=896, dim=5, k=150, batch=100, pixels=784)
QUICK = Size(n=128, dim=5, k=24, batch=8, pixels=100)
TINY = Size(n=40, dim=3, k=6, batch=2, pixels=20)

T1 = 1.0
RTOL, ATOL = 1e-3, 1e-6
MAX_STEPS = 4096


def controller():
    return dfx.PIDController(rtol=RTOL, atol=ATOL)


@dataclasses.dataclass
class Problem:
    """A model in both forms. `params` is what the training step differentiates (a
    pytree of float arrays) and `graph` holds the edge lists (integer arrays, passed as
    arguments rather than baked into the compiled programs as constants);
    `hopkur_model(params, graph, method)` and `baseline_field(y, params, graph)` rebuild
    the two forms; `y0` is a batch of initial states, `targets` the ±1 class targets."""

    name: str
    size: Size
    params: Any
    graph: Any
    hopkur_model: Any
    baseline_field: Any
    y0: Any
    targets: Any
    readout: Any


def _rng(seed):
    return np.random.default_rng(seed)


def _edges(seed, size):
    return np.asarray(hopkur.small_world_edges(jr.key(seed), size.n, size.k, size.p))


def _targets(rng, size, dtype):
    labels = rng.integers(0, size.classes, size.batch)
    return jnp.asarray(2.0 * np.eye(size.classes)[labels] - 1.0, dtype)


def _oscillator_states(rng, size, dtype):
    pixels = jnp.asarray(rng.random((size.batch, size.pixels)), dtype)
    extra = rng.standard_normal((size.batch, size.n - size.pixels, size.dim))
    extra = jnp.asarray(extra / np.linalg.norm(extra, axis=-1, keepdims=True), dtype)
    encode = lambda p, e: encode_oscillators(p, size.n, size.dim, fill=e)
    return jax.vmap(encode)(pixels, extra), pixels


def kuramoto(size: Size = RESEARCH, *, seed: int = 0, dtype=jnp.float32) -> Problem:
    """The oscillator classifier: Kuramoto model with a relu interaction on a
    small-world graph; read out as the last 10 oscillators' inner products with
    $e_1$."""
    rng = _rng(seed)
    edges = _edges(seed, size)
    e = edges.shape[0]
    scale = 1.0 / np.sqrt(size.k)
    params = {
        "a": jnp.asarray(scale * rng.standard_normal(e), dtype),
        "b": jnp.asarray(scale * rng.standard_normal(e), dtype),
    }
    graph = {"edges": jnp.asarray(edges)}
    x0, _ = _oscillator_states(rng, size, dtype)

    def hopkur_model(p, g, method="auto"):
        interaction = hopkur.ReluInteraction(p["a"], p["b"])
        return hopkur.Kuramoto(
            hopkur.EdgeCoupling(g["edges"], interaction, method=method)
        )

    def baseline_field(x, p, g):
        return baseline.kuramoto_field(x, g["edges"], p["a"], p["b"])

    def readout(y):
        return y[-size.classes :, 0]

    return Problem(
        "kuramoto",
        size,
        params,
        graph,
        hopkur_model,
        baseline_field,
        x0,
        _targets(rng, size, dtype),
        readout,
    )


def hopfield_kuramoto(
    size: Size = RESEARCH, *, seed: int = 0, dtype=jnp.float32
) -> Problem:
    """The coupled classifier: a Hopfield network (tanh, dense weights) coupled to the
    relu Kuramoto model through free coefficients on a second small-world graph
    (`NetworkCoupling`); read out as the last 10 threshold units."""
    rng = _rng(seed)
    k_edges = _edges(seed, size)
    c_edges = _edges(seed + 1, size)
    ek, ec = k_edges.shape[0], c_edges.shape[0]
    scale = 1.0 / np.sqrt(size.k)
    params = {
        "w": jnp.asarray(
            rng.standard_normal((size.n, size.n)) / np.sqrt(size.n), dtype
        ),
        "bias": jnp.asarray(0.1 * rng.standard_normal(size.n), dtype),
        "a": jnp.asarray(scale * rng.standard_normal(ek), dtype),
        "b": jnp.asarray(scale * rng.standard_normal(ek), dtype),
        "c": jnp.asarray(scale * rng.standard_normal(ec), dtype),
    }
    kappa_h, kappa_k = 1.0, 1.0
    graph = {"k_edges": jnp.asarray(k_edges), "c_edges": jnp.asarray(c_edges)}
    x0, pixels = _oscillator_states(rng, size, dtype)
    xh0 = jax.vmap(lambda p: encode_hopfield(p, size.n))(pixels)

    def hopkur_model(p, g, method="auto"):
        hop = hopkur.Hopfield(p["w"], p["bias"], hopkur.lagrangian_tanh)
        interaction = hopkur.ReluInteraction(p["a"], p["b"])
        edge_coupling = hopkur.EdgeCoupling(g["k_edges"], interaction, method=method)
        kur = hopkur.Kuramoto(edge_coupling)
        coupling = hopkur.NetworkCoupling(g["c_edges"], p["c"], method=method)
        return hopkur.HopfieldKuramoto(hop, kur, coupling, kappa_h, kappa_k)

    def baseline_field(y, p, g):
        return baseline.hopfield_kuramoto_field(
            y,
            p["w"],
            p["bias"],
            g["k_edges"],
            p["a"],
            p["b"],
            g["c_edges"],
            p["c"],
            kappa_h,
            kappa_k,
        )

    def readout(y):
        return y[0][-size.classes :]

    return Problem(
        "hopfield_kuramoto",
        size,
        params,
        graph,
        hopkur_model,
        baseline_field,
        (xh0, x0),
        _targets(rng, size, dtype),
        readout,
    )


# ------------------------------------------------------------------ the three workloads
#
# Each returns `(baseline, hopkur)` functions of `(params, graph, y0s, ...)`.


def vector_fields(problem: Problem, method: str = "auto"):
    """Vector fields over the batch: `(params, graph, y0s) -> fields`."""

    def base(p, g, ys):
        return jax.vmap(lambda y: problem.baseline_field(y, p, g))(ys)

    def fast(p, g, ys):
        model = problem.hopkur_model(p, g, method)
        return jax.vmap(lambda y: model.vector_field(0.0, y, None))(ys)

    return base, fast


def baseline_solve(problem, p, g, y0, adjoint=dfx.RecursiveCheckpointAdjoint()):
    term = dfx.ODETerm(lambda t, y, args: problem.baseline_field(y, args, g))
    return dfx.diffeqsolve(
        term,
        dfx.Tsit5(),
        0.0,
        T1,
        None,
        y0,
        p,
        stepsize_controller=controller(),
        max_steps=MAX_STEPS,
        adjoint=adjoint,
    )


def hopkur_solve(
    problem, p, g, y0, method="auto", adjoint=dfx.RecursiveCheckpointAdjoint()
):
    model = problem.hopkur_model(p, g, method)
    return hopkur.simulate(
        model,
        y0,
        t1=T1,
        stepsize_controller=controller(),
        max_steps=MAX_STEPS,
        adjoint=adjoint,
    )


def _final_batched(sol):
    return jax.tree.map(lambda a: a[:, -1], sol.ys)


def solves(problem: Problem, method: str = "auto"):
    """Solves over the batch: `(params, graph, y0s) -> (final states, steps)`."""

    def base(p, g, ys):
        sol = jax.vmap(lambda y: baseline_solve(problem, p, g, y))(ys)
        return _final_batched(sol), sol.stats["num_steps"]

    def fast(p, g, ys):
        sol = jax.vmap(lambda y: hopkur_solve(problem, p, g, y, method))(ys)
        return _final_batched(sol), sol.stats["num_steps"]

    return base, fast


def loss_from_finals(problem, finals, targets):
    r"""The research note's loss, $\sum_c (\ell_c - t_c)^2$, averaged over the batch."""
    predictions = jax.vmap(problem.readout)(finals)
    return jnp.mean(jnp.sum((predictions - targets) ** 2, axis=-1))


def training_steps(problem: Problem, method: str = "auto"):
    """One training step without the optimiser update: `(params, graph, y0s, targets)
    -> (loss, grads)`, the gradient taken through the solve with diffrax's default
    `RecursiveCheckpointAdjoint`."""

    def base(p, g, ys, targets):
        def loss(p):
            sol = jax.vmap(lambda y: baseline_solve(problem, p, g, y))(ys)
            return loss_from_finals(problem, _final_batched(sol), targets)

        return jax.value_and_grad(loss)(p)

    def fast(p, g, ys, targets):
        def loss(p):
            sol = jax.vmap(lambda y: hopkur_solve(problem, p, g, y, method))(ys)
            return loss_from_finals(problem, _final_batched(sol), targets)

        return jax.value_and_grad(loss)(p)

    return base, fast


def joint_training_steps(problem: Problem, method: str = "auto"):
    """As `training_steps`, with hopkur's solve of the whole batch as one ODE with a
    shared step size (`hopkur.simulate_batch(..., joint=True)`): the parameters'
    cotangents are summed over the batch at each step rather than carried per sample."""
    base, _ = training_steps(problem, method)

    def fast(p, g, ys, targets):
        def loss(p):
            model = problem.hopkur_model(p, g, method)
            sol = hopkur.simulate_batch(
                model,
                ys,
                joint=True,
                t1=T1,
                stepsize_controller=controller(),
                max_steps=MAX_STEPS,
            )
            return loss_from_finals(problem, _final_batched(sol), targets)

        return jax.value_and_grad(loss)(p)

    return base, fast


def max_difference(a, b) -> float:
    """The largest absolute difference between two pytrees of arrays."""
    leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b))
    return max(
        float(jnp.max(jnp.abs(jnp.asarray(u) - jnp.asarray(v)))) for u, v in leaves
    )


def max_magnitude(a) -> float:
    return max(float(jnp.max(jnp.abs(jnp.asarray(u)))) for u in jax.tree.leaves(a))
