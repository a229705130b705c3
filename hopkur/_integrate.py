r"""Integrating the models with diffrax: thin wrappers over `diffrax.diffeqsolve`.

Oscillator states live on spheres. The exact flow keeps $|x_i|$ constant (the tangent
projection divides by $x \cdot x$), but a numerical solver does not: its local error has
a normal component, and over long horizons the norms drift. hopkur therefore *retracts*:
[`hopkur.RetractingSolver`][] wraps any diffrax solver and maps the end point of every
step back onto the model's state manifold with `model.retract` (row normalisation of the
oscillators; the identity for threshold units). It also retracts the dense output, so
that states saved at `SaveAt(ts=...)` (which diffrax interpolates between steps) and
`Solution.evaluate` lie on the spheres too. This is the classical *projection method*
(Hairer, Lubich & Wanner, *Geometric Numerical Integration*, §IV.4): the projection
moves a state by at most the local error, so the order of the solver is unchanged, and
the error estimate that drives step-size control is left alone.

This module is long because `simulate`, `relax` and the batch helpers are one way
through diffrax: each wraps the solver in the retraction, hoists the model, runs the
same bad-input checks before the solve and the same non-finite report after it (the
"retraction" and "bad input" sections below serve all three). The bad-input checks are
the part that could stand alone, in a module of their own, if this one grows.
"""

import functools as ft
import inspect
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Bool, PRNGKeyArray, PyTree

from . import _joint, _noise
from ._custom_types import Args, RealScalarLike
from ._system import AbstractEnergySystem


# ------------------------------------------------------------------ retraction


class _Retraction(eqx.Module):
    """`model.retract` as a hashable, array-free function: the model with its arrays
    stripped (retractions depend on the structure of the state, not on parameter
    values), so that it can sit in static fields (diffrax's dense interpolation)."""

    model: Any = eqx.field(static=True)

    def __call__(self, y):
        return self.model.retract(y)


def has_retraction(model: AbstractEnergySystem) -> bool:
    """Whether `model.retract` is more than the identity."""
    return not model.retract_is_identity


def model_retraction(model: AbstractEnergySystem) -> Callable[[PyTree], PyTree]:
    """`model.retract` as a function of the state alone, for
    [`hopkur.RetractingSolver`][].

    Retractions depend on the structure of the state (which parts are oscillators),
    never on parameter values, so the model's arrays are stripped: the result is
    hashable and holds no traced values, as diffrax needs for its (static)
    interpolation class.

    **Arguments:**

    - `model`: a hopkur model.

    **Returns:**

    A callable `y -> model.retract(y)`.
    """
    return _Retraction(eqx.filter(model, eqx.is_array, inverse=True))


class _RetractedInterpolation(dfx.AbstractLocalInterpolation):
    inner: dfx.AbstractLocalInterpolation
    retract: Callable = eqx.field(static=True)

    @property
    def t0(self):  # pyright: ignore[reportIncompatibleVariableOverride]
        return self.inner.t0

    @property
    def t1(self):  # pyright: ignore[reportIncompatibleVariableOverride]
        return self.inner.t1

    def evaluate(self, t0, t1=None, left=True):
        if t1 is not None:
            y0 = self.evaluate(t0, left=left)
            y1 = self.evaluate(t1, left=left)
            return jtu.tree_map(lambda a, b: b - a, y0, y1)
        return self.retract(self.inner.evaluate(t0, left=left))


class _RetractedInterpolationFactory(eqx.Module):
    inner_cls: Callable = eqx.field(static=True)
    retract: Callable = eqx.field(static=True)

    def __call__(self, **kwargs):
        return _RetractedInterpolation(self.inner_cls(**kwargs), self.retract)


class RetractingSolver(dfx.AbstractWrappedSolver):
    r"""Wraps a diffrax solver so that every step ends on the state manifold.

    After each step of the wrapped `solver`, the new state $y_1$ is replaced by
    `retract(y_1)` (for oscillators, each row divided by its norm). Dense output is
    retracted too, so interpolated saves (`SaveAt(ts=...)`) and `Solution.evaluate` are
    on the manifold. The local error estimate is passed through unchanged, so adaptive
    step-size control behaves as for the wrapped solver; rejected steps are discarded as
    usual, so in effect only accepted steps are retracted.

    [`hopkur.simulate`][] and [`hopkur.relax`][] use it by default (`retract=True`);
    use it directly with `diffrax.diffeqsolve` as
    `RetractingSolver(diffrax.Tsit5(), hopkur.model_retraction(model))`.

    Like diffrax's own wrappers it is transparent to `isinstance` checks (it is
    adaptive exactly when the wrapped solver is).
    """

    solver: dfx.AbstractSolver
    retract: Callable = eqx.field(static=True)

    @property
    def term_structure(self):  # pyright: ignore[reportIncompatibleVariableOverride]
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return _RetractedInterpolationFactory(
            self.solver.interpolation_cls, self.retract
        )

    @property
    def term_compatible_contr_kwargs(self):  # pyright: ignore
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, y_error, dense_info, solver_state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        y1 = self.retract(y1)
        if isinstance(dense_info, dict) and "y1" in dense_info:
            dense_info = {**dense_info, "y1": y1}
        return y1, y_error, dense_info, solver_state, result

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)


RetractingSolver.__init__.__doc__ = """**Arguments:**

- `solver`: the diffrax solver to wrap, e.g. `diffrax.Tsit5()`.
- `retract`: a function `y -> y` mapping a state onto the state manifold, e.g.
  [`hopkur.model_retraction`][]`(model)`. It must not close over traced arrays (it is
  stored as a static field): use `model_retraction`, which strips the model's arrays.
"""


class _Stabilised(eqx.Module):
    """$f(t, y) + (\\operatorname{retract}(y) - y)$: the model's vector field plus a
    pull towards the state manifold that vanishes on it. Its zeros on the manifold are
    the model's fixed points, and its Jacobian there is invertible when the fixed point
    is isolated on the manifold (the model's own field is not: the flow conserves each
    $|x_i|$, so equilibria come in families through the radii)."""

    model: AbstractEnergySystem
    retract: Callable = eqx.field(static=True)

    def __call__(self, t, y, args):
        f = self.model.vector_field(t, y, args)
        r = self.retract(y)
        return jtu.tree_map(lambda fi, ri, yi: fi + (ri - yi), f, r, y)


# Adjoints that differentiate the solve with JAX's own autodiff: only they see the
# hoisted arrays as constants (they are computed without gradient). Backsolve and
# implicit adjoints take cotangents for every float array of the vector field, so
# with them the N x N arrays would become part of the adjoint state.
_HOISTING_ADJOINTS = (dfx.RecursiveCheckpointAdjoint, dfx.DirectAdjoint)


def _hoisted(model, y0, adjoint):
    """`model._hoisted(y0)` (what the vector field computes from the parameters alone,
    computed once, before the solve) with the adjoints that allow it, else `model`."""
    if isinstance(adjoint, _HOISTING_ADJOINTS):
        return model._hoisted(y0)
    return model


def _as_arrays(y0):
    return jtu.tree_map(jnp.asarray, y0)


def _check_model(call: str, model) -> None:
    if not isinstance(model, AbstractEnergySystem):
        raise ValueError(
            f"`{call}(model=...)` must be a hopkur model (an AbstractEnergySystem, "
            f"e.g. hopkur.Kuramoto); got {type(model).__name__}."
        )


# ------------------------------------------------------------------ bad input


def _all_finite(tree) -> Bool[Array, ""]:
    """Whether every floating leaf of `tree` is finite (a scalar boolean)."""
    checks = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jtu.tree_leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    return ft.reduce(operator.and_, checks, jnp.array(True))


def _nonfinite_message(call: str) -> str:
    if call == "hopkur.relax":
        return (
            "`hopkur.relax`: the solve produced non-finite (NaN or inf) states, or the "
            "vector field is non-finite at `y0`, before a steady state was reached: "
            "parameters that make the vector field non-finite, or a diverging state. "
            "Check the parameters, or inspect the trajectory with `hopkur.simulate`; "
            "`throw=False` returns the last (accepted) state instead."
        )
    return (
        f"`{call}`: the solve produced non-finite (NaN or inf) states, or the vector "
        "field is non-finite (the solver rejected nearly every step). Typical causes: "
        "a fixed step `dt0` too large for the dynamics (reduce it, or use an adaptive "
        "step-size controller), or parameters that make the vector field non-finite "
        "(check them). With `throw=False`, `sol.result` is "
        "`diffrax.RESULTS.nonfinite` and the saved states show from when."
    )


def _concrete(value) -> np.ndarray | None:
    """`value` as a NumPy array when it holds concrete values (a Python number, a NumPy
    or a JAX array outside of a transform); `None` under a transform."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        return None


def _real(value, must: Callable[[str], str]) -> float | None:
    """A concrete real scalar as a float (`None` when traced); for anything else a
    `ValueError` whose message starts with `must("a real scalar")`. Python numbers take
    a fast path: these checks run at every call."""
    if type(value) is float or type(value) is int:
        return float(value)
    a = _concrete(value)
    if a is None:
        return None
    if a.size != 1 or not np.issubdtype(a.dtype, np.number) or a.dtype == bool:
        shown = repr(a.item()) if a.size == 1 else f"an array of shape {a.shape}"
        raise ValueError(f"{must('a real scalar')}; got {shown} of dtype {a.dtype}.")
    return float(a.item())


def _argument(call: str, name: str) -> Callable[[str], str]:
    return lambda expected: f"`{call}({name}=...)` must be {expected}"


def _controller_argument(call: str, name: str) -> Callable[[str], str]:
    return lambda expected: (
        f"`{call}(stepsize_controller=...)` must have {expected} `{name}`"
    )


def _check_time(call: str, name: str, value, *, infinite_ok: bool = False) -> None:
    t = _real(value, _argument(call, name))
    if t is None:
        return
    if math.isnan(t) or (math.isinf(t) and not infinite_ok):
        expected = "finite (or +-inf with an `event`)" if infinite_ok else "finite"
        raise ValueError(f"`{call}({name}=...)` must be {expected}; got {t}.")


def _check_max_steps(call: str, max_steps, *, none_ok: bool, why: str) -> None:
    integer = isinstance(max_steps, int | np.integer) and not isinstance(
        max_steps, bool
    )
    if max_steps is None and none_ok:
        return
    if not integer or max_steps < 1:
        expected = "a positive integer" + (" or None" if none_ok else "")
        raise ValueError(
            f"`{call}(max_steps=...)` must be {expected}{why}; got {max_steps!r}."
        )


def _check_tolerances(call: str, rtol, atol, *, controller: bool = False) -> None:
    """`rtol`, `atol` finite, non-negative and not both zero: the arguments of `call`,
    or with `controller` those of its `stepsize_controller`."""
    values = []
    for name, value in (("rtol", rtol), ("atol", atol)):
        if controller:
            must, bad = _controller_argument(call, name), "a finite, non-negative"
        else:
            must, bad = _argument(call, name), "finite and non-negative"
        tol = _real(value, must)
        values.append(tol)
        if tol is not None and not (math.isfinite(tol) and tol >= 0):
            raise ValueError(f"{must(bad)}; got {tol}.")
    if values[0] == 0 and values[1] == 0:
        where = "(stepsize_controller=...)" if controller else ""
        raise ValueError(
            f"`{call}{where}` must have `rtol` or `atol` positive (with both zero "
            "every step is rejected); got rtol=0 and atol=0."
        )


def _check_controller(call: str, controller) -> None:
    # The tolerances of diffrax's PID controller, also inside
    # `diffrax.ClipStepSizeController(controller=...)`. (isinstance, not getattr: this
    # runs at every call, and a missing attribute of a Module is slow to find.)
    while isinstance(controller, dfx.ClipStepSizeController):
        controller = controller.controller
    if isinstance(controller, dfx.PIDController):
        _check_tolerances(call, controller.rtol, controller.atol, controller=True)


def _check_times(call: str, t0, t1, dt0, *, t1_infinite_ok: bool) -> None:
    _check_time(call, "t0", t0)
    _check_time(call, "t1", t1, infinite_ok=t1_infinite_ok)
    if dt0 is None:
        return
    _check_time(call, "dt0", dt0)
    step = _real(dt0, _argument(call, "dt0"))
    start = _real(t0, _argument(call, "t0"))
    end = _real(t1, _argument(call, "t1"))
    if step is None:
        return
    if step == 0:
        raise ValueError(f"`{call}(dt0=...)` must be non-zero (or None); got 0.")
    if start is not None and end is not None and (end - start) * step < 0:
        span = end - start
        expected = (
            f"{'positive' if span > 0 else 'negative'} (the solve runs towards t = "
            f"{end})"
            if math.isinf(span)
            else f"of the sign of `t1 - t0` ({span})"
        )
        raise ValueError(f"`{call}(dt0=...)` must be {expected}; got {step}.")


def _check_initial_state(
    call: str, model: AbstractEnergySystem, y0, name: str = "y0"
) -> None:
    """`y0` finite, and for oscillators of non-zero norm, when its values are concrete.
    (Under a transform the same is checked inside the solve: `_check_start`.)"""
    leaves = jtu.tree_leaves(y0)
    arrays = [a for a in map(_concrete, leaves) if a is not None]
    if len(arrays) != len(leaves):
        return
    for i, a in enumerate(arrays):
        # A finite sum is the fast path (this runs at every call); an overflowing sum
        # of finite values falls through to the exact test.
        if a.dtype.kind in "fc" and not np.isfinite(a.sum()):
            if np.isfinite(a).all():
                continue
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ValueError(
                f"`{call}({name}{_leaf_path(y0, i)}=...)` must be finite; got {bad} "
                f"NaN or infinite value(s) out of {a.size}."
            )
    # Oscillators are rows of the last axis; a row of norm zero has no point on the
    # sphere. Only a leaf with such a row can fail, so the retraction (which knows which
    # leaves are oscillators) runs only then.
    if not has_retraction(model):
        return
    if not any(a.ndim >= 2 and not a.all() and (a == 0).all(-1).any() for a in arrays):
        return
    retracted = jtu.tree_leaves(model.retract(y0))
    for i, (a, r) in enumerate(zip(arrays, retracted)):
        r = np.asarray(r)
        if a.ndim >= 2 and not np.isfinite(r).all():
            rows = np.argwhere(~np.isfinite(r).all(-1))
            raise ValueError(
                f"`{call}({name}{_leaf_path(y0, i)}=...)` must have oscillator rows of "
                f"non-zero norm (points on the spheres); got {len(rows)} zero row(s), "
                f"the first at index {tuple(int(i) for i in rows[0])}."
            )


def _leaf_path(tree, index: int) -> str:
    path, _ = jtu.tree_flatten_with_path(tree)[0][index]
    return jtu.keystr(path)


def _check_start(call: str, y0, t0, t1, *, t1_infinite_ok: bool, throw: bool):
    """The finiteness checks of `_check_times` and `_check_initial_state` on traced
    values, inside the compiled solve (one reduction over `y0`): with `throw`, an
    `equinox.EquinoxRuntimeError` before the solve starts. Returns `y0` (to be used)
    and the scalar predicate, which without `throw` makes the result
    `diffrax.RESULTS.nonfinite`. A zero oscillator row is NaN after the retraction."""
    preds = [~_all_finite(y0)]
    msgs = [
        f"`{call}(y0=...)` must be finite, with oscillator rows of non-zero norm; got "
        "a NaN or infinite value, or a zero oscillator row (NaN once retracted)."
    ]
    if eqx.is_array(t0):
        preds.append(~jnp.isfinite(t0))
        msgs.append(f"`{call}(t0=...)` must be finite; got NaN or inf.")
    if eqx.is_array(t1):
        if t1_infinite_ok:
            preds.append(jnp.isnan(t1))
            msgs.append(f"`{call}(t1=...)` must not be NaN; got NaN.")
        else:
            preds.append(~jnp.isfinite(t1))
            msgs.append(
                f"`{call}(t1=...)` must be finite (+-inf needs an `event`); got NaN "
                "or inf."
            )
    bad = ft.reduce(operator.or_, preds)
    if throw:
        index = jnp.array(0)
        for i in reversed(range(1, len(preds))):
            index = jnp.where(preds[i], i, index)
        index = jnp.where(preds[0], 0, index)
        y0 = eqx.branched_error_if(y0, bad, index, msgs)
    return y0, bad


def _saved_nonfinite(sol: dfx.Solution) -> Bool[Array, ""]:
    """Whether a state saved at a time the solve reached is not finite. (diffrax fills
    the saves it never reached with inf, times included.)"""
    if sol.ts is None or sol.ys is None:
        return jnp.array(False)
    structure = jtu.tree_structure(sol.ts)
    checks = []
    for ts, ys in zip(jtu.tree_leaves(sol.ts), structure.flatten_up_to(sol.ys)):
        reached = jnp.isfinite(ts)
        for leaf in jtu.tree_leaves(ys):
            if jnp.issubdtype(leaf.dtype, jnp.inexact) and leaf.size:
                rows = jnp.reshape(jnp.isfinite(leaf), (leaf.shape[0], -1))
                checks.append(jnp.any(reached & ~jnp.all(rows, axis=1)))
    return ft.reduce(operator.or_, checks, jnp.array(False))


# An unfinished solve that rejected at least this fraction of its steps: what a
# non-finite vector field causes (the error estimate is NaN, so every step is rejected
# and the step size collapses), unlike a stiff or long solve, whose step-size
# controller settles where about half of the steps or more are accepted.
REJECTED_FRACTION_NONFINITE = 0.9


def _report(call: str, sol: dfx.Solution, bad_start, throw: bool) -> dfx.Solution:
    """The solution with `diffrax.RESULTS.nonfinite` when the start was not finite
    (traced values), when a saved state is not finite (a fixed-step solve that blew
    up: it carries NaN or inf to the end), or when the solve ran out of steps while
    rejecting nearly all of them (`REJECTED_FRACTION_NONFINITE`): an adaptive solve
    rejects every step whose error estimate is non-finite, so NaN parameters, or a
    state beyond which the field is not finite, make it reject steps until
    `max_steps`. With `throw`, the errors of
    `diffrax.diffeqsolve(throw=True)`, with hopkur's message for a non-finite state.

    All of it is done once, after the solve: nothing is added to the solver's steps.
    """
    result = sol.result
    out_of_steps = (result == dfx.RESULTS.max_steps_reached) | (
        result == dfx.RESULTS.dt_min_reached
    )
    # Read off the solver's statistics rather than by evaluating the vector field
    # again: under `vmap` a `lax.cond` evaluates both branches, and an extra field
    # evaluation of every trajectory after the solve cost more than the solve itself.
    steps = sol.stats["num_steps"]
    rejected = sol.stats["num_rejected_steps"]
    stuck = out_of_steps & (rejected >= REJECTED_FRACTION_NONFINITE * steps)
    nonfinite = bad_start | _saved_nonfinite(sol) | stuck
    # pyright types an item of an equinox Enumeration as a Literal of the class
    # attribute rather than as the enumeration's item type that `where` takes
    nonfinite_result = dfx.RESULTS.nonfinite
    result = dfx.RESULTS.where(
        nonfinite,
        nonfinite_result,  # pyright: ignore[reportArgumentType]
        result,
    )
    sol = eqx.tree_at(lambda s: s.result, sol, result)
    if throw:
        sol = eqx.error_if(sol, nonfinite, _nonfinite_message(call))
        ok = (result == dfx.RESULTS.successful) | (result == dfx.RESULTS.event_occurred)
        sol = result.error_if(sol, ~ok)
    return sol


# ------------------------------------------------------------------ simulate


def simulate(
    model: AbstractEnergySystem,
    y0: PyTree[ArrayLike],
    args: Args = None,
    *,
    t0: RealScalarLike = 0.0,
    t1: RealScalarLike = 10.0,
    dt0: RealScalarLike | None = None,
    solver: dfx.AbstractSolver = dfx.Tsit5(),
    stepsize_controller: dfx.AbstractStepSizeController = dfx.PIDController(
        rtol=1e-6, atol=1e-8
    ),
    saveat: dfx.SaveAt = dfx.SaveAt(t1=True),
    adjoint: dfx.AbstractAdjoint = dfx.RecursiveCheckpointAdjoint(),
    event: dfx.Event | None = None,
    max_steps: int | None = 4096,
    throw: bool = True,
    progress_meter: dfx.AbstractProgressMeter = dfx.NoProgressMeter(),
    retract: bool = True,
    noise: PyTree[ArrayLike] | None = None,
    key: PRNGKeyArray | None = None,
) -> dfx.Solution:
    r"""Integrates `model` from `y0` over $[t_0, t_1]$ with `diffrax.diffeqsolve`, or
    with `noise`, the Stratonovich SDE of MODELS.md §6.

    A thin, `eqx.filter_jit`-compiled wrapper: the arguments keep `diffeqsolve`'s
    names and the diffrax `Solution` is returned unchanged (`sol.ys` has a leading axis
    of saved times). Batch it with `jax.vmap` / `eqx.filter_vmap`, or use
    [`hopkur.simulate_batch`][], which can also shard the batch over devices.

    What the vector field computes from the parameters alone — the dense forms of an
    edge coupling's per-edge parameters — is computed once, before the solve, rather
    than at every evaluation (derivatives still reach the per-edge parameters), unless
    `adjoint` is a backsolve or implicit adjoint, which would carry those arrays in
    their adjoint state.

    With `retract=True` (the default) and a model with oscillators, `solver` is wrapped
    in [`hopkur.RetractingSolver`][]: every step, and every saved or interpolated state,
    is mapped back onto the spheres, so oscillator norms stay 1 to float precision
    (measured: $\le 2\times10^{-7}$ in float32 and $\le 4\times10^{-16}$ in float64 over
    $t \in [0, 1000]$). `y0` is retracted first. For threshold units this changes
    nothing.

    **Arguments:**

    - `model`: a hopkur model ([`hopkur.Hopfield`][], [`hopkur.Kuramoto`][],
      [`hopkur.HopfieldKuramoto`][], ...).
    - `y0`: the initial state (for oscillators, unit rows).
    - `args`: passed to `model.vector_field`.
    - `t0`, `t1`: the time interval. (Keyword only arguments.)
    - `dt0`: the initial step; `None` lets diffrax choose (adaptive controllers only).
    - `solver`: a diffrax solver. Default `diffrax.Tsit5()`. When training through the
      solve, `diffrax.Tsit5(scan_kind="bounded")` gives the same numbers with one
      vector-field evaluation fewer per stage in the backward pass: measured at the
      research size, batch 100, 12–16 % off a Kuramoto training step, no change for
      the Hopfield–Kuramoto model and for Kuramoto at batch 16, and 30–40 % more
      memory (docs: Benchmarks, "Reverse mode and the Runge–Kutta stage loop").
    - `stepsize_controller`: default `diffrax.PIDController(rtol=1e-6, atol=1e-8)`.
    - `saveat`: what to save. Default the final state only.
    - `adjoint`: how to differentiate. Default `diffrax.RecursiveCheckpointAdjoint()`.
    - `event`: an optional `diffrax.Event` (e.g. to stop at a steady state).
    - `max_steps`: the step budget (finite by default).
    - `throw`: raise if the solve fails; with `False` read `sol.result` instead (see
      above).
    - `progress_meter`: e.g. `diffrax.TqdmProgressMeter()`. Default none.
    - `retract`: keep oscillators on their spheres (see above). With
      `diffrax.BacksolveAdjoint`, whose backward solve integrates an augmented state,
      pass `retract=False`.
    - `noise`: the noise amplitude $\sigma \ge 0$, a number, or a pytree with the
      structure of `y0` whose leaves (numbers, or arrays broadcastable to the state's
      leaves) give each part its own amplitude, `0` where a part has none. `None`
      (default): no noise, an ODE. See "Noise" below.
    - `key`: a `jax.random.key`, from which the Brownian path is drawn; required with
      `noise`.

    **Noise.** With `noise`, the solve integrates the Stratonovich SDE
    $dx_i = f_i(x)\,dt + \sigma P_{x_i} \circ dW_i$, $P_x = I - x x^\top$, for
    oscillators (isotropic noise in the tangent space of the sphere; at $D = 2$,
    $d\theta_i = \dots\,dt + \sigma\,dW_i$, phase diffusion $\sigma^2/2$) and
    $dx = f\,dt + \sigma\,dW$ for threshold units (additive noise: Langevin dynamics of
    the Hopfield energy). Each component has its own independent Brownian motion. The
    tangent projector is the derivative of `model.retract` at the state, so every
    model gets it without configuration. The defaults change so that a user need not
    choose: `solver` becomes `diffrax.Heun()` (converges to the Stratonovich solution,
    strong order 1/2 and weak order 1; its steps are retracted as above, so
    $|x_i| = 1$ holds to float precision), and `stepsize_controller` becomes
    `diffrax.ConstantStepSize()`, with steps of size `dt0`, which must be given. The
    Brownian increments are then drawn per step from `key` (the same key, `t0` and
    `dt0` give the same path, under `jit`, `vmap` and `grad` alike; gradients flow
    through the solve with the default adjoint). An explicitly given adaptive
    `stepsize_controller` is used with a `diffrax.VirtualBrownianTree` of tolerance
    `dt0/2` instead (about ten times slower per step). A solver passed explicitly is
    used as it is: `diffrax.Euler()` would converge to the Itô solution, a
    different SDE.

    **Returns:**

    The `diffrax.Solution`.

    **Raises:**

    - `ValueError`, before anything is compiled, for concrete bad input (Python
      numbers, NumPy arrays, JAX arrays outside of `jit`): a `t0`, `t1` or `dt0` that
      is NaN or infinite (`t1 = ±inf` is allowed with an `event`), a zero `dt0` or one
      whose sign differs from `t1 - t0`, a `max_steps` that is not a positive integer
      (or `None` with an infinite `t1`), an `rtol`/`atol` of a `diffrax.PIDController`
      (also inside `diffrax.ClipStepSizeController`) that is NaN, infinite or negative
      (or both zero), a `y0` with NaN or infinite values, an oscillator row of `y0`
      of norm zero, a `noise` that is negative, NaN or infinite or does not match the
      structure of `y0`, and `noise` without a `key` or without a `dt0`.
    - `equinox.EquinoxRuntimeError` (with `throw=True`) for the same problems of
      traced values (`y0`, `t0`, `t1` under `jit`: checked inside the solve, before it
      starts) and for a failed solve, with diffrax's message or, for a state that
      became non-finite, hopkur's.

    A solve whose state becomes NaN or infinite reports
    `sol.result == diffrax.RESULTS.nonfinite`, instead of a success with NaN states or
    "maximum number of steps": checked once, after the solve (nothing is added to the
    steps), are the saved states (at the times reached; the default `SaveAt(t1=True)`
    saves the final one), and, for a solve that ran out of steps, the vector field at
    `y0` (an adaptive controller rejects non-finite steps, so NaN parameters make it
    reject steps until `max_steps`). A fixed-step solve that blows up runs to `t1` with
    non-finite states; the saved states show from when. With `throw=False` nothing
    that depends on values raises: a traced non-finite start gives
    `diffrax.RESULTS.nonfinite` too.
    """
    call = "hopkur.simulate"
    _check_model(call, model)
    _check_times(call, t0, t1, dt0, t1_infinite_ok=event is not None)
    infinite = _is_infinite(t1)
    _check_max_steps(
        call, max_steps, none_ok=not infinite, why=_UNBOUNDED if infinite else ""
    )
    _check_controller(call, stepsize_controller)
    _check_initial_state(call, model, y0)
    _noise.check_noise(call, noise, key, dt0, y0)
    options = dict(
        t0=t0,
        t1=t1,
        dt0=dt0,
        solver=solver,
        stepsize_controller=stepsize_controller,
        saveat=saveat,
        adjoint=adjoint,
        event=event,
        max_steps=max_steps,
        throw=throw,
        progress_meter=progress_meter,
        retract=retract,
        noise=noise,
        key=key,
    )
    return _simulate(model, y0, args, **_given(options, simulate))


def _given(options: dict, function) -> dict:
    """The options that are not `function`'s defaults (the very objects):
    `eqx.filter_jit` partitions and hashes only the arguments passed, so forwarding
    the defaults would add that work to every call; the compiled function fills them
    in while tracing."""
    defaults = _keyword_defaults(function)
    return {k: v for k, v in options.items() if v is not defaults[k]}


@ft.cache
def _keyword_defaults(function) -> dict:
    # (Through `inspect`, which follows `__wrapped__`: the tests run the public
    # functions wrapped in a runtime type checker.)
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


_UNBOUNDED = (
    " when `t1` is infinite (the solve would never end if the event never fired)"
)


def _is_infinite(t) -> bool:
    if type(t) is float:
        return math.isinf(t)
    a = _concrete(t)
    return a is not None and a.size == 1 and bool(np.isinf(a))


def _retracting(solver, model, retract: bool):
    """`solver` wrapped in [`hopkur.RetractingSolver`][] for a model with oscillators
    (with `retract`), and the retraction (else `None`)."""
    if retract and has_retraction(model):
        retraction = model_retraction(model)
        return RetractingSolver(solver, retraction), retraction
    return solver, None


@eqx.filter_jit
def _simulate(model, y0, args, **options):
    given = set(options)
    options = {**_keyword_defaults(simulate), **options}
    t0, t1, dt0, event = (options[k] for k in ("t0", "t1", "dt0", "event"))
    solver, adjoint, throw = options["solver"], options["adjoint"], options["throw"]
    controller, noise = options["stepsize_controller"], options["noise"]
    call = "hopkur.simulate"
    y0 = _as_arrays(y0)
    if noise is not None:
        # the defaults of a noisy solve (see the docstring)
        if "solver" not in given:
            solver = dfx.Heun()
        if "stepsize_controller" not in given:
            controller = dfx.ConstantStepSize()
    solver, retraction = _retracting(solver, model, options["retract"])
    if retraction is not None:
        y0 = retraction(y0)
    y0, bad_start = _check_start(
        call, y0, t0, t1, t1_infinite_ok=event is not None, throw=throw
    )
    vector_field = _hoisted(model, y0, adjoint).vector_field
    terms = dfx.ODETerm(vector_field)
    if noise is not None:
        path = _noise.brownian_path(
            y0,
            options["key"],
            t0,
            t1,
            dt0,
            _noise.is_constant_step(controller),
        )
        diffusion = _noise.Diffusion(
            model_retraction(model), _noise.noise_tree(noise, y0)
        )
        terms = dfx.MultiTerm(terms, dfx.ControlTerm(diffusion, path))
    sol = dfx.diffeqsolve(
        terms,
        solver,
        t0,
        t1,
        dt0,
        y0,
        args,
        saveat=options["saveat"],
        stepsize_controller=controller,
        adjoint=adjoint,
        event=event,
        max_steps=options["max_steps"],
        # The backward solve of a backsolve adjoint raises only through diffrax.
        throw=throw and isinstance(adjoint, dfx.BacksolveAdjoint),
        progress_meter=options["progress_meter"],
    )
    return _report(call, sol, bad_start, throw)


# ------------------------------------------------------------------ relax


def _relax_message(max_steps) -> str:
    return (
        f"`hopkur.relax`: no steady state was reached within `max_steps={max_steps}` "
        "solver steps (the state may be diverging, oscillating, e.g. in a system that "
        "is not a gradient system, or converging slowly). Increase `max_steps`, loosen "
        "`rtol`/`atol`, or inspect the trajectory with `hopkur.simulate`."
    )


# States with more elements than this get a matrix-free solve in `relax`'s gradient.
_DENSE_IMPLICIT_MAX = 2048


def implicit_linear_solver(y0: PyTree[ArrayLike]) -> lx.AbstractLinearSolver:
    r"""The linear solver that [`hopkur.relax`][] uses for its implicit gradient.

    The gradient through a fixed point solves one linear system with the Jacobian
    $\partial_y F$ of the vector field at $y^*$ (size: the number of state elements
    $S$). Up to $S = 2048$ this is `lineax.AutoLinearSolver(well_posed=None)`, which
    materialises the $S\times S$ Jacobian ($S$ Jacobian-vector products) and factorises
    it: exact, and cheap at that size. Beyond, materialising costs $S$ evaluations
    of the vector field per sample (at $N = 896$, $D = 5$: 4480) and $O(S^3)$ work, so
    the solve is matrix-free: `lineax.LSMR` (diffrax presents the Jacobian with the
    saved state's leading time axis, so a solver for non-square structures is needed),
    with relative and absolute tolerances $10^{-4}$ in single and $10^{-8}$ in double
    precision.

    **Arguments:**

    - `y0`: the state (any pytree of arrays), or one of the same size and dtype.

    **Returns:**

    A `lineax.AbstractLinearSolver`, for
    `diffrax.ImplicitAdjoint(linear_solver=...)`.
    """
    leaves = jtu.tree_leaves(y0)
    size = sum(int(jnp.size(leaf)) for leaf in leaves)
    if size <= _DENSE_IMPLICIT_MAX:
        return lx.AutoLinearSolver(well_posed=None)
    single = any(jnp.result_type(leaf) == jnp.float32 for leaf in leaves)
    tol = 1e-4 if single else 1e-8
    return lx.LSMR(rtol=tol, atol=tol)


def relax(
    model: AbstractEnergySystem,
    y0: PyTree[ArrayLike],
    args: Args = None,
    *,
    solver: dfx.AbstractSolver = dfx.Tsit5(),
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt0: RealScalarLike | None = None,
    max_steps: int = 4096,
    throw: bool = True,
    adjoint: dfx.AbstractAdjoint | None = None,
    retract: bool = True,
) -> PyTree[Array]:
    r"""Integrates `model` from `y0` until it comes to rest, and returns the fixed
    point $y^*$.

    The solve stops at the first accepted step where
    $\|f(y)\| < \text{atol} + \text{rtol}\,\|y\|$ (diffrax's steady-state event, with
    $t_1 = \infty$ and a finite step budget). If that does not happen within
    `max_steps` steps, or the state becomes non-finite, it raises an
    `equinox.EquinoxRuntimeError` saying so (`throw=False` returns the last state
    instead).

    Gradients flow through the fixed point by the implicit function theorem
    (`diffrax.ImplicitAdjoint`): $\partial y^*/\partial\theta = -(\partial_y F)^{-1}
    \partial_\theta F$, independent of the path taken and of the number of steps. For
    models with oscillators the vector field is solved in the stabilised form
    $F(y) = f(y) + (\operatorname{retract}(y) - y)$, equal to $f$ on the spheres, whose
    Jacobian is invertible at any fixed point that is isolated on the spheres. (The
    plain $f$ conserves every $|x_i|$, so its fixed points come in families through the
    radii and its Jacobian is singular.)

    !!! warning

        The implicit gradient needs an isolated fixed point. A Kuramoto model without
        an external field is invariant under a common rotation of all oscillators, so
        its fixed points form continuous families and the linear solve is singular:
        break the symmetry (a field $c$, or a frozen reference oscillator) before
        differentiating.

    **Arguments:**

    - `model`: a hopkur model.
    - `y0`: the initial state.
    - `args`: passed to `model.vector_field`.
    - `solver`: a diffrax solver with an error estimate. Default `diffrax.Tsit5()`.
      (Keyword only argument, as all below.)
    - `rtol`, `atol`: tolerances of the `diffrax.PIDController` and of the
      steady-state test.
    - `dt0`: the initial step (`None`: chosen by diffrax).
    - `max_steps`: the step budget, a positive integer (with $t_1 = \infty$ an
      unlimited budget would loop forever if no steady state exists).
    - `throw`: raise if no steady state is reached or the state becomes non-finite.
    - `adjoint`: `None` (default) for `diffrax.ImplicitAdjoint` with the linear solver
      of [`hopkur.implicit_linear_solver`][] (a dense factorisation for small states,
      the matrix-free LSMR beyond `2048` elements); pass
      `diffrax.RecursiveCheckpointAdjoint()` to differentiate through the steps.
    - `retract`: keep oscillators on their spheres (see [`hopkur.simulate`][]).

    **Returns:**

    The fixed point, with the structure of `y0`.

    **Raises:**

    - `ValueError`, before anything is compiled, for concrete bad input: an `rtol` or
      `atol` that is NaN, infinite or negative (or both zero), a `dt0` that is not
      finite and positive, a `max_steps` that is not a positive integer, a `y0` with
      NaN or infinite values or an oscillator row of norm zero.
    - `equinox.EquinoxRuntimeError` (with `throw=True`) for a traced `y0` with such
      values (checked before the solve starts), for a state that became non-finite
      during the solve (see [`hopkur.simulate`][]) and when no steady state was
      reached within `max_steps`.
    """
    call = "hopkur.relax"
    _check_model(call, model)
    _check_tolerances(call, rtol, atol)
    _check_times(call, 0.0, jnp.inf, dt0, t1_infinite_ok=True)
    _check_max_steps(call, max_steps, none_ok=False, why=_RELAX_UNBOUNDED)
    _check_initial_state(call, model, y0)
    options = dict(
        solver=solver,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        max_steps=max_steps,
        throw=throw,
        adjoint=adjoint,
        retract=retract,
    )
    return _relax(model, y0, args, **_given(options, relax))


_RELAX_UNBOUNDED = (
    " (`relax` integrates towards t = inf: without a budget it would never end if no "
    "steady state is reached)"
)


@eqx.filter_jit
def _relax(model, y0, args, **options):
    options = {**_keyword_defaults(relax), **options}
    solver, adjoint, throw = options["solver"], options["adjoint"], options["throw"]
    rtol, atol, max_steps = options["rtol"], options["atol"], options["max_steps"]
    call = "hopkur.relax"
    y0 = _as_arrays(y0)
    if adjoint is None:
        adjoint = dfx.ImplicitAdjoint(linear_solver=implicit_linear_solver(y0))
    solver, retraction = _retracting(solver, model, options["retract"])
    if retraction is not None:
        y0 = retraction(y0)
        vector_field = _Stabilised(_hoisted(model, y0, adjoint), retraction)
    else:
        vector_field = _hoisted(model, y0, adjoint).vector_field
    y0, bad_start = _check_start(
        call, y0, 0.0, jnp.inf, t1_infinite_ok=True, throw=throw
    )
    sol = dfx.diffeqsolve(
        dfx.ODETerm(vector_field),
        solver,
        0.0,
        jnp.inf,
        options["dt0"],
        y0,
        args,
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        event=dfx.Event(dfx.steady_state_event()),
        adjoint=adjoint,
        max_steps=max_steps,
        throw=False,
    )
    sol = _report(call, sol, bad_start, throw=False)
    assert sol.ys is not None
    y = jtu.tree_map(lambda a: a[-1], sol.ys)
    if throw:
        nonfinite = sol.result == dfx.RESULTS.nonfinite
        reached = (sol.result == dfx.RESULTS.event_occurred) | (
            sol.result == dfx.RESULTS.successful
        )
        y = eqx.branched_error_if(
            y,
            nonfinite | ~reached,
            jnp.where(nonfinite, 0, 1),
            [_nonfinite_message(call), _relax_message(max_steps)],
        )
    return y


# ------------------------------------------------------------------ batches


def _make_mesh(devices) -> Mesh:
    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(
                "`hopkur.simulate_batch(devices=...)` must be a one-dimensional Mesh; "
                f"got axes {devices.axis_names}."
            )
        return devices
    if isinstance(devices, int):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(
                "`hopkur.simulate_batch(devices=...)` must be between 1 and the number "
                f"of devices ({len(available)}); got {devices}."
            )
        devices = available[:devices]
    if devices == "all":
        devices = jax.devices()
    if isinstance(devices, str) or not isinstance(devices, Sequence):
        raise ValueError(
            "`hopkur.simulate_batch(devices=...)` must be None, 'all', an int, a "
            f"sequence of devices or a one-dimensional Mesh; got {devices!r}."
        )
    return Mesh(np.asarray(list(devices)), ("batch",))


def _batch_size(call: str, name: str, tree) -> int:
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in tree}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"`{call}({name}=...)` must have array leaves sharing one leading batch "
            f"axis; got leading sizes {sorted(map(str, sizes))}."
        )
    size = sizes.pop()
    assert size is not None
    return size


def simulate_batch(
    model: AbstractEnergySystem,
    y0s: PyTree[ArrayLike],
    args: Args = None,
    *,
    batch_model: bool = False,
    devices: Any = None,
    joint: bool = False,
    **kwargs,
) -> dfx.Solution:
    r"""Integrates a batch of initial states (and optionally of models) at once, with
    `vmap`, optionally sharded over several devices.

    Every batch element is integrated independently, with its own adaptive steps: the
    results equal those of calling [`hopkur.simulate`][] on each element (up to
    floating-point reassociation).

    With `devices`, the batch axis is split over a one-dimensional device mesh with
    `jax.shard_map`: each device integrates its share with its own `vmap`, and no
    communication happens during the solve. The batch is padded to a multiple of the
    number of devices (with copies of its last element) and the padding is dropped
    from the result. On a CPU-only machine the same code runs over several host
    devices (`XLA_FLAGS=--xla_force_host_platform_device_count=4`, set before JAX is
    imported). Over several processes (`jax.distributed`), pass
    `devices=hopkur.distributed.global_mesh()`: every process passes the same whole
    batch and integrates its devices' share, and
    [`hopkur.distributed.gather_to_process_zero`][] collects the result (see
    [several processes](../how-to/distributed.md)).

    With `joint=True` the batch is integrated as *one* ODE whose state stacks the
    samples' states, with one shared step size (on each device, when sharded): a step
    is accepted only when every sample's error estimate is within the tolerances (the
    controller's norm, applied per sample, maximised over the batch). Every sample is
    then integrated at least as accurately as it would be alone, and in a training
    step the parameters' cotangents are summed over the batch at every step instead of
    being carried per sample through the backward pass, which makes gradients through
    large batches several times cheaper (benchmarks/README.md, research size). The
    trade-off: every sample takes the steps of the hardest one (a batch mixing stiff
    and easy samples pays the stiff one's steps for all), and `ts`, `stats` and
    `result` are the batch's, repeated per sample. With fixed steps
    (`diffrax.ConstantStepSize`) the joint and per-sample solves take the same steps
    and agree, states and gradients, up to floating-point reassociation. Not
    available with `noise` or `event` (each of which belongs to one trajectory).

    **Arguments:**

    - `model`: a hopkur model, shared by the batch; or, with `batch_model=True`, a
      model whose array leaves all carry a leading batch axis (e.g. built with
      `eqx.filter_vmap`).
    - `y0s`: initial states with a leading batch axis.
    - `args`: passed to the vector field, shared by the batch.
    - `batch_model`: whether `model` is batched too. (Keyword only argument.)
    - `devices`: `None` (no sharding), `"all"`, a number of devices, a sequence of
      devices, or a one-dimensional `jax.sharding.Mesh` (also one over the devices of
      several processes). (Keyword only argument.)
    - `joint`: integrate the batch as one ODE with a shared step size (above).
      (Keyword only argument.)
    - `**kwargs`: the keyword arguments of [`hopkur.simulate`][] (`t1`, `saveat`,
      `solver`, ...). With `noise`, `key` is split into one key per trajectory
      (`jax.random.split(key, batch)`), so every trajectory has its own independent
      Brownian path, and trajectory `b` equals `hopkur.simulate(..., key=keys[b])`.

    **Returns:**

    A `diffrax.Solution` whose arrays have a leading batch axis (e.g. `sol.ys` has shape
    `(batch, times, ...)`).
    """
    call = "hopkur.simulate_batch"
    _check_model(call, model)
    _check_initial_state(call, model, y0s, "y0s")
    y0s = _as_arrays(y0s)
    params, static = eqx.partition(model, eqx.is_array)
    batch = _batch_size(call, "y0s", jtu.tree_leaves(y0s))
    if batch_model:
        leaves = jtu.tree_leaves(params)
        models = _batch_size(call, "model", leaves) if leaves else batch
        if models != batch:
            raise ValueError(
                f"`{call}(model=...)` has a batch of {models} models for {batch} "
                "initial states; they must match."
            )

    if joint:
        _check_joint(call, kwargs)
    # One Brownian path per trajectory: the key is split over the batch.
    keys = None
    if kwargs.get("noise") is not None:
        key = kwargs.pop("key", None)
        _noise.check_noise(call, kwargs["noise"], key, kwargs.get("dt0"), y0s)
        keys = jax.random.split(_noise.typed_key(key), batch)
    kwargs = tuple(sorted(kwargs.items()))
    mode = (batch_model, joint)
    if devices is None:
        return _run_batch(params, y0s, keys, args, static, kwargs, mode, None)

    mesh = _make_mesh(devices)
    count = mesh.devices.size
    padded = -(-batch // count) * count

    def pad(a):
        if padded == batch:
            return a
        extra = jnp.repeat(a[-1:], padded - batch, axis=0)
        return jnp.concatenate([a, extra], axis=0)

    spec = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    y0s = jax.device_put(jtu.tree_map(pad, y0s), spec)
    if batch_model:
        params = jax.device_put(jtu.tree_map(pad, params), spec)
    if keys is not None:
        keys = jax.device_put(pad(keys), spec)
    out = _run_batch(params, y0s, keys, args, static, kwargs, mode, mesh)
    if padded != batch:
        arrays, rest = eqx.partition(out, eqx.is_array)
        out = eqx.combine(jtu.tree_map(lambda a: a[:batch], arrays), rest)
    return out


def _check_joint(call: str, kwargs: dict) -> None:
    for name in ("noise", "event"):
        if kwargs.get(name) is not None:
            raise ValueError(
                f"`{call}(joint=True)` cannot take `{name}`, which belongs to each "
                "trajectory on its own; use joint=False."
            )
    saveat = kwargs.get("saveat")
    if isinstance(saveat, dfx.SaveAt) and saveat.dense:
        raise ValueError(
            f"`{call}(joint=True)` cannot save a dense interpolation "
            "(`SaveAt(dense=True)`); save at `ts` instead, or use joint=False."
        )
    if "stepsize_controller" in kwargs:
        _joint.joint_controller(call, kwargs["stepsize_controller"])


def _joint_simulate(params, y0s, args, static, kwargs, batch_model):
    options = dict(kwargs)
    controller = options.pop(
        "stepsize_controller", _keyword_defaults(simulate)["stepsize_controller"]
    )
    controller = _joint.joint_controller("hopkur.simulate_batch", controller)
    system = _joint.BatchedSystem(eqx.combine(params, static), batch_model)
    sol = simulate(system, y0s, args, stepsize_controller=controller, **options)
    batch = _batch_size("hopkur.simulate_batch", "y0s", jtu.tree_leaves(y0s))
    return _joint.per_sample_solution(sol, batch)


def _batched_simulate(params, y0s, keys, args, static, kwargs, mode):
    batch_model, joint = mode
    if joint:
        return _joint_simulate(params, y0s, args, static, kwargs, batch_model)
    return _vmapped_simulate(params, y0s, keys, args, static, kwargs, batch_model)


def _vmapped_simulate(params, y0s, keys, args, static, kwargs, batch_model):
    def one(p, y0, key):
        extra = {} if key is None else {"key": key}
        return simulate(eqx.combine(p, static), y0, args, **dict(kwargs), **extra)

    in_axes = (0 if batch_model else None, 0, None if keys is None else 0)
    return eqx.filter_vmap(one, in_axes=in_axes)(params, y0s, keys)


@eqx.filter_jit
def _run_batch(params, y0s, keys, args, static, kwargs, mode, mesh):
    batch_model = mode[0]
    if mesh is None:
        return _batched_simulate(params, y0s, keys, args, static, kwargs, mode)
    # `shard_map` passes arrays only: the non-array parts of `args` are closed over,
    # and those of the solution (static fields) are recovered from the trace.
    args_arrays, args_static = eqx.partition(args, eqx.is_array)
    out_static = []

    def local(p, ys, ks, a):
        a = eqx.combine(a, args_static)
        out = _batched_simulate(p, ys, ks, a, static, kwargs, mode)
        arrays, rest = eqx.partition(out, eqx.is_array)
        out_static.append(rest)
        return arrays

    batched, replicated = PartitionSpec(mesh.axis_names[0]), PartitionSpec()
    out_arrays = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(
            batched if batch_model else replicated,
            batched,
            batched,
            replicated,
        ),
        out_specs=batched,
        check_vma=False,
    )(params, y0s, keys, args_arrays)
    return eqx.combine(out_arrays, out_static[0])
