"""Energies along trajectories and the Lyapunov report: did the energy decrease, as it
must for a gradient system, and if not, by how much and why.

`lyapunov_report` computes with JAX (compiled, on any device) and then summarises on the
host with NumPy: call it outside `jit`.
"""

import dataclasses

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from ._custom_types import Args
from ._discrete import DiscreteTrajectory
from ._system import AbstractEnergySystem


@eqx.filter_jit
def _energies(model, ys, args, axes: int):
    fn = lambda y: model.energy(y, args)
    for _ in range(axes):
        fn = jax.vmap(fn)
    return fn(ys)


def energy_along(
    model: AbstractEnergySystem,
    ys: PyTree[ArrayLike],
    args: Args = None,
    *,
    axes: int = 1,
) -> Array:
    """The energy of every state in a stack of states (e.g. `solution.ys`).

    **Arguments:**

    - `model`: the model.
    - `ys`: states with `axes` leading axes (times, or batch and times).
    - `args`: passed to `model.energy`.
    - `axes`: the number of leading axes. (Keyword only argument.)

    **Returns:**

    The energies, shape of the leading axes.
    """
    return _energies(model, jtu.tree_map(jnp.asarray, ys), args, axes)


@dataclasses.dataclass(frozen=True)
class LyapunovReport:
    """Whether the energy decreased along a trajectory (or a batch of them); made by
    [`hopkur.lyapunov_report`][]. `str(report)` is a readable summary.

    **Fields:**

    - `verdict`: `"decreasing"`, `"increased by X (not a gradient system)"`,
      `"increased by X although the model is a gradient system (...)"` or
      `"diverged (non-finite ...)"`, possibly followed by a note that the solve stopped
      early.
    - `decreasing`: whether the energy never rose by more than `tolerance` between
      consecutive saves.
    - `is_gradient_system`: whether the model's energy is a Lyapunov function for its
      parameters (`model.is_gradient_system`).
    - `max_increase`: the largest rise of the energy between consecutive saves (0 if it
      only fell), over all trajectories.
    - `max_increase_time`: the time (or step) at whose end that rise was seen, or
      `None` if the energy never rose.
    - `tolerance`: rises up to this much count as round-off.
    - `finite`: whether every energy is finite.
    - `solve_succeeded`: whether the solver reached its end (or a terminating event).
    - `energies`, `ts`: the energies and save times, shape `(times,)` or
      `(batch, times)` (unreached saves removed for a single trajectory; `nan` for a
      batch).
    """

    verdict: str
    decreasing: bool
    is_gradient_system: bool
    max_increase: float
    max_increase_time: float | None
    tolerance: float
    finite: bool
    solve_succeeded: bool
    energies: np.ndarray = dataclasses.field(repr=False)
    ts: np.ndarray = dataclasses.field(repr=False)

    def __str__(self) -> str:
        e = self.energies[np.isfinite(self.energies)]
        batch = self.energies.ndim == 2
        lines = [f"Lyapunov report: {self.verdict}"]
        if e.size:
            t = self.ts[np.isfinite(self.ts)]
            first = self.energies[..., 0]
            last = np.array(
                [
                    row[np.isfinite(row)][-1] if np.isfinite(row).any() else np.nan
                    for row in np.atleast_2d(self.energies)
                ]
            )
            span = f"t in [{t.min():.4g}, {t.max():.4g}]"
            if batch:
                lines.append(
                    f"  {self.energies.shape[0]} trajectories, {span}: mean energy "
                    f"{np.nanmean(first):.6g} -> {np.nanmean(last):.6g}"
                )
            else:
                lines.append(
                    f"  energy {float(first):.6g} -> {float(last[0]):.6g} over {span} "
                    f"({self.energies.shape[-1]} saves)"
                )
        lines.append(
            f"  largest increase between saves: {self.max_increase:.3g} "
            f"(tolerance {self.tolerance:.3g})"
        )
        lines.append(f"  gradient system: {'yes' if self.is_gradient_system else 'no'}")
        return "\n".join(lines)


def _result_ok(result) -> np.ndarray:
    ok = (result == dfx.RESULTS.successful) | (result == dfx.RESULTS.event_occurred)
    return np.asarray(ok)


def lyapunov_report(
    model: AbstractEnergySystem,
    solution: dfx.Solution | DiscreteTrajectory,
    args: Args = None,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
) -> LyapunovReport:
    r"""Checks the energy along a solution: does it decrease, as it must for a gradient
    system, and if not, by how much and why?

    The energy is evaluated at every saved state (use `SaveAt(ts=...)` or
    `SaveAt(steps=True)` for several). A rise between consecutive saves larger than
    `tolerance = atol + rtol * max|E|` is reported with its size; the verdict says
    whether the model is a gradient system (then the rise is a numerical problem: a
    too-loose solver tolerance) or not (then nothing guarantees a decrease).
    Non-finite energies give the verdict "diverged". A batched solution (from
    [`hopkur.simulate_batch`][], `sol.ts` of shape `(batch, times)`) is judged as a
    whole.

    **Arguments:**

    - `model`: the model that produced the solution.
    - `solution`: a `diffrax.Solution` from [`hopkur.simulate`][] /
      [`hopkur.simulate_batch`][], or a [`hopkur.DiscreteTrajectory`][] from
      [`hopkur.akorn_steps`][] (saved states; its "times" are step numbers).
    - `args`: passed to `model.energy`.
    - `rtol`: relative tolerance; default $\max(10^{-6}, 100\,\epsilon)$ for the
      energies' dtype. (Keyword only argument.)
    - `atol`: absolute tolerance. (Keyword only argument.)

    **Returns:**

    A [`hopkur.LyapunovReport`][].
    """
    if isinstance(solution, DiscreteTrajectory):
        energies = np.asarray(solution.energies)
        ts = np.arange(energies.shape[-1], dtype=float)
        solve_ok = np.array(True)
    elif isinstance(solution, dfx.Solution):
        if solution.ys is None or solution.ts is None:
            raise ValueError(
                "`hopkur.lyapunov_report(solution=...)` needs saved states; got a "
                "solution without `ys` (save with `diffrax.SaveAt(ts=...)`)."
            )
        ts = np.asarray(solution.ts, dtype=float)
        if ts.ndim not in (1, 2):
            raise ValueError(
                "`hopkur.lyapunov_report(solution=...)` must be one solution or a "
                f"batch of them; got save times of shape {ts.shape}."
            )
        energies = np.asarray(energy_along(model, solution.ys, args, axes=ts.ndim))
        solve_ok = _result_ok(solution.result)
    else:
        raise ValueError(
            "`hopkur.lyapunov_report(solution=...)` must be a diffrax.Solution or a "
            f"hopkur.DiscreteTrajectory; got {type(solution).__name__}."
        )
    # diffrax fills saves that were never reached with inf times.
    reached = np.isfinite(ts)
    energies = np.where(reached, energies, np.nan)
    if energies.ndim == 1:
        energies, ts = energies[reached], ts[reached]
    if energies.shape[-1] < 2:
        raise ValueError(
            "`hopkur.lyapunov_report(solution=...)` needs at least two saved states; "
            "save several, e.g. `diffrax.SaveAt(ts=jnp.linspace(t0, t1, 50))`."
        )
    eps = float(np.finfo(energies.dtype).eps)
    rtol = max(1e-6, 100 * eps) if rtol is None else rtol
    gradient = bool(np.all(np.asarray(model.is_gradient_system)))
    stored = np.asarray(reached if energies.shape == reached.shape else True)
    finite_mask = np.isfinite(energies) | ~stored
    finite = bool(np.all(finite_mask))
    good = energies[np.isfinite(energies)]
    scale = float(np.max(np.abs(good))) if good.size else 0.0
    tolerance = atol + rtol * scale
    rises = np.diff(energies, axis=-1)
    rises = np.where(np.isfinite(rises), rises, -np.inf)
    flat = np.atleast_2d(rises)
    k = int(np.argmax(flat))
    max_increase = max(float(flat.ravel()[k]), 0.0)
    times = np.atleast_2d(ts)[:, 1:]
    max_increase_time = None
    if max_increase > 0:
        max_increase_time = float(np.broadcast_to(times, flat.shape).ravel()[k])
    decreasing = max_increase <= tolerance
    if not finite:
        bad = ~finite_mask
        first_t = float(
            np.min(
                np.broadcast_to(np.atleast_2d(ts), np.atleast_2d(bad).shape)[
                    np.atleast_2d(bad)
                ]
            )
        )
        if energies.ndim == 2:
            count = int(np.sum(np.any(bad, axis=-1)))
            verdict = (
                f"diverged (non-finite energy in {count} of {energies.shape[0]} "
                f"trajectories, first at t = {first_t:.4g})"
            )
        else:
            verdict = f"diverged (non-finite energy at t = {first_t:.4g})"
        decreasing = False
    elif decreasing:
        verdict = "decreasing"
    elif not gradient:
        verdict = f"increased by {max_increase:.3g} (not a gradient system)"
    elif isinstance(solution, DiscreteTrajectory):
        verdict = (
            f"increased by {max_increase:.3g} although the model is a gradient system "
            "(the discrete step gamma is too large for descent)"
        )
    else:
        verdict = (
            f"increased by {max_increase:.3g} although the model is a gradient system "
            "(numerical error: tighten the solver's rtol/atol or shorten the step)"
        )
    solve_succeeded = bool(np.all(solve_ok))
    if not solve_succeeded:
        verdict += "; the solve stopped before t1 (see `solution.result`)"
    return LyapunovReport(
        verdict=verdict,
        decreasing=bool(decreasing),
        is_gradient_system=gradient,
        max_increase=max_increase,
        max_increase_time=max_increase_time,
        tolerance=float(tolerance),
        finite=finite,
        solve_succeeded=solve_succeeded,
        energies=energies,
        ts=ts,
    )
