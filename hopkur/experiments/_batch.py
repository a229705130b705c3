"""Integrating a batch of samples as one ODE with per-sample error control.

`jax.vmap` over `hopkur.simulate` gives every sample its own adaptive steps, but on a
CPU the batched `while` loop (and its reverse-mode checkpointing) costs several times
more than the arithmetic (measured in benchmarks/README.md, "Measurements behind
implementation choices"). The classifiers here therefore integrate the whole batch as
one system, `hopkur.simulate_batch(..., joint=True)`, with a shared step size chosen by
the *largest* per-sample error: every sample is integrated at least as accurately as
the tolerances `rtol`, `atol` ask for on its own.
"""

import diffrax as dfx
import jax.tree_util as jtu
from jaxtyping import Array, PyTree

import hopkur

from .._system import AbstractEnergySystem


def solve_batch(
    model: AbstractEnergySystem,
    y0: PyTree[Array],
    *,
    t1: float = 1.0,
    rtol: float = 1e-3,
    atol: float = 1e-6,
    max_steps: int = 256,
) -> PyTree[Array]:
    """Integrates a batch of initial states of `model` from $t = 0$ to `t1` with
    Tsit5 (MODELS.md §4: rtol 1e-3, atol 1e-6) and returns the final states.

    **Arguments:**

    - `model`: the model (one sample).
    - `y0`: initial states with a leading batch axis.
    - `t1`, `rtol`, `atol`, `max_steps`: as in [`hopkur.simulate`][]. (Keyword only
        arguments.)

    **Returns:**

    The states at `t1`, with the batch axis.
    """
    sol = hopkur.simulate_batch(
        model,
        y0,
        joint=True,
        t1=t1,
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    assert sol.ys is not None
    return jtu.tree_map(lambda leaf: leaf[:, -1], sol.ys)


__all__ = ["solve_batch"]
