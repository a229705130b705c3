"""Integrating a batch of samples as one ODE with per-sample error control.

`jax.vmap` over `hopkur.simulate` gives every sample its own adaptive steps, but on a
CPU the batched `while` loop (and its reverse-mode checkpointing) costs several times
more than the arithmetic (measured in benchmarks/README.md, "Measurements behind
implementation choices"). The classifiers here therefore integrate
the whole batch as one system (`BatchedSystem`) with a shared step size, chosen by the
*largest* per-sample error (`max_sample_rms_norm`): every sample is integrated at least
as accurately as the tolerances `rtol`, `atol` ask for on its own.
"""

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, PyTree

import hopkur

from .._custom_types import Args, RealScalarLike, Scalar
from .._system import AbstractEnergySystem


class BatchedSystem(AbstractEnergySystem):
    """Independent copies of one model, stacked along a leading batch axis of the
    state. Its energy is the sum of the copies' energies."""

    model: AbstractEnergySystem

    def vector_field(self, t: RealScalarLike, y: PyTree[Array], args: Args):
        return jax.vmap(self.model.vector_field, in_axes=(None, 0, None))(t, y, args)

    def energy(self, y: PyTree[Array], args: Args) -> Scalar:
        return jnp.sum(jax.vmap(self.model.energy, in_axes=(0, None))(y, args))

    @property
    def is_gradient_system(self) -> Bool[Array, ""]:
        return self.model.is_gradient_system

    def _hoisted(self, y: PyTree[Array]) -> "BatchedSystem":
        return self

    def retract(self, y: PyTree[Array]) -> PyTree[Array]:
        return jax.vmap(self.model.retract)(y)

    @property
    def retract_is_identity(self) -> bool:
        return self.model.retract_is_identity


def max_sample_rms_norm(y: PyTree[Array]) -> Array:
    """The largest, over the leading (batch) axis, of each sample's root-mean-square
    over all its entries (all leaves of the pytree)."""
    leaves = jtu.tree_leaves(y)
    total = sum(
        jnp.sum(jnp.reshape(leaf, (leaf.shape[0], -1)) ** 2, axis=1) for leaf in leaves
    )
    size = sum(leaf[0].size for leaf in leaves)
    return jnp.sqrt(jnp.max(total) / size)


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
    sol = hopkur.simulate(
        BatchedSystem(model),
        y0,
        t1=t1,
        stepsize_controller=dfx.PIDController(
            rtol=rtol, atol=atol, norm=max_sample_rms_norm
        ),
        max_steps=max_steps,
    )
    assert sol.ys is not None
    return jtu.tree_map(lambda leaf: leaf[-1], sol.ys)


__all__ = ["BatchedSystem", "max_sample_rms_norm", "solve_batch"]
