r"""Linear feature couplings $J$ for the AKOrN Kuramoto layer (MODELS.md §2, discrete
update; §5): a dense map of the whole state and fixed token relations.

Like the core's [`hopkur.ConvCoupling`][] and [`hopkur.AttentionCoupling`][], they are
[`hopkur.AbstractFeatureCoupling`][]s: maps of a state of shape `(*spatial, channels)`
(channel `g * n + a` is coordinate `a` of oscillator group `g`) to the drive $Jx$ of the
same shape, usable in [`hopkur.nn.KuramotoLayer`][] and, through
[`hopkur.GroupedCoupling`][], in [`hopkur.Kuramoto`][].
"""

import math

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from .._feature_couplings import AbstractFeatureCoupling, blocks_commute
from .._misc import tolerance


def _symmetric(flag: bool, maps: Float[Array, "*r m m"]) -> Bool[Array, ""]:
    # Symmetrised on use, or symmetric as it is.
    if flag:
        return jnp.array(True)
    return jnp.max(jnp.abs(maps - jnp.swapaxes(maps, -1, -2))) <= tolerance(maps)


class LinearCoupling(AbstractFeatureCoupling):
    r"""A dense coupling over all oscillator coordinates: $Jx = W\,\mathrm{vec}(x)$.

    $W$ is a `(size, size)` matrix acting on the flattened state; viewed per
    oscillator it is a block map with $n \times n$ blocks $J_{ij}$. With
    `symmetric=True`, $W$ is symmetrised on use, $(W + W^\top)/2$.
    """

    weight: Float[Array, "m m"]
    symmetric: bool = eqx.field(static=True)

    def __init__(
        self,
        size: int,
        *,
        symmetric: bool = False,
        scale: float = 1.0,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `size`: the number of coordinates of the state, `prod(spatial) * channels`.
        - `symmetric`: whether to symmetrise the weight on use. (Keyword only argument.)
        - `scale`: the initial weights are normal with standard deviation
            `scale / sqrt(size)`. (Keyword only argument.)
        - `dtype`: the floating dtype; JAX's default if `None`. (Keyword only
            argument.)
        - `key`: a `jax.random.key` for initialisation. (Keyword only argument.)
        """
        kwargs = {} if dtype is None else {"dtype": dtype}
        self.weight = scale / math.sqrt(size) * jr.normal(key, (size, size), **kwargs)
        self.symmetric = symmetric

    @property
    def matrix(self) -> Float[Array, "m m"]:
        """The matrix $J$ in use (symmetrised if `symmetric`)."""
        if self.symmetric:
            return 0.5 * (self.weight + self.weight.T)
        return self.weight

    def __call__(self, x: Float[Array, "*spatial c"]) -> Float[Array, "*spatial c"]:
        if x.size != self.weight.shape[0]:
            raise ValueError(
                f"`LinearCoupling(size={self.weight.shape[0]})` got a state with "
                f"{x.size} coordinates (shape {x.shape})."
            )
        return (self.matrix @ x.reshape(-1)).reshape(x.shape)

    def is_symmetric(self):
        return _symmetric(self.symmetric, self.matrix)

    def is_rotation_invariant(self, omega):
        return blocks_commute(self.matrix, omega)


class RelationalCoupling(AbstractFeatureCoupling):
    r"""A coupling over tokens through fixed relations, with learned channel maps.

    $[Jx]_i = \sum_r \sum_j A^{(r)}_{ij}\, W_r\, x_j$ for fixed 0/1 relation matrices
    $A^{(r)}$ (tokens × tokens; e.g. "same row", "same column", "same box" and
    "self" for Sudoku) and learned `(channels, channels)` maps $W_r$ (block maps
    between oscillator groups). $J$ is symmetric when every $A^{(r)}$ and, with
    `symmetric=True`, every $W_r$ (symmetrised on use) is.
    """

    relations: Bool[Array, "r l l"]
    weight: Float[Array, "r c c"]
    symmetric: bool = eqx.field(static=True)

    def __init__(
        self,
        relations: Bool[ArrayLike, "r l l"],
        channels: int,
        *,
        symmetric: bool = False,
        scale: float = 1.0,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `relations`: boolean array `(num_relations, tokens, tokens)`; not trained.
        - `channels`: the number of channels $C$.
        - `symmetric`: symmetrise each $W_r$ on use. (Keyword only argument.)
        - `scale`: initial weights have standard deviation
            `scale / sqrt(C * max_degree)`. (Keyword only argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        relations = np.asarray(relations)
        if relations.ndim != 3 or relations.shape[1] != relations.shape[2]:
            raise ValueError(
                "`RelationalCoupling(relations=...)` must have shape (num_relations, "
                f"tokens, tokens); got {relations.shape}."
            )
        kwargs = {} if dtype is None else {"dtype": dtype}
        degree = max(1, int(relations.astype(np.int64).sum(-1).max()))
        num = relations.shape[0]
        std = scale / math.sqrt(channels * degree)
        self.relations = jnp.asarray(relations, dtype=bool)
        self.weight = std * jr.normal(key, (num, channels, channels), **kwargs)
        self.symmetric = symmetric

    @property
    def maps(self) -> Float[Array, "r c c"]:
        """The channel maps $W_r$ in use."""
        if self.symmetric:
            return 0.5 * (self.weight + jnp.swapaxes(self.weight, -1, -2))
        return self.weight

    def __call__(self, x: Float[Array, "l c"]) -> Float[Array, "l c"]:
        num, tokens, _ = self.relations.shape
        if x.ndim != 2 or x.shape != (tokens, self.weight.shape[-1]):
            raise ValueError(
                f"`RelationalCoupling` expects a state of shape ({tokens}, "
                f"{self.weight.shape[-1]}); got {x.shape}."
            )
        a = self.relations.astype(x.dtype)
        gathered = jnp.einsum("rij,jc->irc", a, x).reshape(tokens, -1)
        # [Jx]_i = sum_r W_r (A_r x)_i, as one matrix product over (relation, channel).
        maps = jnp.swapaxes(self.maps, -1, -2).reshape(-1, x.shape[-1])
        return gathered @ maps

    def is_symmetric(self):
        rel = self.relations
        return _symmetric(self.symmetric, self.maps) & jnp.all(
            rel == jnp.swapaxes(rel, -1, -2)
        )

    def is_rotation_invariant(self, omega):
        return blocks_commute(self.maps, omega)
