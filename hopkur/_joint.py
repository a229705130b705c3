r"""A batch of samples integrated as one ODE with a shared step size (private).

`hopkur.simulate_batch(..., joint=True)` integrates the whole batch as one system,
`BatchedSystem`, whose state is the stacked states of
the samples, instead of `jax.vmap` over `hopkur.simulate`. The two differ in what a
solve carries:

- under `vmap`, every sample has its own step sizes, so diffrax's `while` loop and its
  reverse-mode checkpoints are batched, and the cotangent of every parameter the vector
  field reads (an $N\times N$ matrix of dense weights, say) is carried *per sample*
  through the backward pass and summed at the end;
- jointly, there is one step size for the batch and one loop, and the vector field
  evaluates the samples inside it (`vmap` over the state only), so the parameters'
  cotangents are summed over the batch at each step: one copy, not one per sample.

The shared step size is chosen by the *largest* per-sample error: the controller's norm
(`rms_norm` unless it was given another) is applied to each sample's error estimate and
the maximum taken (`per_sample_max`). Every sample is therefore integrated at least as
accurately as the tolerances ask of it alone; the price is that easy samples take the
steps of the hardest one, and that the saved times and step counts are the batch's.
With fixed steps (`diffrax.ConstantStepSize`) both solves take the same steps, and give
the same states and gradients up to floating-point reassociation.
"""

from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, PyTree

from ._custom_types import Args, RealScalarLike, Scalar
from ._system import AbstractEnergySystem


def _first(y: PyTree[Array]) -> PyTree[Array]:
    return jtu.tree_map(lambda leaf: leaf[0], y)


class BatchedSystem(AbstractEnergySystem):
    """Independent copies of one model, stacked along a leading batch axis of the
    state; with `batched_model`, every array leaf of `model` carries that batch axis
    too (one model per sample). Its energy is the sum of the copies' energies, and it
    is a gradient system exactly when every copy is."""

    model: AbstractEnergySystem
    batched_model: bool = eqx.field(default=False, static=True)

    def _map(self, function, *arguments):
        # `function(model, *arguments)` over the batch: the model's arrays are mapped
        # with the state when there is one model per sample, else shared.
        arrays, static = eqx.partition(self.model, eqx.is_array)

        def one(model_arrays, *rest):
            return function(eqx.combine(model_arrays, static), *rest)

        model_axis = 0 if self.batched_model else None
        return jax.vmap(one, in_axes=(model_axis,) + (0,) * len(arguments))(
            arrays, *arguments
        )

    def vector_field(self, t: RealScalarLike, y: PyTree[Array], args: Args):
        return self._map(lambda m, y: m.vector_field(t, y, args), y)

    def energy(self, y: PyTree[Array], args: Args) -> Scalar:
        return jnp.sum(self._map(lambda m, y: m.energy(y, args), y))

    @property
    def is_gradient_system(self) -> Bool[Array, ""]:
        if not self.batched_model:
            return jnp.asarray(self.model.is_gradient_system)
        arrays, static = eqx.partition(self.model, eqx.is_array)
        each = jax.vmap(
            lambda a: jnp.asarray(eqx.combine(a, static).is_gradient_system)
        )
        return jnp.all(each(arrays))

    def _hoisted(self, y: PyTree[Array]) -> "BatchedSystem":
        if self.batched_model:
            arrays, static = eqx.partition(self.model, eqx.is_array)
            hoisted = eqx.filter_vmap(lambda a, y: eqx.combine(a, static)._hoisted(y))(
                arrays, y
            )
            return BatchedSystem(hoisted, batched_model=True)
        return BatchedSystem(self.model._hoisted(_first(y)))

    def retract(self, y: PyTree[Array]) -> PyTree[Array]:
        return self._map(lambda m, y: m.retract(y), y)

    @property
    def retract_is_identity(self) -> bool:
        return self.model.retract_is_identity


def per_sample_max(norm: Callable[[PyTree[Array]], Any]) -> Callable:
    """The norm of a batched state that is the largest, over the leading (batch) axis,
    of `norm` applied to each sample: with it a step-size controller accepts a step
    only when every sample's error is within the tolerances."""

    def batch_norm(y: PyTree[Array]) -> Array:
        return jnp.max(jax.vmap(norm)(y))

    return batch_norm


def joint_controller(
    call: str, controller: dfx.AbstractStepSizeController
) -> dfx.AbstractStepSizeController:
    """`controller` with its error norm applied per sample and maximised over the
    batch (`diffrax.PIDController`, also inside `diffrax.ClipStepSizeController`);
    fixed-step controllers are returned as they are."""
    if isinstance(controller, dfx.ConstantStepSize | dfx.StepTo):
        return controller
    if isinstance(controller, dfx.PIDController):
        return eqx.tree_at(
            lambda c: c.norm, controller, per_sample_max(controller.norm)
        )
    if isinstance(controller, dfx.ClipStepSizeController):
        inner = joint_controller(call, controller.controller)
        return eqx.tree_at(lambda c: c.controller, controller, inner)
    raise ValueError(
        f"`{call}(joint=True)` shares one step size over the batch, which needs a "
        "controller whose error norm it can apply per sample: diffrax.PIDController "
        "(optionally inside ClipStepSizeController), ConstantStepSize or StepTo; got "
        f"{type(controller).__name__}. Use joint=False for other controllers."
    )


def per_sample_solution(sol: dfx.Solution, batch: int) -> dfx.Solution:
    """The solution of a joint solve laid out as `vmap` lays out a batch of solutions:
    the states' batch axis first (`ys` of shape `(batch, times, ...)`), and the shared
    times, step counts and result repeated for every sample."""
    ys = (
        None
        if sol.ys is None
        else jtu.tree_map(lambda a: jnp.swapaxes(a, 0, 1), sol.ys)
    )
    rest = eqx.tree_at(lambda s: s.ys, sol, None, is_leaf=lambda x: x is None)
    arrays, static = eqx.partition(rest, eqx.is_array)
    arrays = jtu.tree_map(lambda a: jnp.broadcast_to(a, (batch, *a.shape)), arrays)
    out = eqx.combine(arrays, static)
    return eqx.tree_at(lambda s: s.ys, out, ys, is_leaf=lambda x: x is None)
