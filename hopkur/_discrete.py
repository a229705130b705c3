r"""Discrete-time updates: AKOrN's projected Euler steps under `lax.scan`.

The AKOrN layer (MODELS.md §2) updates every oscillator by

$$x_i \leftarrow \Pi\big(x_i + \gamma\,[\Omega_i x_i + P_{x_i}(c_i + [J X]_i)]\big),
\qquad \Pi(v) = v / \|v\|,$$

which is one explicit Euler step of [`hopkur.kuramoto_vector_field`][] followed by the
retraction onto the spheres. The same step applies to any hopkur model,
$y \leftarrow \operatorname{retract}(y + \gamma f(y))$ (for threshold units it is plain
Euler).
"""

from typing import NamedTuple

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Float, PyTree

from ._custom_types import Args, RealScalarLike
from ._system import AbstractEnergySystem


class DiscreteTrajectory(NamedTuple):
    """The result of [`hopkur.akorn_steps`][].

    **Fields:**

    - `ys`: the states; with `save_states=True` a leading axis of length `steps + 1`
      (the initial state first), otherwise the final state only.
    - `energies`: the energy after every step, shape `(steps + 1,)` (the initial
      energy first).
    """

    ys: PyTree[Array]
    energies: Float[Array, " steps_plus_one"]


def akorn_step(
    model: AbstractEnergySystem,
    y: PyTree[ArrayLike],
    gamma: RealScalarLike,
    args: Args = None,
    t: RealScalarLike = 0.0,
) -> PyTree[Array]:
    r"""One discrete AKOrN update, $y \leftarrow \operatorname{retract}(y + \gamma f(t,
    y))$.

    For [`hopkur.Kuramoto`][] this is exactly
    $x_i \leftarrow \Pi\big(x_i + \gamma[\Omega_i x_i + P_{x_i}(c_i + [JX]_i)]\big)$.
    At $D = 2$ with linear coupling it advances each phase by exactly
    $\arctan\!\big(\gamma\,\dot\theta_i\big)$, $\dot\theta_i$ the classical Kuramoto
    right-hand side (the update direction is tangent, so normalising turns the step
    into a rotation).

    **Arguments:**

    - `model`: a hopkur model.
    - `y`: the current state.
    - `gamma`: the step size $\gamma$.
    - `args`: passed to `model.vector_field`.
    - `t`: the time passed to `model.vector_field` (irrelevant for autonomous models).

    **Returns:**

    The updated state.
    """
    f = model.vector_field(t, y, args)
    moved = jtu.tree_map(lambda yi, fi: yi + gamma * fi, y, f)
    return model.retract(moved)


@eqx.filter_jit
def _akorn_scan(model, y0, args, gamma, steps, save_states):
    def body(y, k):
        # The energy of the state a step starts from, in the same iteration as the
        # step: the coupling's drive (e.g. an attention pass) is then one computation
        # shared by both (XLA merges the identical subexpressions), not two.
        energy = model.energy(y, args)
        y = akorn_step(model, y, gamma, args, k * gamma)
        return y, ((y if save_states else None), energy)

    ks = jnp.arange(1, steps + 1, dtype=jnp.result_type(gamma))
    y_final, (ys, energies) = lax.scan(body, y0, ks)
    energies = jnp.concatenate([energies, model.energy(y_final, args)[None]])
    if save_states:
        ys = jtu.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
    else:
        ys = y_final
    return DiscreteTrajectory(ys, energies)


def akorn_steps(
    model: AbstractEnergySystem,
    x0: PyTree[ArrayLike],
    args: Args = None,
    *,
    steps: int,
    gamma: RealScalarLike,
    save_states: bool = True,
) -> DiscreteTrajectory:
    r"""Runs `steps` discrete AKOrN updates ([`hopkur.akorn_step`][]) under
    `lax.scan` and records the energy after each.

    The initial state is retracted first. Compiled with `eqx.filter_jit`; `gamma` is
    traced (changing it does not recompile) and differentiable, as is everything else.

    Under the Lyapunov conditions of the model (`model.is_gradient_system`) the energy
    is non-increasing for small enough $\gamma$ (roughly $\gamma \|J\| \lesssim 1$);
    with large $\gamma$ (AKOrN uses $\gamma = 1$) it can increase.

    **Arguments:**

    - `model`: a hopkur model (typically [`hopkur.Kuramoto`][]).
    - `x0`: the initial state.
    - `args`: passed to `model.vector_field` and `model.energy`.
    - `steps`: the number of updates $T$. (Keyword only argument.)
    - `gamma`: the step size $\gamma$. (Keyword only argument.)
    - `save_states`: keep every state (memory $O(T)$) or only the last. (Keyword only
      argument.)

    **Returns:**

    A [`hopkur.DiscreteTrajectory`][] `(ys, energies)`.
    """
    if not isinstance(model, AbstractEnergySystem):
        raise ValueError(
            "`hopkur.akorn_steps(model=...)` must be a hopkur model; got "
            f"{type(model).__name__}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(
            "`hopkur.akorn_steps(steps=...)` must be a non-negative int; got "
            f"{steps!r}."
        )
    x0 = jtu.tree_map(jnp.asarray, x0)
    leaves = jtu.tree_leaves(x0)
    dtype = jnp.result_type(*leaves) if leaves else jnp.result_type(float)
    gamma = jnp.asarray(gamma, dtype=dtype)
    if jnp.ndim(gamma) != 0:
        raise ValueError(
            "`hopkur.akorn_steps(gamma=...)` must be a scalar; got shape "
            f"{jnp.shape(gamma)}."
        )
    x0 = model.retract(x0)
    return _akorn_scan(model, x0, args, gamma, steps, save_states)
