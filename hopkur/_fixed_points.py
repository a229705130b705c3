"""Fixed points and their linear stability: Newton's method from many starts
(`find_fixed_points`) and the tangent-space spectrum of the Jacobian
(`fixed_point_spectrum`).

Both compute with JAX (compiled, on any device) and then summarise on the host with
NumPy: call them outside `jit`.
"""

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, PyTree

from ._custom_types import Args
from ._integrate import _Stabilised, has_retraction, model_retraction
from ._system import AbstractEnergySystem


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
