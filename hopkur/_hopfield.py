r"""Continuous Hopfield networks in Krotov & Hopfield's Lagrangian form (MODELS.md §1).

$$\dot x = W_s\, g(x) - x + b, \qquad
E_H(x) = (x - b)\cdot g(x) - L(x) - \tfrac12 g(x)^\top W_s\, g(x),$$

with $g = \nabla L$ and $W_s = (W + W^\top)/2$. Since $\nabla E_H = -H(x)\,\dot x$ with
$H = \nabla^2 L \succeq 0$, $\frac{dE_H}{dt} = -\dot x^\top H \dot x \le 0$ at every
state.
"""

import abc
from collections.abc import Callable
from typing import ClassVar, TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ._custom_types import Args, RealScalarLike, Scalar
from ._lagrangians import lagrangian_identity, lagrangian_relu
from ._misc import check_finite, check_shape, float_array
from ._system import AbstractEnergySystem


Lagrangian = Callable[[Array], Array]


def symmetrise(w: Float[Array, "n n"]) -> Float[Array, "n n"]:
    r"""$W_s = (W + W^\top)/2$."""
    return 0.5 * (w + w.T)


def activation(lagrangian: Lagrangian, x: Float[Array, " n"]) -> Float[Array, " n"]:
    r"""The activation $g(x) = \nabla L(x)$ of a Lagrangian (by autodiff).

    **Arguments:**

    - `lagrangian`: a Lagrangian `x -> scalar`, e.g. [`hopkur.lagrangian_tanh`][].
    - `x`: the unit states, shape `(n,)`.

    **Returns:**

    $g(x)$, shape `(n,)`.
    """
    return jax.grad(lagrangian)(x)


def _hopfield_parts(x, lagrangian):
    lag, g = jax.value_and_grad(lagrangian)(x)
    return lag, g


def energy_from_activation(x, g, lag, w_s, bias) -> Scalar:
    """$E_H$ from precomputed $g = \\nabla L(x)$, $L(x)$ and symmetric $W_s$."""
    return energy_from_drive(x, g, lag, w_s @ g, bias)


def energy_from_drive(x, g, lag, w_g, bias) -> Scalar:
    """$E_H$ from precomputed $g = \\nabla L(x)$, $L(x)$ and $W_s g$."""
    return jnp.dot(x - bias, g) - lag - 0.5 * jnp.dot(g, w_g)


def hopfield_vector_field(
    x: Float[Array, " n"],
    weights: Float[Array, "n n"],
    bias: Float[Array, " n"],
    lagrangian: Lagrangian,
) -> Float[Array, " n"]:
    r"""The continuous Hopfield dynamics $\dot x = W_s g(x) - x + b$, with
    $g = \nabla L$ and $W_s = (W + W^\top)/2$.

    **Arguments:**

    - `x`: the unit states, shape `(n,)`.
    - `weights`: $W$, shape `(n, n)` (symmetrised here).
    - `bias`: $b$, shape `(n,)`.
    - `lagrangian`: the Lagrangian $L$ whose gradient is the activation.

    **Returns:**

    $\dot x$, shape `(n,)`.
    """
    g = activation(lagrangian, x)
    return symmetrise(weights) @ g - x + bias


def hopfield_energy(
    x: Float[Array, " n"],
    weights: Float[Array, "n n"],
    bias: Float[Array, " n"],
    lagrangian: Lagrangian,
) -> Scalar:
    r"""$E_H(x) = (x - b)\cdot g(x) - L(x) - \tfrac12 g(x)^\top W_s\, g(x)$.

    A Lyapunov function of [`hopkur.hopfield_vector_field`][] for every $W$, $b$ and
    convex $L$: $\nabla E_H = -H(x)\,\dot x$ with $H = \nabla^2 L \succeq 0$. It is
    bounded below for bounded activations (tanh, sigmoid, softmax); for identity and
    relu only under conditions on $W_s$ (see
    [`hopkur.Hopfield.energy_bounded_below`][]).

    **Arguments:**

    - `x`: the unit states, shape `(n,)`.
    - `weights`: $W$, shape `(n, n)` (symmetrised here).
    - `bias`: $b$, shape `(n,)`.
    - `lagrangian`: the Lagrangian $L$.

    **Returns:**

    The scalar energy.
    """
    lag, g = _hopfield_parts(x, lagrangian)
    return energy_from_activation(x, g, lag, symmetrise(weights), bias)


def _lagrangian_name(lagrangian) -> str:
    fn = getattr(lagrangian, "func", lagrangian)  # unwrap functools.partial
    return getattr(fn, "__name__", type(fn).__name__)


def _energy_bounded_below(lagrangian, top_eigenvalue) -> bool | None:
    r"""The shared rule of `energy_bounded_below`: bounded activations are bounded
    below; for the identity (relu) Lagrangian, $\lambda_{\max}(W_s) < 1$ ($\le 1$) is
    sufficient. `top_eigenvalue()` returns `(upper bound on the top eigenvalue or None
    if unknown, whether the bound is exact)`; it is only called when needed."""
    name = _lagrangian_name(lagrangian)
    if name in ("lagrangian_tanh", "lagrangian_sigmoid", "lagrangian_softmax"):
        return True
    if lagrangian not in (lagrangian_identity, lagrangian_relu):
        return None
    top, exact = top_eigenvalue()
    if top is None:
        return None
    if top < 1.0 or (top <= 1.0 and lagrangian is lagrangian_relu):
        return True
    return False if exact else None


class AbstractHopfield(AbstractEnergySystem):
    r"""Abstract base class of continuous Hopfield networks
    $\dot x = W_s g(x) - x + b$ with energy
    $E_H = (x - b)\cdot g - L - \tfrac12 g^\top W_s g$: [`hopkur.Hopfield`][] (a dense
    weight matrix) and [`hopkur.HebbianHopfield`][] (Hebb's rule from stored patterns,
    never forming the $N\times N$ matrix). [`hopkur.HopfieldKuramoto`][] accepts either
    as its threshold part.

    Subclasses provide `bias`, `lagrangian`, `num_units`, `symmetric_weights` (the dense
    $W_s$, for analysis) and `weights_times(g)` ($W_s g$, the only thing the dynamics
    need). The Lyapunov property holds for every subclass: $\nabla E_H = -H\dot x$ with
    $H = \nabla^2 L \succeq 0$.
    """

    if TYPE_CHECKING:
        # pyright reads an `AbstractVar` as a dataclass field of this class, so each
        # subclass's generated `__init__` would take `bias, lagrangian` first. At run
        # time equinox drops abstract fields and the order is the subclass's own
        # (`weights, bias, lagrangian`). For the type checker only, they are declared
        # as class variables, which are no dataclass fields.
        bias: ClassVar[Float[Array, " n"]]
        lagrangian: ClassVar[Lagrangian]
    else:
        bias: eqx.AbstractVar[Float[Array, " n"]]
        lagrangian: eqx.AbstractVar[Lagrangian]

    def __check_init__(self):
        # the checks every Hopfield network shares (equinox runs it after the
        # subclass's own `__check_init__`, which checks the shapes)
        call = type(self).__name__
        check_finite(call, "bias", self.bias)
        if not callable(self.lagrangian):
            raise ValueError(
                f"`{call}(lagrangian=...)` must be a callable `x -> scalar`; got "
                f"{type(self.lagrangian).__name__}."
            )

    @property
    @abc.abstractmethod
    def num_units(self) -> int:
        """The number of units $N$."""

    @property
    @abc.abstractmethod
    def symmetric_weights(self) -> Float[Array, "n n"]:
        r"""The dense symmetric weights $W_s$ ($O(N^2)$ memory: for analysis)."""

    @abc.abstractmethod
    def weights_times(self, g: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$W_s g$."""

    def activation(self, x: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$g(x) = \nabla L(x)$."""
        return activation(self.lagrangian, x)

    def vector_field(self, t: RealScalarLike, y: Float[Array, " n"], args: Args):
        del t, args
        check_shape(f"{type(self).__name__}.vector_field", "y", y, (self.num_units,))
        g = activation(self.lagrangian, y)
        return self.weights_times(g) - y + self.bias

    def energy(self, y: Float[Array, " n"], args: Args) -> Scalar:
        del args
        check_shape(f"{type(self).__name__}.energy", "y", y, (self.num_units,))
        lag, g = _hopfield_parts(y, self.lagrangian)
        return energy_from_drive(y, g, lag, self.weights_times(g), self.bias)

    @property
    def is_gradient_system(self) -> Bool[Array, ""]:
        return jnp.array(True)

    def _hoisted(self, y):
        return self

    def retract(self, y):
        return y

    @property
    def retract_is_identity(self) -> bool:
        return True


class Hopfield(AbstractHopfield):
    r"""A continuous Hopfield network (threshold units), in Lagrangian form.

    $\dot x = W_s g(x) - x + b$ with energy
    $E_H = (x - b)\cdot g - L - \tfrac12 g^\top W_s g$, $g = \nabla L$,
    $W_s = (W + W^\top)/2$; see [`hopkur.hopfield_vector_field`][].

    **Lyapunov conditions:** always (`is_gradient_system` is true): $\frac{dE}{dt} =
    -\dot x^\top H \dot x \le 0$. *Not* guaranteed: a lower bound. With the identity or
    relu Lagrangian and $\lambda_{\max}(W_s) > 1$ trajectories can run off to infinity;
    [`hopkur.Hopfield.energy_bounded_below`][] says when the bound is known to hold.

    ??? cite "References"

        ```bibtex
        @article{hopfield1984,
          title={Neurons with graded response have collective computational properties
                 like those of two-state neurons},
          author={Hopfield, John J.},
          journal={PNAS}, volume={81}, number={10}, pages={3088--3092}, year={1984}
        }
        @inproceedings{krotov2021large,
          title={Large Associative Memory Problem in Neurobiology and Machine Learning},
          author={Krotov, Dmitry and Hopfield, John J.},
          booktitle={ICLR}, year={2021}
        }
        ```
    """

    weights: Float[Array, "n n"] = eqx.field(converter=float_array)
    bias: Float[Array, " n"] = eqx.field(converter=float_array)
    lagrangian: Lagrangian

    def __check_init__(self):
        n = jnp.shape(self.weights)[0] if jnp.ndim(self.weights) else 0
        check_shape("Hopfield", "weights", self.weights, (n, n))
        check_shape("Hopfield", "bias", self.bias, (n,))
        check_finite("Hopfield", "weights", self.weights)

    @property
    def num_units(self) -> int:
        """The number of units $N$."""
        return self.weights.shape[0]

    @property
    def symmetric_weights(self) -> Float[Array, "n n"]:
        r"""$W_s = (W + W^\top)/2$, the weights the dynamics use."""
        return symmetrise(self.weights)

    def weights_times(self, g: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$W_s g$."""
        return self.symmetric_weights @ g

    def energy_bounded_below(self) -> bool | None:
        r"""Whether the energy is known to be bounded below (so that trajectories
        converge rather than run away).

        - tanh, sigmoid, softmax (bounded activations): `True`.
        - identity: `True` iff $\lambda_{\max}(W_s) < 1$.
        - relu: `True` if $\lambda_{\max}(W_s) \le 1$ (a sufficient condition), else
          `False` (the bound can fail; a run-away is possible, not certain).
        - any other Lagrangian: `None` (unknown).

        Needs concrete weights (call it outside `jit`).
        """
        return _energy_bounded_below(
            self.lagrangian,
            lambda: (float(jnp.linalg.eigvalsh(self.symmetric_weights)[-1]), True),
        )


Hopfield.__init__.__doc__ = """**Arguments:**

- `weights`: the weight matrix $W$, shape `(N, N)`; symmetrised on use.
- `bias`: the bias $b$, shape `(N,)`.
- `lagrangian`: the Lagrangian $L$, e.g. [`hopkur.lagrangian_tanh`][]; use
  `functools.partial(hopkur.lagrangian_softmax, beta=...)` for a modern Hopfield
  network.

Integer or boolean values are converted to the default floating dtype.
"""


class HebbianHopfield(AbstractHopfield):
    r"""A continuous Hopfield network whose weights are Hebb's rule for stored
    patterns, $W = \frac{s}{N}\big(\Xi^\top\Xi - \operatorname{diag}(\Xi^\top\Xi)\big)$
    (zero diagonal), kept in factored form: $W g = \frac{s}{N}\big(\Xi^\top(\Xi g) -
    \operatorname{diag}(\Xi^\top\Xi)\circ g\big)$ costs $O(NP)$ time and memory for $P$
    patterns, never forming the $N\times N$ matrix. This is what lets
    [`hopkur.HopfieldKuramoto`][] run at $N = 10^5$ and beyond.

    Dynamics and energy are those of [`hopkur.Hopfield`][] with these weights (equal to
    `Hopfield(s * hebbian_weights(patterns), bias, lagrangian)`, tested).

    **Lyapunov conditions:** always (`is_gradient_system` is true), as for every
    [`hopkur.AbstractHopfield`][]; a lower bound of the energy is not guaranteed for
    unbounded activations (see [`hopkur.HebbianHopfield.energy_bounded_below`][]).
    """

    patterns: Float[Array, "p n"] = eqx.field(converter=float_array)
    bias: Float[Array, " n"] = eqx.field(converter=float_array)
    lagrangian: Lagrangian
    strength: Float[Array, ""] = eqx.field(converter=float_array, default=1.0)

    def __check_init__(self):
        call = "HebbianHopfield"
        if jnp.ndim(self.patterns) != 2:
            raise ValueError(
                f"`{call}(patterns=...)` must have shape (P, N); got "
                f"{jnp.shape(self.patterns)}."
            )
        check_shape(call, "bias", self.bias, (self.patterns.shape[1],))
        check_shape(call, "strength", self.strength, ())
        check_finite(call, "patterns", self.patterns)
        check_finite(call, "strength", self.strength)

    @property
    def num_units(self) -> int:
        """The number of units $N$."""
        return self.patterns.shape[1]

    @property
    def num_patterns(self) -> int:
        """The number of stored patterns $P$."""
        return self.patterns.shape[0]

    def _diagonal(self):
        return jnp.sum(self.patterns * self.patterns, axis=0)

    def weights_times(self, g: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$W g$ in $O(NP)$."""
        xi = self.patterns
        return self.strength * (xi.T @ (xi @ g) - self._diagonal() * g) / xi.shape[1]

    @property
    def symmetric_weights(self) -> Float[Array, "n n"]:
        r"""The dense $W$ ($O(N^2)$ memory: for analysis and tests only)."""
        xi = self.patterns
        w = xi.T @ xi - jnp.diag(self._diagonal())
        return self.strength * w / xi.shape[1]

    def energy_bounded_below(self) -> bool | None:
        r"""Whether the energy is known to be bounded below: `True` for bounded
        activations (tanh, sigmoid, softmax); for the identity and relu, decided from
        the upper bound
        $\lambda_{\max}(W) \le \frac{s}{N}\big(\lambda_{\max}(\Xi\Xi^\top)
        - \min_i (\Xi^\top\Xi)_{ii}\big)$ (exact for $\pm1$ patterns; $s \ge 0$),
        computed from the $P\times P$ Gram matrix: `True` when it is below 1, `False`
        when it is exact and not, else `None`. Needs concrete values.
        """

        def top_eigenvalue():
            s = float(self.strength)
            if s < 0:
                return None, False
            diag = self._diagonal()
            lo, hi = float(jnp.min(diag)), float(jnp.max(diag))
            gram = self.patterns @ self.patterns.T
            top_gram = (
                float(jnp.linalg.eigvalsh(gram)[-1]) if self.num_patterns else 0.0
            )
            exact = hi - lo <= 1e-12 * max(1.0, hi)
            return s * (top_gram - lo) / self.num_units, exact

        return _energy_bounded_below(self.lagrangian, top_eigenvalue)


HebbianHopfield.__init__.__doc__ = r"""**Arguments:**

- `patterns`: the stored patterns $\xi^\mu$ (typically $\pm1$), shape `(P, N)`.
- `bias`: the bias $b$, shape `(N,)`.
- `lagrangian`: the Lagrangian $L$, e.g. [`hopkur.lagrangian_tanh`][].
- `strength`: a scale $s$ of the weights (the inverse temperature of the classical
  network), default 1.

Integer or boolean values are converted to the default floating dtype (integer
$\pm1$ patterns become floats).
"""
