r"""Analysis of energy-based dynamics: Lyapunov checks, synchrony, fixed points and
their stability, memory retrieval and capacity, and the classical Kuramoto theory.

The functions that return reports (`lyapunov_report`, `find_fixed_points`,
`fixed_point_spectrum`, `capacity_sweep`) compute with JAX (compiled, on any device) and
then summarise on the host with NumPy: call them outside `jit`.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import lineax as lx
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ._custom_types import Args
from ._discrete import DiscreteTrajectory
from ._hopfield import Hopfield
from ._integrate import _Stabilised, has_retraction, model_retraction, relax
from ._lagrangians import lagrangian_tanh
from ._system import AbstractEnergySystem
from .data.patterns import corrupt, hebbian_weights as hebbian_weights


# ------------------------------------------------------------------ synchrony


def order_parameter(x: Float[ArrayLike, "*batch n d"]) -> Float[Array, "*batch"]:
    r"""The generalised Kuramoto order parameter $R = \|\frac1N \sum_i x_i\|$.

    $R \in [0, 1]$ for unit oscillators: 1 when all coincide, about $N^{-1/2}$ for
    independent uniform ones. For $D = 2$ it is Kuramoto's $r$. Works for any $D$ and
    any leading axes (times, batch).

    **Arguments:**

    - `x`: oscillator states, shape `(..., N, D)`. For a
      [`hopkur.HopfieldKuramoto`][] state `(x_h, x)` pass `x`.

    **Returns:**

    $R$, shape `(...)`.
    """
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            "`hopkur.order_parameter(x=...)` must have shape (..., N, D); got "
            f"{x.shape}."
        )
    return jnp.linalg.norm(jnp.mean(x, axis=-2), axis=-1)


def lorentzian_frequencies(
    n: int, gamma: float, *, max_abs: float | None = None
) -> np.ndarray:
    r"""$n$ deterministic natural frequencies with a Lorentzian (Cauchy) distribution of
    half width $\gamma$: the midpoint quantiles
    $\omega_i = \gamma \tan\big(\pi(\tfrac{i + 1/2}{n} - \tfrac12)\big)$.

    Quantiles instead of random draws remove most of the finite-$N$ sampling noise in
    the Kuramoto transition. The largest is about $2n\gamma/\pi$, which makes the
    system stiff; `max_abs` instead takes the quantiles of the Lorentzian conditioned
    on $|\omega| \le$ `max_abs` (see [`hopkur.kuramoto_order_theory`][] for its exact
    order parameter).

    **Arguments:**

    - `n`: the number of oscillators.
    - `gamma`: the half width $\gamma > 0$.
    - `max_abs`: optional truncation. (Keyword only argument.)

    **Returns:**

    A NumPy array of shape `(n,)`, increasing, symmetric about 0.
    """
    if not gamma > 0:
        raise ValueError(
            f"`hopkur.lorentzian_frequencies(gamma=...)` must be > 0; got {gamma}."
        )
    u = (np.arange(n) + 0.5) / n
    if max_abs is not None:
        edge = np.arctan(max_abs / gamma) / np.pi
        u = 0.5 - edge + 2 * edge * u
    return gamma * np.tan(np.pi * (u - 0.5))


def planar_rotations(freqs: Float[ArrayLike, " n"]) -> Float[Array, "n 2 2"]:
    r"""The $D = 2$ natural-frequency generators $\Omega_i = \omega_i
    \begin{pmatrix}0 & -1\\ 1 & 0\end{pmatrix}$, for `hopkur.Kuramoto(omega=...)`.

    With these and `hopkur.MeanFieldCoupling(K)` a [`hopkur.Kuramoto`][] model is the
    classical $\dot\theta_i = \omega_i + \frac{K}{N}\sum_j \sin(\theta_j - \theta_i)$.

    **Arguments:**

    - `freqs`: the natural frequencies $\omega_i$, shape `(N,)`.

    **Returns:**

    An array of shape `(N, 2, 2)`.
    """
    freqs = jnp.asarray(freqs)
    generator = jnp.array([[0.0, -1.0], [1.0, 0.0]], dtype=freqs.dtype)
    return freqs[:, None, None] * generator[None]


def kuramoto_order_theory(
    strength: ArrayLike | Sequence[float], gamma: float, *, max_abs: float | None = None
) -> np.ndarray:
    r"""Kuramoto's stationary order parameter for Lorentzian natural frequencies in the
    limit $N \to \infty$: $r = \sqrt{1 - K_c/K}$ for $K > K_c = 2\gamma$, else 0.

    With the frequencies truncated to $|\omega| \le a$ (and renormalised, as
    [`hopkur.lorentzian_frequencies`][]`(max_abs=a)`) the same self-consistency
    $1 = K\int_{-\pi/2}^{\pi/2}\cos^2\theta\, g(Kr\sin\theta)\,d\theta$ gives
    $r = c\sqrt{1 - 2\gamma/(cK)}$ with $c = 1/(1 - p)$, $p$ the cut-off tail mass,
    valid while $Kr \le a$.

    **Arguments:**

    - `strength`: coupling strengths $K$ (any shape).
    - `gamma`: the half width $\gamma$.
    - `max_abs`: the truncation $a$, if any. (Keyword only argument.)

    **Returns:**

    $r(K)$, a NumPy array of the shape of `strength`.
    """
    k = np.asarray(strength, dtype=float)
    c = 1.0
    if max_abs is not None:
        c = 1.0 / (2 * np.arctan(max_abs / gamma) / np.pi)
    inside = 1.0 - 2 * gamma / (c * np.maximum(k, 1e-300))
    r = c * np.sqrt(np.clip(inside, 0.0, None))
    if max_abs is not None:
        r = np.where(k * r > max_abs, np.nan, r)
    return r


# ------------------------------------------------------------------ energies


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


# ------------------------------------------------------------------ fixed points


@dataclasses.dataclass(frozen=True)
class Stability:
    r"""The linear stability of a fixed point, from the spectrum of the Jacobian of the
    vector field restricted to the tangent space of the state manifold; made by
    [`hopkur.fixed_point_spectrum`][].

    **Fields:**

    - `kind`: `"stable"` (every eigenvalue has negative real part), `"saddle"` (some
      positive, some negative), `"unstable"` (all positive) or `"marginal"` (none
      positive, some zero: not hyperbolic).
    - `eigenvalues`: the tangent-space eigenvalues (complex NumPy array, decreasing
      real part), without the `zero_modes` set aside.
    - `symmetry_eigenvalues`: the eigenvalues set aside as symmetry (zero) modes.
    - `num_unstable`, `num_stable`, `num_marginal`: counts of eigenvalues with
      positive, negative and (within tolerance) zero real part. `num_unstable` is the
      Morse index of a gradient system's critical point.
    """

    kind: str
    eigenvalues: np.ndarray
    symmetry_eigenvalues: np.ndarray
    num_unstable: int
    num_stable: int
    num_marginal: int

    def __str__(self) -> str:
        top = self.eigenvalues[0].real if self.eigenvalues.size else float("nan")
        return (
            f"{self.kind} ({self.num_unstable} unstable, {self.num_stable} stable, "
            f"{self.num_marginal} marginal directions; largest Re(eigenvalue) "
            f"{top:.3g})"
        )


@eqx.filter_jit
def _jacobians(model, y, args):
    flat, unravel = ravel_pytree(y)

    def f(v):
        return ravel_pytree(model.vector_field(0.0, unravel(v), args))[0]

    jac = jax.jacfwd(f)(flat)
    if has_retraction(model):
        retraction = model_retraction(model)
        proj = jax.jacfwd(lambda v: ravel_pytree(retraction(unravel(v)))[0])(flat)
    else:
        proj = jnp.eye(flat.shape[0], dtype=flat.dtype)
    return jac, proj


def fixed_point_spectrum(
    model: AbstractEnergySystem,
    y: PyTree[ArrayLike],
    args: Args = None,
    *,
    zero_modes: int = 0,
    tol: float | None = None,
) -> Stability:
    r"""Classifies a fixed point by the eigenvalues of the Jacobian of the vector field
    restricted to the tangent space of the spheres.

    The Jacobian $J = \partial f/\partial y$ is formed by forward-mode autodiff, and the
    tangent space is the range of the derivative of `model.retract` at $y$ (for
    oscillators the projectors $P_{x_i}$; everything for threshold units). With an
    orthonormal basis $B$ of it, the spectrum of $B^\top J B$ decides stability:
    normal directions are excluded (the flow conserves $|x_i|$, so they are always
    neutral). Eigenvalues are computed with NumPy on the host.

    **Arguments:**

    - `model`: the model.
    - `y`: the fixed point (e.g. from [`hopkur.relax`][] or
      [`hopkur.find_fixed_points`][]).
    - `args`: passed to `model.vector_field`.
    - `zero_modes`: the number of eigenvalues closest to zero to set aside as symmetry
      modes, e.g. 1 for a $D = 2$ Kuramoto model without field (a common rotation is
      always neutral), $D(D-1)/2$ in general. (Keyword only argument.)
    - `tol`: eigenvalues with $|\operatorname{Re}\lambda| \le$ `tol` $\cdot
      \max(1, \max|\lambda|)$ count as zero; default $\sqrt\epsilon$ of the dtype.
      (Keyword only argument.)

    **Returns:**

    A [`hopkur.Stability`][].
    """
    y = jtu.tree_map(jnp.asarray, y)
    jac, proj = _jacobians(model, y, args)
    jac = np.asarray(jac, dtype=np.float64)
    proj = np.asarray(proj, dtype=np.float64)
    values, vectors = np.linalg.eigh(0.5 * (proj + proj.T))
    basis = vectors[:, values > 0.5]
    eig = np.linalg.eigvals(basis.T @ jac @ basis)
    if zero_modes:
        if zero_modes > eig.size:
            raise ValueError(
                f"`hopkur.fixed_point_spectrum(zero_modes=...)` must be at most the "
                f"tangent dimension {eig.size}; got {zero_modes}."
            )
        order = np.argsort(np.abs(eig))
        symmetry, eig = eig[order[:zero_modes]], eig[order[zero_modes:]]
    else:
        symmetry = eig[:0]
    eig = eig[np.argsort(-eig.real, kind="stable")]
    leaves = jtu.tree_leaves(y)
    if tol is None:
        tol = float(np.sqrt(jnp.finfo(jnp.result_type(*leaves)).eps))
    scale = max(1.0, float(np.max(np.abs(eig)))) if eig.size else 1.0
    zero = np.abs(eig.real) <= tol * scale
    unstable = int(np.sum((eig.real > 0) & ~zero))
    stable = int(np.sum((eig.real < 0) & ~zero))
    marginal = int(np.sum(zero))
    if unstable and stable:
        kind = "saddle"
    elif unstable:
        kind = "unstable"
    elif marginal:
        kind = "marginal"
    else:
        kind = "stable"
    return Stability(kind, eig, symmetry, unstable, stable, marginal)


@dataclasses.dataclass(frozen=True)
class FixedPoints:
    """Distinct fixed points found by [`hopkur.find_fixed_points`][], sorted by energy.

    **Fields:**

    - `ys`: the fixed points, stacked along a leading axis (a pytree like the state).
    - `energies`: their energies, shape `(K,)`, increasing.
    - `residuals`: $\\max|f(y^*)|$ at each.
    - `counts`: how many starts converged to each.
    - `stability`: a [`hopkur.Stability`][] for each (or `None` if not classified).
    - `num_starts`, `num_converged`: starts tried, and starts that reached a fixed
      point.
    """

    ys: PyTree[Array] = dataclasses.field(repr=False)
    energies: np.ndarray
    residuals: np.ndarray
    counts: np.ndarray
    stability: tuple[Stability, ...] | None
    num_starts: int
    num_converged: int

    def __len__(self) -> int:
        return int(self.energies.shape[0])

    def __str__(self) -> str:
        lines = [
            f"{len(self)} distinct fixed points from {self.num_converged} of "
            f"{self.num_starts} starts"
        ]
        for k in range(len(self)):
            kind = "" if self.stability is None else f"  {self.stability[k]}"
            lines.append(
                f"  [{k}] energy {self.energies[k]:.6g}  found {self.counts[k]}x  "
                f"residual {self.residuals[k]:.1e}{kind}"
            )
        return "\n".join(lines)


@eqx.filter_jit
def _newton_from_starts(model, y0s, args, rtol, atol, max_steps):
    if has_retraction(model):
        retraction = model_retraction(model)
        field = _Stabilised(model, retraction)
    else:
        retraction = lambda y: y
        field = model.vector_field
    solver = optx.Newton(
        rtol=rtol, atol=atol, linear_solver=lx.AutoLinearSolver(well_posed=False)
    )

    def one(y0):
        y0 = retraction(y0)
        sol = optx.root_find(
            lambda y, a: field(0.0, y, a),
            solver,
            y0,
            args,
            max_steps=max_steps,
            throw=False,
        )
        y = retraction(sol.value)
        f = model.vector_field(0.0, y, args)
        residual = jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in jtu.tree_leaves(f)]))
        return y, residual, model.energy(y, args)

    return jax.vmap(one)(y0s)


def find_fixed_points(
    model: AbstractEnergySystem,
    y0s: PyTree[ArrayLike],
    args: Args = None,
    *,
    max_steps: int = 100,
    residual_tol: float | None = None,
    distinct_tol: float | None = None,
    invariant: Callable[[PyTree[Array]], Array] | None = None,
    classify: bool = True,
    zero_modes: int = 0,
) -> FixedPoints:
    r"""Finds fixed points $f(y^*) = 0$ by Newton's method from many starts
    (`optimistix.root_find`, vmapped), and keeps the distinct ones.

    Newton converges to fixed points of every kind (stable, saddles, maxima), unlike
    [`hopkur.relax`][], which only finds attractors. For oscillators the root find
    uses the stabilised field $f(y) + (\operatorname{retract}(y) - y)$ (see
    [`hopkur.relax`][]) and the linear solves are least-squares (SVD), so symmetric
    models with families of fixed points are handled. A start counts as converged when
    $\max|f(y^*)| \le$ `residual_tol` at the retracted end point; two points are the
    same when their `invariant` features differ by at most `distinct_tol` (max norm).

    **Arguments:**

    - `model`: the model.
    - `y0s`: starting states, with a leading batch axis.
    - `args`: passed to `model.vector_field`.
    - `max_steps`: Newton iterations per start. (Keyword only argument, as all below.)
    - `residual_tol`: default $\epsilon^{1/2}$ of the dtype.
    - `distinct_tol`: default $\max(10^{-6}, 10^4\epsilon)$.
    - `invariant`: a function of a state whose value identifies fixed points up to a
      symmetry, e.g. `lambda x: x @ x.T` for a rotation-invariant Kuramoto model; by
      default the state itself.
    - `classify`: also compute each point's [`hopkur.Stability`][].
    - `zero_modes`: passed to [`hopkur.fixed_point_spectrum`][].

    **Returns:**

    A [`hopkur.FixedPoints`][].
    """
    y0s = jtu.tree_map(jnp.asarray, y0s)
    leaves = jtu.tree_leaves(y0s)
    if not leaves:
        raise ValueError("`hopkur.find_fixed_points(y0s=...)` must contain arrays.")
    num_starts = int(jnp.shape(leaves[0])[0])
    eps = float(jnp.finfo(jnp.result_type(*leaves)).eps)
    tol = eps**0.75
    residual_tol = float(np.sqrt(eps)) if residual_tol is None else residual_tol
    distinct_tol = max(1e-6, 1e4 * eps) if distinct_tol is None else distinct_tol
    ys, residuals, energies = _newton_from_starts(model, y0s, args, tol, tol, max_steps)
    residuals = np.asarray(residuals)
    energies = np.asarray(energies)
    ok = np.isfinite(residuals) & (residuals <= residual_tol) & np.isfinite(energies)
    if invariant is None:
        features = np.asarray(jax.vmap(lambda y: ravel_pytree(y)[0])(ys))
    else:
        features = np.asarray(jax.vmap(lambda y: jnp.ravel(invariant(y)))(ys))
    reps: list[int] = []
    counts: list[int] = []
    for i in np.flatnonzero(ok):
        for k, j in enumerate(reps):
            if np.max(np.abs(features[i] - features[j])) <= distinct_tol:
                counts[k] += 1
                break
        else:
            reps.append(int(i))
            counts.append(1)
    order = np.argsort(energies[reps], kind="stable") if reps else np.zeros(0, int)
    index = np.asarray(reps, dtype=int)[order]
    unique = jtu.tree_map(lambda a: a[index], ys)
    stability = None
    if classify:
        stability = tuple(
            fixed_point_spectrum(
                model, jtu.tree_map(lambda a: a[k], unique), args, zero_modes=zero_modes
            )
            for k in range(index.size)
        )
    return FixedPoints(
        ys=unique,
        energies=energies[index],
        residuals=residuals[index],
        counts=np.asarray(counts, dtype=int)[order],
        stability=stability,
        num_starts=num_starts,
        num_converged=int(np.sum(ok)),
    )


# ------------------------------------------------------------------ memory


def pattern_overlaps(
    s: Float[ArrayLike, "*batch n"], patterns: Float[ArrayLike, "p n"]
) -> Float[Array, "*batch p"]:
    r"""The overlaps $m^\mu = \frac1N \sum_i \xi^\mu_i s_i$ of states with stored
    patterns: 1 for a perfect retrieval of $\pm1$ patterns, about $N^{-1/2}$ for an
    unrelated state.

    **Arguments:**

    - `s`: states in $[-1, 1]$ (e.g. `jnp.sign(x)` of a relaxed Hopfield state, or its
      activation `tanh(x)`), shape `(..., N)`.
    - `patterns`: the patterns, shape `(P, N)`.

    **Returns:**

    The overlaps, shape `(..., P)`.
    """
    s, patterns = jnp.asarray(s), jnp.asarray(patterns)
    if patterns.ndim != 2 or s.shape[-1:] != patterns.shape[-1:]:
        raise ValueError(
            "`hopkur.pattern_overlaps` needs states (..., N) and patterns (P, N); got "
            f"{s.shape} and {patterns.shape}."
        )
    return s @ patterns.T / patterns.shape[-1]


def corrupt_patterns(
    patterns: Float[ArrayLike, "*batch n"], flip_fraction: float, *, key: PRNGKeyArray
) -> Float[Array, "*batch n"]:
    """Flips the signs of exactly `round(flip_fraction * N)` randomly chosen entries of
    each pattern: [`hopkur.data.corrupt`][] under the name and argument name of the
    analysis API (the same random draws for the same key).

    **Arguments:**

    - `patterns`: $\\pm1$ patterns, shape `(..., N)`.
    - `flip_fraction`: the fraction of entries to flip, in $[0, 1]$ (a Python number;
        `hopkur.data.corrupt` also takes a traced one).
    - `key`: a `jax.random.key`. (Keyword only argument.)

    **Returns:**

    The corrupted patterns.
    """
    if not 0.0 <= flip_fraction <= 1.0:
        raise ValueError(
            "`hopkur.corrupt_patterns(flip_fraction=...)` must be in [0, 1]; got "
            f"{flip_fraction}."
        )
    return corrupt(patterns, flip_fraction, key=key)


@eqx.filter_jit
def sign_retrieve(
    weights: Float[ArrayLike, "n n"],
    s0: Float[ArrayLike, "*batch n"],
    *,
    key: PRNGKeyArray,
    sweeps: int = 20,
    asynchronous: bool = True,
) -> Float[Array, "*batch n"]:
    r"""The classical discrete Hopfield network: $s_i \leftarrow
    \operatorname{sign}(\sum_j W_{ij} s_j)$ (a unit with zero field keeps its sign).

    Asynchronous updates (one unit at a time, a fresh random order every sweep) always
    descend $E = -\frac12 s^\top W s$ and stop at a fixed point; synchronous updates
    (all units at once) can end in 2-cycles.

    **Arguments:**

    - `weights`: symmetric weights, shape `(N, N)`, e.g. [`hopkur.hebbian_weights`][].
    - `s0`: initial $\pm1$ states, shape `(..., N)`.
    - `key`: a `jax.random.key` for the update order. (Keyword only argument.)
    - `sweeps`: the number of sweeps over all units. (Keyword only argument.)
    - `asynchronous`: one unit at a time (default) or all at once. (Keyword only
      argument.)

    **Returns:**

    The states after `sweeps` sweeps.
    """
    weights, s0 = jnp.asarray(weights), jnp.asarray(s0)
    n = weights.shape[0]

    def sign(h, s):
        return jnp.where(h > 0, 1.0, jnp.where(h < 0, -1.0, s)).astype(s.dtype)

    if not asynchronous:

        def sync(s, _):
            return sign(s @ weights, s), None

        s, _ = lax.scan(sync, s0, None, length=sweeps)
        return s

    def sweep(s, k):
        def update(s, i):
            h = s @ weights[i]
            return s.at[..., i].set(sign(h, s[..., i])), None

        s, _ = lax.scan(update, s, jr.permutation(k, n))
        return s, None

    s, _ = lax.scan(sweep, s0, jr.split(key, sweeps))
    return s


@eqx.filter_jit
def _retrieval_overlaps(weights, targets, key, index, flip_fraction, settings):
    """One retrieval trial, compiled as a whole: corrupt the cues, run the network,
    return the overlap of each final sign state with its cue's pattern."""
    variant, sweeps, rtol, atol, max_steps = settings
    ckey, rkey = jr.split(jr.fold_in(key, index))
    s0 = corrupt_patterns(targets, flip_fraction, key=ckey)
    n = weights.shape[0]
    if variant in ("sign", "sign-sync"):
        s = sign_retrieve(
            weights, s0, key=rkey, sweeps=sweeps, asynchronous=variant == "sign"
        )
    else:
        model = Hopfield(weights, jnp.zeros((n,), weights.dtype), lagrangian_tanh)
        relaxed = jax.vmap(
            lambda x: relax(
                model, x, rtol=rtol, atol=atol, max_steps=max_steps, throw=False
            )
        )(s0)
        s = jnp.where(relaxed >= 0, 1.0, -1.0).astype(s0.dtype)
    return jnp.sum(s * targets, axis=-1) / n


@dataclasses.dataclass(frozen=True)
class CapacitySweep:
    """Retrieval versus load in a Hebbian Hopfield network; made by
    [`hopkur.capacity_sweep`][]. `str(sweep)` prints a table.

    **Fields:**

    - `n`: the number of units $N$.
    - `loads`: the loads $\\alpha = P/N$ (as realised: `num_patterns / n`).
    - `num_patterns`: the number of stored patterns $P$ at each load.
    - `mean_overlap`: the mean final overlap $m$ with the cued pattern.
    - `retrieved_fraction`: the fraction of cues retrieved ($m \\ge$ `threshold`).
    - `variant`, `gain`, `flip_fraction`, `threshold`: the settings.
    """

    n: int
    loads: np.ndarray
    num_patterns: np.ndarray
    mean_overlap: np.ndarray
    retrieved_fraction: np.ndarray
    variant: str
    gain: float | None
    flip_fraction: float
    threshold: float

    @property
    def critical_load(self) -> float | None:
        r"""The load at which the retrieved fraction first falls below 1/2 (linear
        interpolation between grid points), or `None` if it never does."""
        frac = self.retrieved_fraction
        below = np.flatnonzero(frac < 0.5)
        if below.size == 0:
            return None
        k = int(below[0])
        if k == 0:
            return float(self.loads[0])
        a0, a1, f0, f1 = self.loads[k - 1], self.loads[k], frac[k - 1], frac[k]
        return float(a0 + (f0 - 0.5) * (a1 - a0) / (f0 - f1))

    def __str__(self) -> str:
        name = (
            self.variant if self.gain is None else f"{self.variant}, gain {self.gain:g}"
        )
        lines = [
            f"Hebbian Hopfield retrieval, N = {self.n} ({name}), "
            f"{self.flip_fraction:.0%} of each cue flipped",
            "  load P/N   patterns   mean overlap   retrieved",
        ]
        for a, p, m, f in zip(
            self.loads, self.num_patterns, self.mean_overlap, self.retrieved_fraction
        ):
            lines.append(f"  {a:8.3f}   {p:8d}   {m:12.3f}   {f:9.2f}")
        crit = self.critical_load
        lines.append(
            "  critical load: "
            + ("not reached" if crit is None else f"{crit:.3f} (retrieved < 1/2)")
        )
        return "\n".join(lines)


def _numpy_rng(key) -> np.random.Generator:
    data = np.asarray(jax.random.key_data(key)).ravel()
    return np.random.default_rng([int(v) for v in data])


def capacity_sweep(
    n: int,
    loads: Sequence[float],
    *,
    key: PRNGKeyArray,
    variant: str = "sign",
    gain: float = 10.0,
    flip_fraction: float = 0.1,
    trials: int = 2,
    cues: int = 32,
    threshold: float = 0.95,
    sweeps: int = 20,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    max_steps: int = 2000,
    progress: Callable[[int, int], Any] | None = None,
) -> CapacitySweep:
    r"""Measures memory retrieval versus load $\alpha = P/N$ in a Hopfield network with
    Hebbian weights.

    For each load: store $P = \operatorname{round}(\alpha N)$ random $\pm1$ patterns
    with [`hopkur.hebbian_weights`][], cue the network with `cues` of them (each with
    `flip_fraction` of its signs flipped, [`hopkur.corrupt_patterns`][]), run it, and
    measure the overlap $m$ of the sign of the final state with the cued pattern
    ([`hopkur.pattern_overlaps`][]). Repeated for `trials` independent pattern sets.
    Every load uses the same array shapes, so the retrieval compiles once.

    Variants:

    - `"sign"`: the classical network with asynchronous sign updates
      ([`hopkur.sign_retrieve`][]); its retrieval collapses near the critical load
      $\alpha_c \approx 0.138$ (Amit, Gutfreund & Sompolinsky, 1985) as $N\to\infty$.
    - `"sign-sync"`: the same with synchronous updates.
    - `"tanh"`: the continuous network `hopkur.Hopfield(gain * W, 0, lagrangian_tanh)`
      ($\dot x = \beta W \tanh x - x$), relaxed to a fixed point with
      [`hopkur.relax`][] from the cue; the gain $\beta$ plays the role of an inverse
      temperature, and the capacity falls as $\beta$ decreases.

    **Arguments:**

    - `n`: the number of units $N$.
    - `loads`: the loads $\alpha$ to measure.
    - `key`: a `jax.random.key`. (Keyword only argument, as all below.)
    - `variant`: `"sign"`, `"sign-sync"` or `"tanh"`.
    - `gain`: the gain $\beta$ of the `"tanh"` variant.
    - `flip_fraction`: the fraction of each cue's entries flipped.
    - `trials`: the number of independent pattern sets per load.
    - `cues`: patterns cued per trial (drawn without replacement when $P \ge$ `cues`).
    - `threshold`: the overlap counted as a retrieval.
    - `sweeps`: update sweeps of the sign variants.
    - `rtol`, `atol`, `max_steps`: the relaxation of the `"tanh"` variant (cues that
      do not settle within `max_steps` are judged at their last state).
    - `progress`: an optional callback `progress(done, total)` after each load.

    **Returns:**

    A [`hopkur.CapacitySweep`][].
    """
    if variant not in ("sign", "sign-sync", "tanh"):
        raise ValueError(
            "`hopkur.capacity_sweep(variant=...)` must be 'sign', 'sign-sync' or "
            f"'tanh'; got {variant!r}."
        )
    if n < 2 or cues < 1 or trials < 1:
        raise ValueError(
            "`hopkur.capacity_sweep` needs n >= 2, cues >= 1 and trials >= 1; got "
            f"n={n}, cues={cues}, trials={trials}."
        )
    loads = [float(a) for a in loads]
    if not loads or min(loads) <= 0:
        raise ValueError(
            f"`hopkur.capacity_sweep(loads=...)` must be positive; got {loads}."
        )
    rng = _numpy_rng(key)
    dtype = jnp.result_type(float)
    counts, overlaps, retrieved = [], [], []
    for index, load in enumerate(loads):
        p = max(1, int(round(load * n)))
        ms = []
        for trial in range(trials):
            xi = rng.choice(np.array([-1.0, 1.0]), size=(p, n))
            chosen = rng.choice(p, size=cues, replace=p < cues)
            targets = jnp.asarray(xi[chosen], dtype)
            # Hebb's rule in NumPy: P changes with the load, and eager JAX would
            # compile a matrix product for every new shape.
            w = xi.T @ xi / n
            np.fill_diagonal(w, 0.0)
            weights = jnp.asarray(w, dtype)
            if variant == "tanh":
                weights = gain * weights
            m = _retrieval_overlaps(
                weights,
                targets,
                key,
                jnp.asarray(index * trials + trial),
                flip_fraction,
                (variant, sweeps, rtol, atol, max_steps),
            )
            ms.append(np.asarray(m))
        m = np.concatenate(ms)
        counts.append(p)
        overlaps.append(float(np.mean(m)))
        retrieved.append(float(np.mean(m >= threshold)))
        if progress is not None:
            progress(index + 1, len(loads))
    counts_arr = np.asarray(counts, dtype=int)
    return CapacitySweep(
        n=n,
        loads=counts_arr / n,
        num_patterns=counts_arr,
        mean_overlap=np.asarray(overlaps),
        retrieved_fraction=np.asarray(retrieved),
        variant=variant,
        gain=gain if variant == "tanh" else None,
        flip_fraction=flip_fraction,
        threshold=threshold,
    )
