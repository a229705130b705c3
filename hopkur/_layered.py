r"""Layered (hierarchical) continuous Hopfield networks (MODELS.md §1): units split into
layers $\ell$ coupled by inter-layer matrices $W_\ell$,

$$\dot x_\ell = W_{\ell-1} g_{\ell-1} + W_\ell^\top g_{\ell+1} - x_\ell + b_\ell, \qquad
E = (x - b)\cdot g - L - \sum_\ell g_{\ell+1}^\top W_\ell\, g_\ell.$$
"""

from collections.abc import Sequence

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from ._custom_types import Args, RealScalarLike, Scalar
from ._hopfield import _hopfield_parts, activation, Lagrangian
from ._misc import check_finite, check_shape, float_array
from ._system import AbstractEnergySystem


def layered_hopfield_vector_field(
    x: Sequence[Float[Array, " _"]],
    weights: Sequence[Float[Array, "_ _"]],
    biases: Sequence[Float[Array, " _"]],
    lagrangians: Sequence[Lagrangian],
) -> tuple[Float[Array, " _"], ...]:
    r"""The layered (hierarchical) Hopfield dynamics
    $\dot x_\ell = W_{\ell-1} g_{\ell-1} + W_\ell^\top g_{\ell+1} - x_\ell + b_\ell$.

    **Arguments:**

    - `x`: the states of the layers, a sequence of arrays of shapes `(n_l,)`.
    - `weights`: the inter-layer matrices; `weights[l]` has shape `(n_{l+1}, n_l)`.
    - `biases`: one bias per layer.
    - `lagrangians`: one Lagrangian per layer.

    **Returns:**

    A tuple with $\dot x_\ell$ for each layer.
    """
    g = [activation(lag, xl) for lag, xl in zip(lagrangians, x)]
    out = []
    for level, (xl, bl) in enumerate(zip(x, biases)):
        dx = bl - xl
        if level > 0:
            dx = dx + weights[level - 1] @ g[level - 1]
        if level < len(x) - 1:
            dx = dx + weights[level].T @ g[level + 1]
        out.append(dx)
    return tuple(out)


def layered_hopfield_energy(
    x: Sequence[Float[Array, " _"]],
    weights: Sequence[Float[Array, "_ _"]],
    biases: Sequence[Float[Array, " _"]],
    lagrangians: Sequence[Lagrangian],
) -> Scalar:
    r"""$E = \sum_\ell \big[(x_\ell - b_\ell)\cdot g_\ell - L_\ell(x_\ell)\big] -
    \sum_\ell g_{\ell+1}^\top W_\ell\, g_\ell$.

    A Lyapunov function of [`hopkur.layered_hopfield_vector_field`][] for all weights:
    $\nabla_{x_\ell} E = -H_\ell \dot x_\ell$.
    """
    energy = jnp.zeros((), dtype=jnp.result_type(x[0]))
    g = []
    for lag, xl, bl in zip(lagrangians, x, biases):
        value, gl = _hopfield_parts(xl, lag)
        g.append(gl)
        energy = energy + jnp.dot(xl - bl, gl) - value
    for level, w in enumerate(weights):
        energy = energy - jnp.dot(g[level + 1], w @ g[level])
    return energy


class LayeredHopfield(AbstractEnergySystem):
    r"""A layered (hierarchical) Hopfield network: units split into layers $\ell$,
    coupled only between neighbouring layers by $W_\ell$ (shape
    $n_{\ell+1}\times n_\ell$).

    State: a tuple of per-layer arrays. Always a gradient system, as
    [`hopkur.Hopfield`][]. See [`hopkur.layered_hopfield_vector_field`][] and
    [`hopkur.layered_hopfield_energy`][].
    """

    weights: tuple[Float[Array, "_ _"], ...]
    biases: tuple[Float[Array, " _"], ...]
    lagrangians: tuple[Lagrangian, ...]

    def __init__(
        self,
        weights: Sequence[ArrayLike],
        biases: Sequence[ArrayLike],
        lagrangians: Sequence[Lagrangian] | Lagrangian,
    ):
        """**Arguments:**

        - `weights`: `L - 1` matrices; `weights[l]` maps layer `l` to `l + 1` and has
          shape `(n_{l+1}, n_l)`.
        - `biases`: `L` biases of shapes `(n_l,)`.
        - `lagrangians`: one Lagrangian per layer, or one for all.

        Integer or boolean weights and biases are converted to the default floating
        dtype.
        """
        self.weights = tuple(float_array(w) for w in weights)
        self.biases = tuple(float_array(b) for b in biases)
        if callable(lagrangians):
            lagrangians = (lagrangians,) * len(self.biases)
        self.lagrangians = tuple(lagrangians)

    def __check_init__(self):
        call = "LayeredHopfield"
        if len(self.biases) < 2:
            raise ValueError(
                f"`{call}(biases=...)` needs at least two layers; got "
                f"{len(self.biases)}."
            )
        if len(self.weights) != len(self.biases) - 1:
            raise ValueError(
                f"`{call}(weights=...)` needs {len(self.biases) - 1} matrices for "
                f"{len(self.biases)} layers; got {len(self.weights)}."
            )
        if len(self.lagrangians) != len(self.biases):
            raise ValueError(
                f"`{call}(lagrangians=...)` needs {len(self.biases)} Lagrangians; got "
                f"{len(self.lagrangians)}."
            )
        for level, b in enumerate(self.biases):
            check_shape(call, f"biases[{level}]", b, (None,))
            check_finite(call, f"biases[{level}]", b)
        for level, w in enumerate(self.weights):
            n_in, n_out = self.biases[level].shape[0], self.biases[level + 1].shape[0]
            check_shape(call, f"weights[{level}]", w, (n_out, n_in))
            check_finite(call, f"weights[{level}]", w)

    def vector_field(
        self, t: RealScalarLike, y: tuple[Float[Array, " _"], ...], args: Args
    ):
        del t, args
        self._check_state(y)
        out = layered_hopfield_vector_field(
            y, self.weights, self.biases, self.lagrangians
        )
        return list(out) if isinstance(y, list) else out

    def energy(self, y: tuple[Float[Array, " _"], ...], args: Args) -> Scalar:
        del args
        self._check_state(y)
        return layered_hopfield_energy(y, self.weights, self.biases, self.lagrangians)

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

    def _check_state(self, y):
        if len(y) != len(self.biases):
            raise ValueError(
                f"`LayeredHopfield` expected a state with {len(self.biases)} layers; "
                f"got {len(y)}."
            )
        for level, (yl, b) in enumerate(zip(y, self.biases)):
            check_shape("LayeredHopfield.vector_field", f"y[{level}]", yl, b.shape)
