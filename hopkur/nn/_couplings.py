r"""Couplings $J$ for the AKOrN Kuramoto layer (MODELS.md §2, discrete update; §5).

A coupling maps an oscillator state `x` of shape `(*spatial, channels)` (channels
grouped into oscillators of dimension $n$, channel `g * n + a` being coordinate `a` of
oscillator group `g`) to the drive $Jx$ of the same shape. The layer's energy is
$E = -\tfrac12 \langle x, Jx\rangle - \langle c, x\rangle$.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray


class AbstractKuramotoCoupling(eqx.Module):
    r"""Abstract base class of the couplings of [`hopkur.nn.KuramotoLayer`][].

    A coupling is a map $x \mapsto Jx$ on states of shape `(*spatial, channels)`. For
    the linear couplings $J$ is a fixed matrix (the energy is a Lyapunov function of
    the small-step update when $J$ is symmetric and $\Omega = 0$); for attention $J$
    depends on $x$ and the energy is a diagnostic only.
    """

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "*spatial c"]) -> Float[Array, "*spatial c"]:
        """The drive $Jx$, the same shape as `x`."""

    def is_symmetric(self) -> bool:
        """Whether $J$ is a fixed symmetric linear map (so that $-Jx$ is the gradient of
        the interaction energy $-\\tfrac12\\langle x, Jx\\rangle$)."""
        return False


class LinearCoupling(AbstractKuramotoCoupling):
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

    def is_symmetric(self) -> bool:
        return self.symmetric


class ConvCoupling(AbstractKuramotoCoupling):
    r"""A 2-D convolutional coupling for images: $Jx = w \star x$ (same padding).

    States have shape `(height, width, channels)`; the kernel has shape
    `(channels, channels, k, k)` and no bias.
    """

    weight: Float[Array, "c c k k"]

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        *,
        scale: float = 1.0,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `channels`: the number of channels $C$.
        - `kernel_size`: an odd kernel size $k$.
        - `scale`: initial weights have standard deviation `scale / sqrt(C k^2)`.
            (Keyword only argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"`ConvCoupling(kernel_size=...)` must be a positive odd integer; got "
                f"{kernel_size}."
            )
        kwargs = {} if dtype is None else {"dtype": dtype}
        fan_in = channels * kernel_size**2
        shape = (channels, channels, kernel_size, kernel_size)
        self.weight = scale / math.sqrt(fan_in) * jr.normal(key, shape, **kwargs)

    def __call__(self, x: Float[Array, "h w c"]) -> Float[Array, "h w c"]:
        if x.ndim != 3 or x.shape[-1] != self.weight.shape[0]:
            raise ValueError(
                f"`ConvCoupling` expects a state of shape (height, width, "
                f"{self.weight.shape[0]}); got {x.shape}."
            )
        pad = self.weight.shape[-1] // 2
        out = jax.lax.conv_general_dilated(
            x.transpose(2, 0, 1)[None],
            self.weight,
            window_strides=(1, 1),
            padding=((pad, pad), (pad, pad)),
        )
        return out[0].transpose(1, 2, 0)


class AttentionCoupling(AbstractKuramotoCoupling):
    r"""Multi-head self-attention over tokens as the coupling (AKOrN's token coupling).

    $Jx = W_o\,\mathrm{concat}_h\big(\mathrm{softmax}(q_h k_h^\top/\sqrt{d_h})\,
    v_h\big)$ with $q = (x + p) W_q$, $k = (x + p) W_k$, $v = x W_v$, where $p$ is a
    learned positional embedding per token, so that attention can tell positions
    apart (the oscillators themselves are position-free). An optional boolean `mask`
    of shape `(tokens, tokens)` restricts which tokens attend to which.

    $J$ depends on $x$, so the layer energy is a diagnostic, not a Lyapunov function.
    """

    query: Float[Array, "c c"]
    key_weight: Float[Array, "c c"]
    value: Float[Array, "c c"]
    output: Float[Array, "c c"]
    position: Float[Array, "l c"]
    mask: Bool[Array, "l l"] | None
    num_heads: int = eqx.field(static=True)

    def __init__(
        self,
        channels: int,
        num_tokens: int,
        num_heads: int = 4,
        *,
        mask: Bool[ArrayLike, "l l"] | None = None,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `channels`: the number of channels $C$ (divisible by `num_heads`).
        - `num_tokens`: the number of tokens (for the positional embedding).
        - `num_heads`: the number of attention heads.
        - `mask`: optional boolean `(tokens, tokens)` array; `mask[i, j]` lets token
            `i` attend to token `j`. Every row needs at least one `True`. (Keyword only
            argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        if channels % num_heads:
            raise ValueError(
                f"`AttentionCoupling(channels={channels}, num_heads={num_heads})` "
                "needs `channels` divisible by `num_heads`."
            )
        kwargs = {} if dtype is None else {"dtype": dtype}
        qkey, kkey, vkey, okey, pkey = jr.split(key, 5)
        std = 1 / math.sqrt(channels)
        self.query = std * jr.normal(qkey, (channels, channels), **kwargs)
        self.key_weight = std * jr.normal(kkey, (channels, channels), **kwargs)
        self.value = std * jr.normal(vkey, (channels, channels), **kwargs)
        self.output = std * jr.normal(okey, (channels, channels), **kwargs)
        self.position = jr.normal(pkey, (num_tokens, channels), **kwargs)
        if mask is not None:
            mask = jnp.asarray(mask, dtype=bool)
            if mask.shape != (num_tokens, num_tokens):
                raise ValueError(
                    f"`AttentionCoupling(mask=...)` must have shape ({num_tokens}, "
                    f"{num_tokens}); got {mask.shape}."
                )
        self.mask = mask
        self.num_heads = num_heads

    def __call__(self, x: Float[Array, "l c"]) -> Float[Array, "l c"]:
        if x.shape != self.position.shape:
            raise ValueError(
                f"`AttentionCoupling` expects a state of shape {self.position.shape}; "
                f"got {x.shape}."
            )
        tokens, channels = x.shape
        h = self.num_heads
        xp = x + self.position
        q = (xp @ self.query).reshape(tokens, h, channels // h)
        k = (xp @ self.key_weight).reshape(tokens, h, channels // h)
        v = (x @ self.value).reshape(tokens, h, channels // h)
        logits = jnp.einsum("ihd,jhd->hij", q, k) / math.sqrt(channels // h)
        if self.mask is not None:
            logits = jnp.where(
                jnp.broadcast_to(self.mask, logits.shape), logits, -jnp.inf
            )
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("hij,jhd->ihd", weights, v).reshape(tokens, channels)
        return out @ self.output


class RelationalCoupling(AbstractKuramotoCoupling):
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

    def is_symmetric(self) -> bool:
        if not self.symmetric:
            return False
        rel = np.asarray(self.relations)
        return bool(np.all(rel == np.swapaxes(rel, -1, -2)))
