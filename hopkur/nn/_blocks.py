r"""Readouts and AKOrN blocks: [Kuramoto layer → readout → next stimulus].

See MODELS.md §5.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._layer import KuramotoLayer, KuramotoResult, random_oscillators


def affine(y: Float[Array, "*s a"], weight, bias) -> Float[Array, "*s b"]:
    """`y @ weight.T + bias` over the last axis (explicit broadcasting of the bias)."""
    out = y @ weight.T
    return out + jnp.broadcast_to(bias, out.shape)


class Readout(eqx.Module):
    r"""The AKOrN readout $m_k = \|\sum_i U_{ki} x_i\| + b_k$, applied per position.

    At every spatial position (pixel or token), the oscillator groups $x_i \in
    \mathbb{R}^n$ are mapped by blocks $U_{ki}$ (each `out_dim × n`) to vectors whose
    norms, plus a bias, are the `features` outputs. The norm makes the readout
    invariant under a common rotation of the oscillators it reads (per position).
    """

    weight: Float[Array, "ko c"]
    bias: Float[Array, " k"]
    features: int = eqx.field(static=True)
    out_dim: int = eqx.field(static=True)

    def __init__(
        self,
        channels: int,
        features: int,
        out_dim: int = 4,
        *,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `channels`: the number of input channels (oscillator groups × $n$).
        - `features`: the number $K$ of outputs $m_k$ per position.
        - `out_dim`: the dimension of each $\\sum_i U_{ki} x_i$.
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        kwargs = {} if dtype is None else {"dtype": dtype}
        std = 1 / math.sqrt(channels)
        self.weight = std * jr.normal(key, (features * out_dim, channels), **kwargs)
        self.bias = jnp.zeros(features, **kwargs)
        self.features = features
        self.out_dim = out_dim

    def __call__(self, x: Float[Array, "*s c"]) -> Float[Array, "*s k"]:
        """**Arguments:**

        - `x`: oscillator states, shape `(*spatial, channels)`.

        **Returns:**

        The features $m$, shape `(*spatial, features)`.
        """
        if x.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"`Readout` expects {self.weight.shape[1]} channels; got shape "
                f"{x.shape}."
            )
        u = (x @ self.weight.T).reshape(*x.shape[:-1], self.features, self.out_dim)
        norms = jnp.sqrt(jnp.sum(u * u, axis=-1) + 1e-12)
        return norms + jnp.broadcast_to(self.bias, norms.shape)


class AKOrNBlock(eqx.Module):
    r"""One AKOrN block: Kuramoto layer → readout → stimulus of the next block.

    Given a stimulus $c$ (and initial oscillators $x^{(0)}$), the block runs the layer
    for $T$ steps, reads out $m = \mathrm{readout}(x^{(T)})$ and maps it per position
    to the next block's stimulus $c' = W_2\,\mathrm{gelu}(W_1 m + b_1) + b_2$.
    """

    layer: KuramotoLayer
    readout: Readout
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(
        self,
        layer: KuramotoLayer,
        readout: Readout,
        out_channels: int,
        *,
        hidden: int | None = None,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `layer`: the [`hopkur.nn.KuramotoLayer`][].
        - `readout`: the [`hopkur.nn.Readout`][] reading `layer`'s channels.
        - `out_channels`: the number of channels of the stimulus produced.
        - `hidden`: the width of the stimulus network; defaults to `out_channels`.
            (Keyword only argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        if readout.weight.shape[1] != layer.channels:
            raise ValueError(
                f"`AKOrNBlock(readout=...)` reads {readout.weight.shape[1]} channels "
                f"but the layer has {layer.channels}."
            )
        hkey, okey = jr.split(key)
        hidden = out_channels if hidden is None else hidden
        self.layer = layer
        self.readout = readout
        self.hidden = eqx.nn.Linear(readout.features, hidden, key=hkey, dtype=dtype)
        self.out = eqx.nn.Linear(hidden, out_channels, key=okey, dtype=dtype)

    def stimulus(self, m: Float[Array, "*s k"]) -> Float[Array, "*s c"]:
        """Maps readout features to the next stimulus, per position."""
        h = jax.nn.gelu(affine(m, self.hidden.weight, self.hidden.bias))
        return affine(h, self.out.weight, self.out.bias)

    def __call__(
        self,
        x: Float[Array, "*s c"],
        c: Float[Array, "*s c"],
        *,
        steps: int | None = None,
    ) -> tuple[Float[Array, "*s k"], Float[Array, "*s c2"], KuramotoResult]:
        """**Arguments:**

        - `x`: initial oscillators, shape `(*spatial, channels)`.
        - `c`: the stimulus, same shape.
        - `steps`: overrides the layer's number of steps. (Keyword only argument.)

        **Returns:**

        `(m, next_c, result)`: the readout features, the next stimulus, and the
        layer's [`hopkur.nn.KuramotoResult`][].
        """
        result = self.layer(x, c, steps=steps)
        m = self.readout(result.x)
        return m, self.stimulus(m), result


class AKOrN(eqx.Module):
    r"""A stack of [`hopkur.nn.AKOrNBlock`][]s for images (convolutional couplings) or
    tokens (attention couplings).

    The input is the first block's stimulus $c_1$ (produced by the user's encoder).
    Block $\ell$ starts from random oscillators, relaxes under $c_\ell$, and its readout
    yields $c_{\ell+1}$; the network returns the last block's readout features $m_L$
    and the energies of every block.
    """

    blocks: tuple[AKOrNBlock, ...]

    def __init__(self, blocks):
        """**Arguments:**

        - `blocks`: a sequence of [`hopkur.nn.AKOrNBlock`][]; block $\\ell+1$'s layer
            must have as many channels as block $\\ell$ produces.
        """
        blocks = tuple(blocks)
        if not blocks:
            raise ValueError("`AKOrN(blocks=...)` needs at least one block.")
        for i in range(len(blocks) - 1):
            produced = blocks[i].out.out_features
            wanted = blocks[i + 1].layer.channels
            if produced != wanted:
                raise ValueError(
                    f"`AKOrN(blocks=...)`: block {i} produces {produced} channels but "
                    f"block {i + 1} has {wanted}."
                )
        self.blocks = blocks

    def __call__(
        self, c: Float[Array, "*s c"], *, key: PRNGKeyArray
    ) -> tuple[Float[Array, "*s k"], list[Array]]:
        """**Arguments:**

        - `c`: the first block's stimulus, shape `(*spatial, channels)`.
        - `key`: a `jax.random.key` for the random initial oscillators. (Keyword only
            argument.)

        **Returns:**

        `(m, energies)`: the last readout features and a list of each block's energies
        along its trajectory.
        """
        energies = []
        m = c
        keys = jr.split(key, len(self.blocks))
        for block, k in zip(self.blocks, keys):
            x0 = random_oscillators(c.shape, block.layer.dim, key=k, dtype=c.dtype)
            m, next_c, result = block(x0, c)
            energies.append(result.energies)
            c = next_c
        return m, energies
