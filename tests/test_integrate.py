"""simulate / relax: retraction onto the spheres, steady states, implicit gradients,
batches over initial states and parameters."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest

import hopkur

from .helpers import (
    ids,
    make_coupled,
    make_kuramoto_per_oscillator_omega,
    oscillator_part,
    oscillator_systems,
)


T_LONG = 1000.0


def _drift(system, y):
    x = oscillator_part(system, y)
    return float(jnp.max(jnp.abs(jnp.linalg.norm(x, axis=-1) - 1)))


def _cast(tree, dtype):
    return jax.tree.map(
        lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree
    )


def _long_solve(system, y0, dtype, **kwargs):
    """t in [0, 1000], saving 41 (interpolated) states."""
    zero = jnp.asarray(0.0, dtype)
    ts = jnp.linspace(zero, zero + T_LONG, 41)
    return hopkur.simulate(
        system,
        y0,
        t0=zero,
        t1=zero + T_LONG,
        saveat=dfx.SaveAt(ts=ts),
        stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-7),
        max_steps=100_000,
        **kwargs,
    )


def _check_on_spheres(system, sol, tol):
    assert sol.ys is not None
    assert _drift(system, sol.ys) <= tol


def test_states_stay_on_spheres_float64(getkey):
    """The hardest case: distinct natural frequencies keep everything moving."""
    system, y0 = make_kuramoto_per_oscillator_omega(getkey())
    sol = _long_solve(system, y0, jnp.float64)
    assert sol.ys is not None and sol.ys.dtype == jnp.float64
    assert int(sol.stats["num_accepted_steps"]) > 1000  # a long, many-step solve
    _check_on_spheres(system, sol, 1e-12)


def test_states_stay_on_spheres_float32(getkey, capsys):
    system, y0 = make_kuramoto_per_oscillator_omega(getkey())
    system, y0 = _cast(system, jnp.float32), _cast(y0, jnp.float32)
    sol = _long_solve(system, y0, jnp.float32, progress_meter=dfx.TqdmProgressMeter())
    assert sol.ys is not None and sol.ys.dtype == jnp.float32
    _check_on_spheres(system, sol, 1e-6)
    # The progress meter is passed through to diffeqsolve.
    assert "100.00%" in capsys.readouterr().err


@pytest.mark.slow
def test_coupled_states_stay_on_spheres(getkey):
    system, y0 = make_coupled("additive", True)(getkey())
    _check_on_spheres(system, _long_solve(system, y0, jnp.float64), 1e-12)


@pytest.mark.slow
def test_dense_output_is_retracted(getkey):
    system, y0 = make_kuramoto_per_oscillator_omega(getkey())
    sol = hopkur.simulate(system, y0, t1=20.0, saveat=dfx.SaveAt(dense=True))
    for t in (0.37, 5.55, 19.9):
        assert _drift(system, sol.evaluate(t)) <= 1e-12


@pytest.mark.slow
def test_without_retraction_norms_drift(getkey):
    """The retraction is what keeps the norms: without it the solver's error drifts."""
    system, y0 = make_kuramoto_per_oscillator_omega(getkey())
    sol = _long_solve(system, y0, jnp.float64, retract=False)
    assert _drift(system, sol.ys) > 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("make_system", oscillator_systems, ids=ids(oscillator_systems))
def test_every_oscillator_model_stays_on_spheres(make_system, dtype, getkey):
    system, y0 = make_system(getkey())
    if dtype == jnp.float32:
        system, y0 = _cast(system, dtype), _cast(y0, dtype)
    sol = _long_solve(system, y0, dtype)
    _check_on_spheres(system, sol, 1e-6 if dtype == jnp.float32 else 1e-12)


def test_retracting_solver_is_transparent():
    retraction = hopkur.model_retraction(hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0)))
    solver = hopkur.RetractingSolver(dfx.Tsit5(), retraction)
    assert isinstance(solver, dfx.AbstractAdaptiveSolver)
    assert not isinstance(
        hopkur.RetractingSolver(dfx.Euler(), retraction), dfx.AbstractAdaptiveSolver
    )
    terms = dfx.ODETerm(lambda t, y, args: y)
    assert solver.order(terms) == dfx.Tsit5().order(terms)
    x = jnp.array([[3.0, 4.0], [0.0, -2.0]])
    assert jnp.allclose(retraction(x), jnp.array([[0.6, 0.8], [0.0, -1.0]]))


def test_bounded_stage_loop_differentiates_each_stage_once():
    # The option docs/benchmarks.md describes for training: Tsit5 with a "bounded"
    # stage loop keeps each stage's inputs for the reverse pass; diffrax's default
    # stage loop ("checkpointed", `simulate`'s default) evaluates every stage's vector
    # field once more in the backward pass. Same derivative either way.
    evaluations = []

    def potential(s, p):
        jax.debug.callback(lambda: evaluations.append(1))
        return p * s * s

    n = 6
    edges = jnp.asarray(hopkur.ring_edges(n, 2))
    x0 = jnp.asarray(np.random.default_rng(0).standard_normal((n, 3)))
    x0 = x0 / jnp.linalg.norm(x0, axis=-1, keepdims=True)

    def final(p, **kwargs):
        interaction = hopkur.FunctionInteraction(potential, p)
        model = hopkur.Kuramoto(hopkur.EdgeCoupling(edges, interaction))
        sol = hopkur.simulate(
            model,
            x0,
            t1=1.0,
            dt0=0.25,
            stepsize_controller=dfx.ConstantStepSize(),
            **kwargs,
        )
        assert sol.ys is not None
        return jnp.sum(sol.ys[-1, :, 0])

    def count(f, *args):
        evaluations.clear()
        out = f(*args)
        jax.effects_barrier()
        return len(evaluations), out

    p = jnp.asarray(0.7)
    forward, _ = count(final, p)
    bounded, grad = count(
        jax.grad(lambda p: final(p, solver=dfx.Tsit5(scan_kind="bounded"))), p
    )
    default, grad_default = count(jax.grad(final), p)
    assert forward > 0
    assert bounded == 2 * forward  # the solve, then each step once more to linearise
    assert default == 3 * forward
    assert jnp.allclose(grad, grad_default, rtol=1e-12, atol=1e-14)


def test_hoisting_follows_the_adjoint():
    # Backsolve and implicit adjoints take cotangents for every float array of the
    # vector field: the hoisted N x N arrays would join their adjoint state (measured at
    # the research size with backsolve: 2.96 GiB and 30 s instead of 211 MiB and 14 s).
    from hopkur._integrate import _hoisted

    n = 8
    edges = jnp.asarray(hopkur.complete_edges(n))
    a = jnp.linspace(-1.0, 1.0, edges.shape[0])
    model = hopkur.Kuramoto(
        hopkur.EdgeCoupling(edges, hopkur.ReluInteraction(a, a), method="dense")
    )
    x = jnp.asarray(np.random.default_rng(0).standard_normal((n, 3)))
    for adjoint in (dfx.RecursiveCheckpointAdjoint(), dfx.DirectAdjoint()):
        hoisted = _hoisted(model, x, adjoint)
        assert hoisted is not model and isinstance(
            hoisted.coupling, hopkur.EdgeCoupling
        )
        assert hoisted.coupling.graph.hoisted is not None
    for adjoint in (dfx.BacksolveAdjoint(), dfx.ImplicitAdjoint()):
        assert _hoisted(model, x, adjoint) is model


def test_simulate_rejects_non_models():
    # The jaxtyping hook (tests only) may reject it first, as a TypeError.
    with pytest.raises((ValueError, TypeError), match="model"):
        hopkur.simulate(lambda t, y, args: -y, jnp.ones(3))  # pyright: ignore


# ------------------------------------------------------------------ relax


def _kuramoto_with_field(n=6, d=3, seed=0):
    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.standard_normal((n, n)))
    c = jnp.asarray(rng.standard_normal((n, d)))
    x = rng.standard_normal((n, d))
    x0 = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))
    return w, c, x0


def test_relax_gradient_matches_finite_differences():
    """Implicit gradient through the fixed point, on the spheres, against central
    differences of the relaxed state."""
    w, c, x0 = _kuramoto_with_field()
    weights = jnp.arange(x0.size, dtype=x0.dtype).reshape(x0.shape) / x0.size

    def loss(scale):
        model = hopkur.Kuramoto(hopkur.DenseCoupling(scale * w), field=c)
        y = hopkur.relax(model, x0, rtol=1e-10, atol=1e-12, max_steps=50_000)
        return jnp.sum(weights * y)

    scale = jnp.asarray(1.0)
    model = hopkur.Kuramoto(hopkur.DenseCoupling(w), field=c)
    y = hopkur.relax(model, x0, rtol=1e-10, atol=1e-12, max_steps=50_000)
    assert _drift(model, y) <= 1e-12
    assert jnp.max(jnp.abs(model.vector_field(0.0, y, None))) < 1e-8
    assert model.energy(y, None) < model.energy(x0, None)

    # diffrax 0.7.2's ImplicitAdjoint multiplies the float time by the integer solve
    # direction when it re-evaluates the vector field (diffrax/_term.py, `WrapTerm.vf`),
    # which strict promotion rejects: differentiate under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        grad = jax.grad(loss)(scale)
    eps = 1e-5
    fd = (loss(scale + eps) - loss(scale - eps)) / (2 * eps)
    assert jnp.abs(fd) > 1e-3  # a real dependence, not a trivial zero
    assert jnp.allclose(grad, fd, rtol=1e-4, atol=1e-7)


def test_implicit_linear_solver_choice_and_matrix_free_gradient():
    """Small states: a dense factorisation; large ones: matrix-free LSMR (which must
    accept diffrax's non-square presentation of the Jacobian and give the same
    gradient)."""
    small = jnp.zeros((100, 3))
    assert isinstance(hopkur.implicit_linear_solver(small), lx.AutoLinearSolver)
    big32 = (jnp.zeros((896, 5), jnp.float32), jnp.zeros(896, jnp.float32))
    solver = hopkur.implicit_linear_solver(big32)
    assert isinstance(solver, lx.LSMR) and solver.rtol == 1e-4
    solver = hopkur.implicit_linear_solver(jnp.zeros((896, 5)))
    assert isinstance(solver, lx.LSMR) and solver.rtol == 1e-8

    w, c, x0 = _kuramoto_with_field()
    weights = jnp.arange(x0.size, dtype=x0.dtype).reshape(x0.shape) / x0.size

    def grad(adjoint):
        def loss(scale):
            model = hopkur.Kuramoto(hopkur.DenseCoupling(scale * w), field=c)
            y = hopkur.relax(
                model, x0, rtol=1e-10, atol=1e-12, max_steps=50_000, adjoint=adjoint
            )
            return jnp.sum(weights * y)

        with jax.numpy_dtype_promotion("standard"):
            return jax.grad(loss)(jnp.asarray(1.0))

    dense = grad(None)
    matrix_free = grad(dfx.ImplicitAdjoint(linear_solver=lx.LSMR(1e-10, 1e-10)))
    assert jnp.abs(dense) > 1e-3
    assert jnp.allclose(matrix_free, dense, rtol=1e-6, atol=1e-9)


def test_relax_raises_a_clear_error_without_steady_state():
    """Distinct natural frequencies keep oscillators turning: no steady state."""
    rng = np.random.default_rng(1)
    n = 4
    freqs = jnp.asarray(rng.uniform(1.0, 3.0, n))
    model = hopkur.Kuramoto(
        hopkur.MeanFieldCoupling(0.1), omega=hopkur.planar_rotations(freqs)
    )
    x0 = hopkur.random_sphere((n,), 2, key=jr.key(0))
    with pytest.raises(eqx.EquinoxRuntimeError, match="no steady state was reached"):
        hopkur.relax(model, x0, max_steps=200)


# ------------------------------------------------------------------ batches
# Batches over initial states and over parameters, sharded or not, are compared with
# element-by-element solves in test_sharding.py (one subprocess, fewer compilations).


def test_simulate_batch_errors():
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    x0s = jnp.ones((3, 4, 2)) / jnp.sqrt(2.0)
    with pytest.raises(ValueError, match="devices"):
        hopkur.simulate_batch(model, x0s, devices=len(jax.devices()) + 1)
    with pytest.raises(ValueError, match="devices"):
        hopkur.simulate_batch(model, x0s, devices="some")
    models = eqx.filter_vmap(lambda k: hopkur.Kuramoto(hopkur.MeanFieldCoupling(k)))(
        jnp.ones(2)
    )
    with pytest.raises(ValueError, match="batch of 2 models for 3"):
        hopkur.simulate_batch(models, x0s, batch_model=True)
