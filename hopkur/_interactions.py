r"""Scalar interaction functions $\varphi_{ij}(s)$ of the inner product
$s = x_i \cdot x_j$.

Each interaction holds per-edge parameter arrays (shape `(E,)`, or scalars shared by all
edges) and gives the potential $\varphi(s)$ and its derivative $\varphi'(s)$,
elementwise over a vector `s` of shape `(E,)`. The oscillator energy is
$-\sum_{(i,j)} \varphi_{ij}(x_i \cdot x_j)$ (hopkur's sign convention: positive coupling
synchronises).
"""

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._misc import check_finite


def _param(x) -> Array:
    return jnp.asarray(x)


def _check_params(call: str, **params) -> None:
    for name, value in params.items():
        if jnp.ndim(value) > 1:
            raise ValueError(
                f"`{call}({name}=...)` must be a scalar or have shape (E,); got "
                f"{jnp.shape(value)}."
            )
        check_finite(call, name, value)


def _autodiff_derivative(potential, s):
    # phi'(s) by one forward-mode derivative of an elementwise potential
    _, ds = jax.jvp(potential, (s,), (jnp.ones_like(s),))
    return ds


class AbstractInteraction(eqx.Module):
    r"""Abstract base class for an interaction $\varphi(s)$ applied edge by edge.

    Subclasses define `potential` and `derivative`: a closed form where there is one,
    else forward-mode autodiff of `potential` (as [`hopkur.MLPInteraction`][] and
    [`hopkur.FunctionInteraction`][] do; valid because `potential` acts elementwise on
    `s`).
    """

    @abc.abstractmethod
    def potential(self, s: Float[Array, " e"]) -> Float[Array, " e"]:
        r"""$\varphi(s)$, elementwise over the edges."""

    @abc.abstractmethod
    def derivative(self, s: Float[Array, " e"]) -> Float[Array, " e"]:
        r"""$\varphi'(s)$, elementwise over the edges."""

    #: The names of the fields that may hold per-edge parameters (shape `(E,)`), or
    #: `None`: every one-dimensional array leaf may (set by interactions whose other
    #: arrays can be one-dimensional too, as an MLP's).
    per_edge_fields: ClassVar[tuple[str, ...] | None] = None

    def num_edges(self) -> int | None:
        """The number of edges the parameters are shaped for (`None` if all scalar)."""
        if self.per_edge_fields is None:
            tree = self
        else:
            tree = [getattr(self, name) for name in self.per_edge_fields]
        sizes = {
            jnp.shape(leaf)[0]
            for leaf in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
            if jnp.ndim(leaf) == 1
        }
        return sizes.pop() if len(sizes) == 1 else None


# h(s) and its antiderivative H(s) of the closed forms phi(s) = a s + b H(s)
_KINDS: dict[str, tuple[Callable, Callable]] = {
    "zero": (jnp.zeros_like, jnp.zeros_like),
    "relu": (jax.nn.relu, lambda s: 0.5 * jax.nn.relu(s) ** 2),
    # |s| <= 1 on the spheres, so log(cosh(s)) cannot overflow here.
    "tanh": (jnp.tanh, lambda s: jnp.log(jnp.cosh(s))),
    "sigmoid": (jax.nn.sigmoid, jax.nn.softplus),
}


class ClosedForm(AbstractInteraction):
    r"""The closed form $\varphi(s) = a s + b H(s)$, $\varphi'(s) = a + b h(s)$ of
    an interaction, with $h$ one of `"zero"` ($h = H = 0$: linear), `"relu"`
    ($H = \tfrac12\operatorname{relu}^2$), `"tanh"` ($H = \log\cosh$) or
    `"sigmoid"` ($H = \operatorname{softplus}$); `a` and `b` scalars, per edge
    `(E,)`, or any shape the overlaps have (the dense formulation scatters them into
    $N\times N$ matrices). What the fast paths (compiled kernels, dense-masked
    formulation) evaluate; private."""

    a: Array
    b: Array
    kind: str = eqx.field(static=True)

    def __check_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(
                f"`ClosedForm(kind=...)` must be one of {sorted(_KINDS)}; got "
                f"{self.kind!r}."
            )

    def potential(self, s):
        if self.kind == "zero":
            return self.a * s
        return self.a * s + self.b * _KINDS[self.kind][1](s)

    def derivative(self, s):
        if self.kind == "zero":
            return jnp.broadcast_to(self.a, jnp.shape(s)).astype(jnp.result_type(s))
        return self.a + self.b * _KINDS[self.kind][0](s)


class AbstractClosedFormInteraction(AbstractInteraction):
    r"""An interaction $\varphi'(s) = a + b\,h(s)$ with $h$ one of the closed forms
    of `ClosedForm`: the capability that the fast paths (compiled kernels, the dense
    formulation at low density) look for. Subclasses (also users' subclasses of the
    built-in ones) keep them."""

    @abc.abstractmethod
    def closed_form(self) -> ClosedForm:
        """The interaction as `ClosedForm(a, b, kind)`, with the interaction's own
        parameter arrays (so that derivatives reach them)."""


def closed_form(interaction: AbstractInteraction) -> ClosedForm | None:
    """The closed form of an interaction that declares one
    (`AbstractClosedFormInteraction`), else `None` (learned interactions: MLP, user
    functions)."""
    if isinstance(interaction, ClosedForm):
        return interaction
    if isinstance(interaction, AbstractClosedFormInteraction):
        return interaction.closed_form()
    return None


class LinearInteraction(AbstractClosedFormInteraction):
    r"""$\varphi(s) = K s$, $\varphi'(s) = K$: the classical Kuramoto coupling."""

    k: Float[Array, "*e"] = eqx.field(converter=_param)

    def __check_init__(self):
        _check_params("LinearInteraction", k=self.k)

    def potential(self, s):
        return self.k * s

    def derivative(self, s):
        return jnp.broadcast_to(self.k, jnp.shape(s)).astype(jnp.result_type(s))

    def closed_form(self):
        return ClosedForm(self.k, jnp.zeros((), jnp.result_type(self.k)), "zero")


LinearInteraction.__init__.__doc__ = """**Arguments:**

- `k`: the coupling strength $K$, a scalar or one value per edge, shape `(E,)`.
"""


class ReluInteraction(AbstractClosedFormInteraction):
    r"""$\varphi(s) = A s + \tfrac12 B \operatorname{relu}(s)^2$,
    $\varphi'(s) = A + B \operatorname{relu}(s)$."""

    a: Float[Array, "*e"] = eqx.field(converter=_param)
    b: Float[Array, "*e"] = eqx.field(converter=_param)

    def __check_init__(self):
        _check_params("ReluInteraction", a=self.a, b=self.b)

    def potential(self, s):
        r = jax.nn.relu(s)
        return self.a * s + 0.5 * self.b * r * r

    def derivative(self, s):
        return self.a + self.b * jax.nn.relu(s)

    def closed_form(self):
        return ClosedForm(self.a, self.b, "relu")


class TanhInteraction(AbstractClosedFormInteraction):
    r"""$\varphi(s) = A s + B \log\cosh s$, $\varphi'(s) = A + B \tanh s$."""

    a: Float[Array, "*e"] = eqx.field(converter=_param)
    b: Float[Array, "*e"] = eqx.field(converter=_param)

    def __check_init__(self):
        _check_params("TanhInteraction", a=self.a, b=self.b)

    def potential(self, s):
        # |s| <= 1 on the spheres, so log(cosh(s)) cannot overflow here.
        return self.a * s + self.b * jnp.log(jnp.cosh(s))

    def derivative(self, s):
        return self.a + self.b * jnp.tanh(s)

    def closed_form(self):
        return ClosedForm(self.a, self.b, "tanh")


class SigmoidInteraction(AbstractClosedFormInteraction):
    r"""$\varphi(s) = A s + B \operatorname{softplus}(s)$,
    $\varphi'(s) = A + B \sigma(s)$."""

    a: Float[Array, "*e"] = eqx.field(converter=_param)
    b: Float[Array, "*e"] = eqx.field(converter=_param)

    def __check_init__(self):
        _check_params("SigmoidInteraction", a=self.a, b=self.b)

    def potential(self, s):
        return self.a * s + self.b * jax.nn.softplus(s)

    def derivative(self, s):
        return self.a + self.b * jax.nn.sigmoid(s)

    def closed_form(self):
        return ClosedForm(self.a, self.b, "sigmoid")


for _cls in (ReluInteraction, TanhInteraction, SigmoidInteraction):
    _cls.__init__.__doc__ = """**Arguments:**

- `a`: the linear coefficient $A$, a scalar or shape `(E,)`.
- `b`: the nonlinear coefficient $B$, a scalar or shape `(E,)`.
"""


class MLPInteraction(AbstractInteraction):
    r"""A learned interaction: $\varphi(s) = m(s)$ with $m$ a small scalar MLP shared by
    all edges, optionally scaled per edge, $\varphi_e(s) = w_e\, m(s)$.
    $\varphi'$ comes from autodiff."""

    per_edge_fields: ClassVar[tuple[str, ...] | None] = ("scale",)
    mlp: eqx.nn.MLP
    scale: Float[Array, "*e"] = eqx.field(converter=_param)

    def __init__(
        self,
        width_size: int = 16,
        depth: int = 2,
        *,
        scale: ArrayLike = 1.0,
        activation: Callable = jnp.tanh,
        key: PRNGKeyArray,
        dtype: Any = None,
    ):
        """**Arguments:**

        - `width_size`: the width of the hidden layers.
        - `depth`: the number of hidden layers.
        - `scale`: the per-edge factor $w_e$ (scalar or shape `(E,)`). (Keyword only
          argument.)
        - `activation`: the hidden activation. (Keyword only argument.)
        - `key`: a `jax.random.key` for the initialisation. (Keyword only argument.)
        - `dtype`: the parameters' dtype. (Keyword only argument.)
        """
        self.mlp = eqx.nn.MLP(
            "scalar",
            "scalar",
            width_size,
            depth,
            activation=activation,
            key=key,
            dtype=dtype,
        )
        self.scale = jnp.asarray(scale, dtype=dtype)

    def __check_init__(self):
        _check_params("MLPInteraction", scale=self.scale)

    def potential(self, s):
        return self.scale * jax.vmap(self.mlp)(s)

    def derivative(self, s):
        return _autodiff_derivative(self.potential, s)


class FunctionInteraction(AbstractInteraction):
    r"""Any user function $\varphi(s, \theta)$, differentiated by autodiff.

    `fn(s, params)` must act elementwise on `s` (shape `(E,)`) and return the same
    shape; `params` is any pytree (trainable if it holds arrays).

    !!! example

        ```python
        phi = hopkur.FunctionInteraction(lambda s, p: p * jnp.sin(s), jnp.array(0.5))
        ```
    """

    fn: Callable
    params: Any = None

    def potential(self, s):
        return self.fn(s, self.params)

    def derivative(self, s):
        return _autodiff_derivative(self.potential, s)


FunctionInteraction.__init__.__doc__ = """**Arguments:**

- `fn`: a function `(s, params) -> phi(s)`, elementwise in `s`.
- `params`: its parameters (any pytree), passed as the second argument.
"""
