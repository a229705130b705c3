"""The contract every model follows: a vector field paired with an energy."""

import abc

import equinox as eqx
import jax
from jaxtyping import Array, Bool, PyTree

from ._custom_types import Args, RealScalarLike, Scalar


class AbstractEnergySystem(eqx.Module):
    r"""Abstract base class for a vector field $f$ paired with an energy $E$.

    Subclasses define `vector_field`, `energy`, `is_gradient_system`, `retract` and
    `retract_is_identity` (and the private `_hoisted`, `self` when there is nothing to
    hoist). The energy is a Lyapunov function of the flow $\dot y = f(t, y)$ —
    $\frac{dE}{dt} \le 0$ at every state — exactly when `is_gradient_system` is true
    for the current parameters; each model's docstring states those conditions. An
    energy may still be unbounded below (see [`hopkur.Hopfield`][]).
    """

    @abc.abstractmethod
    def vector_field(
        self, t: RealScalarLike, y: PyTree[Array], args: Args
    ) -> PyTree[Array]:
        """The right hand side $f(t, y, \\text{args})$, with the signature
        `diffrax.ODETerm` expects: `diffrax.ODETerm(model.vector_field)` works as it is.
        """

    @abc.abstractmethod
    def energy(self, y: PyTree[Array], args: Args) -> Scalar:
        """The energy $E(y)$, a scalar."""

    @property
    @abc.abstractmethod
    def is_gradient_system(self) -> Bool[Array, ""]:
        """Whether `energy` is a Lyapunov function of `vector_field` for the current
        parameters (a boolean JAX scalar, usable in `if` outside of `jit`)."""

    @abc.abstractmethod
    def _hoisted(self, y: PyTree[Array]) -> "AbstractEnergySystem":
        # This model with what its vector field computes from the parameters alone (not
        # the time or the state) computed once, here, for a solve from states like `y`;
        # `hopkur.simulate` and `hopkur.relax` call it before the solve. A model with
        # nothing to hoist returns `self`. (XLA hoists such work out of diffrax's loops
        # by itself only where it is not inside a conditional.)
        ...

    @abc.abstractmethod
    def retract(self, y: PyTree[Array]) -> PyTree[Array]:
        """Maps a state back onto the model's state manifold: the identity for threshold
        units, row normalisation for oscillators. Used after each accepted solver step
        (unless `retract_is_identity`) so that oscillators stay on their spheres to
        float precision."""

    @property
    @abc.abstractmethod
    def retract_is_identity(self) -> bool:
        """Whether `retract` is the identity (a Python boolean, fixed by the model's
        structure): then the solvers skip the retraction."""

    def energy_rate(self, t: RealScalarLike, y: PyTree[Array], args: Args) -> Scalar:
        r"""$\frac{dE}{dt} = \langle \nabla E(y), f(t, y, \text{args}) \rangle$,
        computed with one `jax.jvp` (no gradient is formed).

        **Arguments:**

        - `t`: the time.
        - `y`: the state.
        - `args`: passed through to `vector_field` and `energy`.

        **Returns:**

        The scalar rate of change of the energy along the flow.
        """
        dy = self.vector_field(t, y, args)
        _, rate = jax.jvp(lambda y_: self.energy(y_, args), (y,), (dy,))
        return rate
