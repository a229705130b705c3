"""Integrating the models with diffrax: thin wrappers over `diffrax.diffeqsolve`."""

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree

from ._custom_types import Args, RealScalarLike
from ._system import AbstractEnergySystem


@eqx.filter_jit
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
    max_steps: int | None = 4096,
    throw: bool = True,
) -> dfx.Solution:
    """Integrates `model` from `y0` over `[t0, t1]` with `diffrax.diffeqsolve`.

    Arguments keep `diffeqsolve`'s names; the diffrax `Solution` is returned unchanged.
    """
    term = dfx.ODETerm(model.vector_field)
    return dfx.diffeqsolve(
        term, solver, t0, t1, dt0, y0, args, saveat=saveat,
        stepsize_controller=stepsize_controller, adjoint=adjoint,
        max_steps=max_steps, throw=throw,
    )


@eqx.filter_jit
def relax(
    model: AbstractEnergySystem,
    y0: PyTree[ArrayLike],
    args: Args = None,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int | None = 4096,
) -> PyTree[Array]:
    """Integrates until the vector field vanishes (a fixed point); differentiable by the
    implicit function theorem."""
    sol = dfx.diffeqsolve(
        dfx.ODETerm(model.vector_field), dfx.Tsit5(), 0.0, jnp.inf, None, y0, args,
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        event=dfx.Event(dfx.steady_state_event()),
        adjoint=dfx.ImplicitAdjoint(),
        max_steps=max_steps,
    )
    assert sol.ys is not None
    return sol.ys
