"""Bad input to the library, table by table: each case is a call, the exception it must
raise and a fragment of the message. Concrete bad input (Python numbers, NumPy arrays,
JAX arrays outside of `jit`) is a `ValueError` whose message starts with the public call
and the argument in backticks; the same problems of traced values, and solves whose
state becomes non-finite, are `equinox.EquinoxRuntimeError`s (or, with `throw=False`,
`diffrax.RESULTS.nonfinite`), never a silent NaN result or "maximum number of steps".

Compiled solves are shared between cases (one jitted function per structure), so the
file runs in a few seconds.
"""

from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import hopkur


NAN, INF = float("nan"), float("inf")
N, D = 4, 3

HOPFIELD = hopkur.Hopfield(0.5 * jnp.eye(N), jnp.zeros(N), hopkur.lagrangian_tanh)
KURAMOTO = hopkur.Kuramoto(
    hopkur.DenseCoupling(jnp.ones((N, N))), field=0.1 * jnp.ones((N, D))
)
COUPLED = hopkur.HopfieldKuramoto(HOPFIELD, KURAMOTO, hopkur.AdditiveCoupling(0.1))
H0 = jnp.linspace(-1.0, 1.0, N)
X0 = hopkur.random_sphere((N,), D, key=jr.key(0))
ZERO_ROW = X0.at[2].set(0.0)
# Fixed steps: compiled fast, and the start checks do not depend on the solver.
STEPS: dict[str, Any] = dict(
    solver=dfx.Euler(), stepsize_controller=dfx.ConstantStepSize(), dt0=0.1
)
EULER: dict[str, Any] = dict(STEPS, t1=1.0)
# Adaptive steps with a two-stage solver (compiled faster than the default Tsit5,
# which one case keeps).
HEUN: dict[str, Any] = dict(solver=dfx.Heun(), t1=1.0)
# Euler with dt = 10 on x' = -x + ...: each step multiplies x by about -9.
BLOWING_UP: dict[str, Any] = dict(
    solver=dfx.Euler(),
    stepsize_controller=dfx.ConstantStepSize(),
    dt0=10.0,
    t1=1e4,
    max_steps=2000,
)


def _with(model, **arrays):
    """`model` with some arrays replaced (bypassing the constructor's checks, as a
    training step or a traced computation would)."""
    return eqx.tree_at(
        lambda m: [getattr_path(m, k) for k in arrays], model, list(arrays.values())
    )


def getattr_path(obj, path):
    for part in path.split("__"):
        obj = getattr(obj, part)
    return obj


NAN_HOPFIELD = _with(HOPFIELD, weights=jnp.full((N, N), jnp.nan))
INF_KURAMOTO = _with(KURAMOTO, field=jnp.full((N, D), jnp.inf))


@eqx.filter_jit
def jit_simulate(model, y0, **kwargs):
    """`hopkur.simulate` under a user's `jit`: every array is a tracer."""
    return hopkur.simulate(model, y0, **kwargs)


@eqx.filter_jit
def jit_relax(model, y0, **kwargs):
    return hopkur.relax(model, y0, **kwargs)


@eqx.filter_jit
def jit_normalise(x):
    return hopkur.normalise(x)


def _sim(**kwargs):
    return lambda: hopkur.simulate(HOPFIELD, H0, **kwargs)


RUNTIME = eqx.EquinoxRuntimeError
NONFINITE = "the solve produced non-finite (NaN or inf) states"

# (id, call, exception, message fragment)
CASES = [
    # ---- times
    ("t1-nan", _sim(t1=NAN), ValueError, "`hopkur.simulate(t1=...)` must be finite"),
    ("t1-inf", _sim(t1=INF), ValueError, "`hopkur.simulate(t1=...)` must be finite"),
    ("t0-inf", _sim(t0=-INF), ValueError, "`hopkur.simulate(t0=...)` must be finite"),
    ("t1-nan-array", _sim(t1=jnp.array(NAN)), ValueError, "(t1=...)` must be finite"),
    ("t0-nan-numpy", _sim(t0=np.float64(NAN)), ValueError, "(t0=...)` must be finite"),
    ("dt0-nan", _sim(dt0=NAN), ValueError, "`hopkur.simulate(dt0=...)` must be finite"),
    ("dt0-inf", _sim(dt0=INF), ValueError, "`hopkur.simulate(dt0=...)` must be finite"),
    (
        "dt0-zero",
        _sim(dt0=0.0),
        ValueError,
        "`hopkur.simulate(dt0=...)` must be non-zero",
    ),
    (
        "dt0-sign",
        _sim(dt0=-0.1),
        ValueError,
        "`hopkur.simulate(dt0=...)` must be of the sign of `t1 - t0` (10.0); got -0.1",
    ),
    (
        "t1-vector",
        _sim(t1=jnp.ones(2)),
        (ValueError, TypeError),
        "t1",
    ),
    (
        "relax-dt0-negative",
        lambda: hopkur.relax(HOPFIELD, H0, dt0=-0.1),
        ValueError,
        "`hopkur.relax(dt0=...)` must be positive",
    ),
    (
        "relax-dt0-nan",
        lambda: hopkur.relax(HOPFIELD, H0, dt0=NAN),
        ValueError,
        "`hopkur.relax(dt0=...)` must be finite",
    ),
    (
        "jit-t1-nan",
        lambda: jit_simulate(
            HOPFIELD, H0, t0=jnp.array(0.0), t1=jnp.array(NAN), **STEPS
        ),
        RUNTIME,
        "`hopkur.simulate(t1=...)` must be finite",
    ),
    (
        "jit-t0-inf",
        lambda: jit_simulate(
            HOPFIELD, H0, t0=jnp.array(-INF), t1=jnp.array(1.0), **STEPS
        ),
        RUNTIME,
        "`hopkur.simulate(t0=...)` must be finite",
    ),
    # ---- max_steps
    ("max-steps-0", _sim(max_steps=0), ValueError, "`hopkur.simulate(max_steps=...)`"),
    ("max-steps-neg", _sim(max_steps=-5), ValueError, "must be a positive integer"),
    ("max-steps-bool", _sim(max_steps=True), ValueError, "got True"),
    (
        "max-steps-none-inf",
        _sim(
            t1=INF,
            max_steps=None,
            event=dfx.Event(dfx.steady_state_event()),
            adjoint=dfx.ImplicitAdjoint(),
        ),
        ValueError,
        "when `t1` is infinite",
    ),
    (
        "relax-max-steps-0",
        lambda: hopkur.relax(HOPFIELD, H0, max_steps=0),
        ValueError,
        "`hopkur.relax(max_steps=...)` must be a positive integer",
    ),
    # ---- tolerances
    (
        "rtol-nan",
        _sim(stepsize_controller=dfx.PIDController(rtol=NAN, atol=1e-8)),
        ValueError,
        "`hopkur.simulate(stepsize_controller=...)` must have a finite, non-negative "
        "`rtol`; got nan",
    ),
    (
        "atol-negative",
        _sim(stepsize_controller=dfx.PIDController(rtol=1e-6, atol=-1.0)),
        ValueError,
        "non-negative `atol`; got -1.0",
    ),
    (
        "atol-inf",
        _sim(stepsize_controller=dfx.PIDController(rtol=1e-6, atol=INF)),
        ValueError,
        "non-negative `atol`; got inf",
    ),
    (
        "tolerances-zero",
        _sim(stepsize_controller=dfx.PIDController(rtol=0.0, atol=0.0)),
        ValueError,
        "must have `rtol` or `atol` positive",
    ),
    (
        "clipped-rtol-inf",
        _sim(
            stepsize_controller=dfx.ClipStepSizeController(
                dfx.PIDController(rtol=INF, atol=1e-8)
            )
        ),
        ValueError,
        "`hopkur.simulate(stepsize_controller=...)` must have a finite",
    ),
    (
        "relax-rtol-nan",
        lambda: hopkur.relax(HOPFIELD, H0, rtol=NAN),
        ValueError,
        "`hopkur.relax(rtol=...)` must be finite and non-negative; got nan",
    ),
    (
        "relax-atol-negative",
        lambda: hopkur.relax(HOPFIELD, H0, atol=-1e-8),
        ValueError,
        "`hopkur.relax(atol=...)` must be finite and non-negative; got -1e-08",
    ),
    # ---- initial states
    (
        "y0-nan",
        lambda: hopkur.simulate(HOPFIELD, H0.at[1].set(jnp.nan)),
        ValueError,
        "`hopkur.simulate(y0=...)` must be finite; got 1 NaN or infinite value(s) "
        "out of 4",
    ),
    (
        "y0-inf-numpy",
        lambda: hopkur.simulate(HOPFIELD, np.full(N, np.inf)),
        ValueError,
        "`hopkur.simulate(y0=...)` must be finite; got 4 NaN",
    ),
    (
        "y0-nan-fixed-step",
        lambda: hopkur.simulate(HOPFIELD, jnp.full(N, jnp.nan), **EULER),
        ValueError,
        "`hopkur.simulate(y0=...)` must be finite",
    ),
    (
        "y0-zero-oscillator",
        lambda: hopkur.simulate(KURAMOTO, ZERO_ROW),
        ValueError,
        "`hopkur.simulate(y0=...)` must have oscillator rows of non-zero norm (points "
        "on the spheres); got 1 zero row(s), the first at index (2,)",
    ),
    (
        "y0-zero-oscillator-no-retract",
        lambda: hopkur.simulate(KURAMOTO, jnp.zeros((N, D)), retract=False),
        ValueError,
        "got 4 zero row(s)",
    ),
    (
        "y0-coupled-zero-oscillator",
        lambda: hopkur.simulate(COUPLED, (H0, ZERO_ROW)),
        ValueError,
        "`hopkur.simulate(y0[1]=...)` must have oscillator rows of non-zero norm",
    ),
    (
        "y0-coupled-nan-units",
        lambda: hopkur.simulate(COUPLED, (H0.at[0].set(jnp.nan), X0)),
        ValueError,
        "`hopkur.simulate(y0[0]=...)` must be finite",
    ),
    (
        "relax-zero-oscillator",
        lambda: hopkur.relax(KURAMOTO, ZERO_ROW),
        ValueError,
        "`hopkur.relax(y0=...)` must have oscillator rows of non-zero norm",
    ),
    (
        "batch-nan",
        lambda: hopkur.simulate_batch(HOPFIELD, jnp.stack([H0, H0.at[2].set(jnp.nan)])),
        ValueError,
        "`hopkur.simulate_batch(y0s=...)` must be finite",
    ),
    (
        "jit-y0-nan",
        lambda: jit_simulate(HOPFIELD, jnp.full(N, jnp.nan), **EULER),
        RUNTIME,
        "`hopkur.simulate(y0=...)` must be finite",
    ),
    (
        "jit-y0-zero-oscillator",
        lambda: jit_simulate(KURAMOTO, ZERO_ROW, **EULER),
        RUNTIME,
        "`hopkur.simulate(y0=...)` must be finite, with oscillator rows of non-zero",
    ),
    (
        "jit-relax-y0-inf",
        lambda: jit_relax(HOPFIELD, jnp.full(N, jnp.inf), solver=dfx.Heun()),
        RUNTIME,
        "`hopkur.relax(y0=...)` must be finite",
    ),
    # ---- solves whose state becomes non-finite
    (
        "euler-blows-up",
        lambda: hopkur.simulate(HOPFIELD, H0, **BLOWING_UP),
        RUNTIME,
        "`hopkur.simulate`: " + NONFINITE,
    ),
    (
        "fixed-step-nan-parameters",
        lambda: jit_simulate(NAN_HOPFIELD, H0, **EULER),
        RUNTIME,
        "`hopkur.simulate`: " + NONFINITE,
    ),
    (
        "adaptive-nan-parameters",
        lambda: jit_simulate(NAN_HOPFIELD, H0),
        RUNTIME,
        "`hopkur.simulate`: " + NONFINITE,
    ),
    (
        "adaptive-inf-field",
        lambda: jit_simulate(INF_KURAMOTO, X0, **HEUN),
        RUNTIME,
        "`hopkur.simulate`: " + NONFINITE,
    ),
    (
        "relax-nan-parameters",
        lambda: jit_relax(NAN_HOPFIELD, H0, solver=dfx.Heun()),
        RUNTIME,
        "`hopkur.relax`: " + NONFINITE,
    ),
    # ---- normalise and random_sphere
    (
        "normalise-zero",
        lambda: hopkur.normalise(jnp.zeros((2, 3))),
        ValueError,
        "`hopkur.normalise(x=...)` must have rows of non-zero norm; got 2 zero row(s) "
        "out of 2",
    ),
    (
        "normalise-one-zero-row",
        lambda: hopkur.normalise(ZERO_ROW),
        ValueError,
        "got 1 zero row(s) out of 4 (the first at index (2,))",
    ),
    (
        "normalise-zero-vector",
        lambda: hopkur.normalise(np.zeros(3)),
        ValueError,
        "`hopkur.normalise(x=...)` must have rows of non-zero norm; got 1 zero row(s)",
    ),
    (
        "normalise-empty-rows",
        lambda: hopkur.normalise(jnp.ones((3, 0))),
        ValueError,
        "`hopkur.normalise(x=...)` must have rows of non-zero norm",
    ),
    (
        "jit-normalise-zero",
        lambda: jit_normalise(ZERO_ROW),
        RUNTIME,
        "`hopkur.normalise(x=...)` must have rows of non-zero norm; got a row of "
        "norm 0",
    ),
    (
        "random-sphere-d1",
        lambda: hopkur.random_sphere((3,), 1, key=jr.key(0)),
        ValueError,
        "`hopkur.random_sphere(dim=...)` must be an integer >= 2",
    ),
    (
        "random-sphere-d0",
        lambda: hopkur.random_sphere((3,), 0, key=jr.key(0)),
        ValueError,
        "; got 0.",
    ),
    (
        "random-sphere-negative",
        lambda: hopkur.random_sphere((3,), -2, key=jr.key(0)),
        ValueError,
        "; got -2.",
    ),
    (
        "random-sphere-bool",
        lambda: hopkur.random_sphere((3,), True, key=jr.key(0)),
        ValueError,
        "; got True.",
    ),
    (
        "random-sphere-shape",
        lambda: hopkur.random_sphere((-1,), 3, key=jr.key(0)),
        ValueError,
        "`hopkur.random_sphere(shape=...)` must be a tuple of non-negative integers",
    ),
]


@pytest.mark.parametrize(
    "call, error, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert fragment in message
    if info.type is ValueError:
        # STYLE §2.7: the public call and the argument in backticks, then what was
        # expected and what was received.
        assert message.startswith("`hopkur.")
        assert "; got " in message
    if error is RUNTIME:
        assert "maximum number of solver steps" not in message


# ------------------------------------------------------------------ throw=False


def _result(sol):
    return sol.result


# (id, call, expected result, last saved state finite)
NO_THROW = [
    (
        "healthy",
        lambda: jit_simulate(HOPFIELD, H0, throw=False, **HEUN),
        "successful",
        True,
    ),
    (
        "max-steps-stays-max-steps",
        lambda: jit_simulate(HOPFIELD, H0, max_steps=2, throw=False, **EULER),
        "max_steps_reached",
        True,
    ),
    (
        "euler-blows-up",
        lambda: hopkur.simulate(HOPFIELD, H0, throw=False, **BLOWING_UP),
        "nonfinite",
        False,
    ),
    (
        "fixed-step-nan-start",
        lambda: jit_simulate(HOPFIELD, jnp.full(N, jnp.nan), throw=False, **EULER),
        "nonfinite",
        False,
    ),
    (
        "adaptive-nan-parameters",
        lambda: jit_simulate(NAN_HOPFIELD, H0, throw=False, **HEUN),
        "nonfinite",
        True,  # every step rejected: the last saved state is `y0`
    ),
    (
        "jit-t1-nan",
        lambda: jit_simulate(
            HOPFIELD, H0, t0=jnp.array(0.0), t1=jnp.array(NAN), throw=False, **STEPS
        ),
        "nonfinite",
        True,
    ),
    (
        "jit-zero-oscillator",
        lambda: jit_simulate(KURAMOTO, ZERO_ROW, throw=False, **EULER),
        "nonfinite",
        False,
    ),
]


@pytest.mark.parametrize(
    "call, expected, finite", [c[1:] for c in NO_THROW], ids=[c[0] for c in NO_THROW]
)
def test_throw_false_reports_through_result(call, expected, finite):
    sol = call()
    assert sol.result == getattr(dfx.RESULTS, expected)
    assert sol.ys is not None
    last = jax.tree.map(lambda a: a[-1], sol.ys)
    assert bool(jnp.all(jnp.isfinite(last))) == finite


def test_rejecting_every_step_is_non_finite_but_running_out_of_steps_is_not():
    # NaN parameters reach the solve only under a transform (concrete ones are refused
    # at construction): every step's error estimate is NaN, so every step is rejected.
    @jax.jit
    def solve(bias):
        model = hopkur.Hopfield(jnp.zeros((3, 3)), bias, hopkur.lagrangian_tanh)
        return hopkur.simulate(model, jnp.zeros(3), t1=1.0, throw=False)

    sol = solve(jnp.array([NAN, 0.0, 0.0]))
    assert sol.result == dfx.RESULTS.nonfinite
    assert int(sol.stats["num_accepted_steps"]) == 0
    # A solve that only runs out of steps (most of them accepted) still says so.
    slow = hopkur.Hopfield(jnp.zeros((3, 3)), jnp.ones(3), hopkur.lagrangian_tanh)
    sol = hopkur.simulate(slow, jnp.zeros(3), t1=1e6, max_steps=20, throw=False)
    assert sol.result == dfx.RESULTS.max_steps_reached


def test_saved_states_show_when_a_solve_blew_up():
    """Checked after the solve: a fixed-step blow-up runs on to `t1`, and the saved
    states are finite up to the blow-up, non-finite from then on."""
    ts = jnp.linspace(0.0, 1e4, 11)
    sol = hopkur.simulate(
        HOPFIELD, H0, throw=False, saveat=dfx.SaveAt(ts=ts), **BLOWING_UP
    )
    assert sol.result == dfx.RESULTS.nonfinite and sol.ys is not None
    finite = np.asarray(jnp.all(jnp.isfinite(sol.ys), axis=1))
    assert finite[0] and not finite[-1]
    assert np.all(np.diff(finite.astype(int)) <= 0)  # finite, then non-finite


def test_concrete_bad_input_raises_also_without_throw():
    with pytest.raises(ValueError, match=r"`hopkur.simulate\(y0=...\)`"):
        hopkur.simulate(HOPFIELD, jnp.full(N, jnp.nan), throw=False)
    with pytest.raises(ValueError, match=r"`hopkur.simulate\(t1=...\)`"):
        hopkur.simulate(HOPFIELD, H0, t1=NAN, throw=False)


def test_relax_without_throw_returns_the_last_state():
    # NaN parameters: every step is rejected, so the last accepted state is `y0`.
    y = jit_relax(NAN_HOPFIELD, H0, throw=False, solver=dfx.Heun())
    assert jnp.array_equal(y, H0)


def test_one_bad_batch_element_is_reported_alone():
    y0s = jnp.stack([H0, jnp.full(N, jnp.nan), -H0])
    sols = eqx.filter_vmap(lambda y: jit_simulate(HOPFIELD, y, throw=False, **EULER))(
        y0s
    )
    ok = np.asarray(sols.result == dfx.RESULTS.successful)
    bad = np.asarray(sols.result == dfx.RESULTS.nonfinite)
    assert ok.tolist() == [True, False, True] and bad.tolist() == [False, True, False]


class _Kinked(hopkur.AbstractEnergySystem):
    """$\\dot y = \\sqrt{1.5 - y}\\,(1 - y)$: NaN beyond $y = 1.5$, which a too large
    first step overshoots; the solve recovers with smaller steps."""

    def vector_field(self, t, y, args):
        return jnp.sqrt(1.5 - y) * (1.0 - y)

    def energy(self, y, args):
        return jnp.sum(y)

    @property
    def is_gradient_system(self):
        return jnp.array(False)

    def _hoisted(self, y):
        return self

    def retract(self, y):
        return y

    @property
    def retract_is_identity(self):
        return True


def test_recoverable_non_finite_candidates_are_not_an_error():
    sol = hopkur.simulate(
        _Kinked(),
        jnp.array([-10.0]),
        dt0=1.0,
        t1=20.0,
        solver=dfx.Heun(),
        stepsize_controller=dfx.PIDController(rtol=1e-4, atol=1e-6),
    )
    assert sol.result == dfx.RESULTS.successful
    assert sol.stats["num_rejected_steps"] > 0
    assert sol.ys is not None and jnp.allclose(sol.ys[-1], 1.0, atol=1e-3)


def test_normalise_gradient_is_unchanged_by_the_check():
    # (Gradients through the checked `simulate` and `relax`: tests/test_transforms.py.)
    def plain(x):
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    x = X0 + 0.1
    grad = jax.grad(lambda x: jnp.sum(hopkur.normalise(x)[:, 0]))(x)
    assert jnp.allclose(grad, jax.grad(lambda x: jnp.sum(plain(x)[:, 0]))(x))


# ------------------------------------------------------------------ integer weights

# Integer or boolean parameters are converted to the default floating dtype (float64
# here: the tests run with x64), so that they are trained and work under strict dtype
# promotion (on in the tests).
INTEGER = [
    (
        "hopfield",
        lambda: hopkur.Hopfield(
            jnp.eye(N, dtype=int), np.zeros(N, int), hopkur.lagrangian_tanh
        ),
        ("weights", "bias"),
    ),
    (
        "hebbian",
        lambda: hopkur.HebbianHopfield(
            jnp.array([[1, -1, 1, -1]]), jnp.zeros(N, int), hopkur.lagrangian_tanh, 2
        ),
        ("patterns", "bias", "strength"),
    ),
    (
        "layered",
        lambda: hopkur.LayeredHopfield(
            [jnp.ones((2, N), int)],
            [jnp.zeros(N, int), jnp.zeros(2, int)],
            hopkur.lagrangian_tanh,
        ),
        ("weights__0", "biases__1"),
    ),
    ("dense", lambda: hopkur.DenseCoupling(jnp.ones((N, N), int)), ("weights",)),
    ("dense-bool", lambda: hopkur.DenseCoupling(jnp.ones((N, N), bool)), ("weights",)),
    ("mean-field", lambda: hopkur.MeanFieldCoupling(2), ("strength",)),
    ("block", lambda: hopkur.BlockCoupling(jnp.ones((N, N, D, D), int)), ("blocks",)),
    (
        "kuramoto",
        lambda: hopkur.Kuramoto(
            hopkur.MeanFieldCoupling(1.0),
            field=np.ones((N, D), int),
            omega=jnp.zeros((D, D), int),
        ),
        ("field", "omega"),
    ),
    (
        "coupled",
        lambda: hopkur.HopfieldKuramoto(
            HOPFIELD, KURAMOTO, hopkur.AdditiveCoupling(0.1), kappa_h=2, kappa_k=1
        ),
        ("kappa_h", "kappa_k"),
    ),
]


def _leaf(model, path):
    obj = model
    for part in path.split("__"):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


@pytest.mark.parametrize(
    "build, fields", [c[1:] for c in INTEGER], ids=[c[0] for c in INTEGER]
)
def test_integer_parameters_become_floats(build, fields):
    model = build()
    for path in fields:
        assert _leaf(model, path).dtype == jnp.result_type(float), path


def test_integer_weights_simulate_under_strict_promotion():
    hopfield = hopkur.Hopfield(
        jnp.eye(N, dtype=int), np.zeros(N, int), hopkur.lagrangian_tanh
    )
    kuramoto = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.ones((N, N), int)))
    for model, y0 in ((hopfield, H0), (kuramoto, X0)):
        sol = jit_simulate(model, y0, **EULER)
        assert sol.ys is not None and bool(jnp.all(jnp.isfinite(sol.ys)))
        # Trainable: the weights are inexact arrays, so they get a gradient.
        assert eqx.filter(model, eqx.is_inexact_array) is not None
        assert len(jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))) >= 1
