r"""Oscillator couplings over feature maps: convolution and attention (AKOrN; MODELS.md
§2, discrete update, and §5).

A *feature map* `f` of shape `(*grid, C)` (pixels or tokens, then channels) holds
$G = C / D$ oscillators of dimension $D$ at every grid position: channel `g * D + a` is
coordinate `a` of oscillator group `g`. Its *oscillator view* is the `(N, D)` array
`f.reshape(-1, D)`, $N = \prod(\text{grid})\, G$: oscillator `p * G + g` is group `g`
at grid position `p` (row-major). Both are the same numbers; nothing is copied.

A *feature coupling* ([`hopkur.AbstractFeatureCoupling`][]) is a map $f \mapsto J(f)$
on feature maps: a convolution ([`hopkur.ConvCoupling`][]), self-attention over tokens
([`hopkur.AttentionCoupling`][]), or the layer couplings of `hopkur.nn`.
[`hopkur.GroupedCoupling`][] makes one an oscillator coupling of [`hopkur.Kuramoto`][]
on the oscillator view, so that the same coupling runs in continuous time
([`hopkur.simulate`][]), in discrete AKOrN steps ([`hopkur.akorn_steps`][]) and in
[`hopkur.nn.KuramotoLayer`][] (which is those discrete steps).
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ._custom_types import Scalar
from ._kuramoto import _check_num_oscillators, AbstractOscillatorCoupling
from ._misc import tolerance


def blocks_commute(
    matrices: Float[Array, "*r m k"], omega: Float[Array, "d d"]
) -> Bool[Array, ""]:
    r"""Whether every $D\times D$ block of the channel maps `matrices` commutes with
    $\Omega$ (`m` and `k` multiples of $D$): then the linear map they define commutes
    with the common rotation $e^{t\Omega}$ of every oscillator, and its interaction
    energy is invariant under it."""
    d = omega.shape[-1]
    *lead, m, k = matrices.shape
    blocks = matrices.reshape(*lead, m // d, d, k // d, d)
    left = jnp.einsum("...iajb,bc->...iajc", blocks, omega)
    right = jnp.einsum("ab,...ibjc->...iajc", omega, blocks)
    return jnp.max(jnp.abs(left - right)) <= tolerance(matrices, omega)


def multi_head_attention(
    q: Float[Array, "l c"],
    k: Float[Array, "l c"],
    v: Float[Array, "l c"],
    num_heads: int,
    mask: Bool[Array, "l l"] | None = None,
) -> Float[Array, "l c"]:
    r"""Multi-head scaled dot-product attention over tokens,
    $\mathrm{concat}_h\big(\mathrm{softmax}(q_h k_h^\top/\sqrt{d_h})\, v_h\big)$,
    with the channels split into `num_heads` heads of $d_h = C / h$ channels.

    **Arguments:**

    - `q`, `k`, `v`: queries, keys and values, shape `(tokens, C)`.
    - `num_heads`: the number of heads $h$ (dividing $C$).
    - `mask`: optional boolean `(tokens, tokens)`; `mask[i, j]` lets token `i` attend
      to token `j`. Every row needs at least one `True`.

    **Returns:**

    The attention output, shape `(tokens, C)`.
    """
    tokens, channels = q.shape
    width = channels // num_heads
    q = q.reshape(tokens, num_heads, width)
    k = k.reshape(tokens, num_heads, width)
    v = v.reshape(tokens, num_heads, width)
    logits = jnp.einsum("ihd,jhd->hij", q, k) / math.sqrt(width)
    if mask is not None:
        logits = jnp.where(jnp.broadcast_to(mask, logits.shape), logits, -jnp.inf)
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("hij,jhd->ihd", weights, v).reshape(tokens, channels)


class AbstractFeatureCoupling(eqx.Module):
    r"""Abstract base class of the couplings over feature maps: a map
    $f \mapsto J(f)$ on arrays of shape `(*grid, C)` (the *drive* of every oscillator
    coordinate; see the module docstring for the channel layout).

    Used as the coupling of [`hopkur.nn.KuramotoLayer`][], and in [`hopkur.Kuramoto`][]
    through [`hopkur.GroupedCoupling`][]. The interaction energy is
    $E_{int}(f) = -\tfrac12 \langle f, J(f)\rangle$; it is a Lyapunov function of the
    flow (and of small discrete steps) exactly when $J$ is a fixed symmetric linear
    map (`is_symmetric`), with the conditions on $\Omega$ of [`hopkur.Kuramoto`][].
    `is_symmetric` and `is_rotation_invariant` may be conservative: false whenever the
    coupling cannot show the property from its parameters, never true without it.
    """

    @abc.abstractmethod
    def __call__(self, f: Float[Array, "*grid c"]) -> Float[Array, "*grid c"]:
        """The drive $J(f)$, the same shape as `f`."""

    @abc.abstractmethod
    def is_symmetric(self) -> Bool[Array, ""]:
        r"""Whether $J$ is a fixed symmetric linear map, so that $J(f) = -\nabla
        E_{int}(f)$."""

    @abc.abstractmethod
    def is_rotation_invariant(self, omega: Float[Array, "d d"]) -> Bool[Array, ""]:
        r"""Whether $J$ commutes with the common rotation $e^{t\Omega}$ of every
        oscillator (so that $E_{int}$ is invariant under it)."""


class ConvCoupling(AbstractFeatureCoupling):
    r"""A 2-D convolutional coupling for images: $J(f) = w \star f$ (cross-correlation,
    zero "same" padding, no bias).

    Feature maps have shape `(height, width, C)`; the kernel has shape `(C, C, k, k)`
    (output channel, input channel, then the window). Viewed per oscillator, $J$ is a
    block coupling whose $D\times D$ blocks are the kernel's channel blocks at each
    offset. It is symmetric when $w_{oi}(\delta) = w_{io}(-\delta)$ (the kernel equals
    its channel-transposed, spatially flipped self), including at the borders; on grids
    at least as large as the kernel, only then. `is_symmetric` checks this condition.
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

    def __call__(self, f: Float[Array, "h w c"]) -> Float[Array, "h w c"]:
        if f.ndim != 3 or f.shape[-1] != self.weight.shape[0]:
            raise ValueError(
                f"`ConvCoupling` expects a feature map of shape (height, width, "
                f"{self.weight.shape[0]}); got {f.shape}."
            )
        # A sum of k^2 shifted channel matmuls rather than `lax.conv_general_dilated`:
        # the same arithmetic, but under `vmap` and `grad` (a batch of images, a
        # gradient for the shared kernel) XLA's CPU convolution becomes a grouped
        # convolution that ran a training step of the object-discovery network 10x
        # slower (12.8 s against 1.24 s for 64 maps of 10x10x64, k = 5, 8 steps), while
        # matmuls batch and reduce the kernel's cotangent directly, on every backend.
        k = self.weight.shape[-1]
        pad = k // 2
        h, w, _ = f.shape
        padded = jnp.pad(f, ((pad, pad), (pad, pad), (0, 0)))
        out = jnp.zeros((h, w, self.weight.shape[0]), jnp.result_type(f, self.weight))
        for a in range(k):
            for b in range(k):
                out = out + padded[a : a + h, b : b + w] @ self.weight[:, :, a, b].T
        return out

    def is_symmetric(self):
        adjoint = jnp.flip(jnp.swapaxes(self.weight, 0, 1), axis=(2, 3))
        return jnp.max(jnp.abs(self.weight - adjoint)) <= tolerance(self.weight)

    def is_rotation_invariant(self, omega):
        return blocks_commute(jnp.moveaxis(self.weight, (0, 1), (-2, -1)), omega)


class AttentionCoupling(AbstractFeatureCoupling):
    r"""Multi-head self-attention over tokens as the coupling (AKOrN's token coupling).

    $J(f) = \mathrm{attention}(q, k, v)\, W_o$ ([`hopkur.multi_head_attention`][])
    with $q = (f + p) W_q$, $k = (f + p) W_k$, $v = f W_v$, where $p$ is a learned
    positional embedding per token, so that attention can tell positions apart (the
    oscillators themselves are position-free). An optional boolean `mask` of shape
    `(tokens, tokens)` restricts which tokens attend to which.

    **Not a gradient system.** The attention weights depend on the state, so $J$ is
    not a fixed linear map and the drive is not the gradient of
    $E_{int} = -\tfrac12\langle f, J(f)\rangle$: `is_symmetric` is false, and the
    energy is a diagnostic (AKOrN uses it for energy-based voting), not a Lyapunov
    function. It would be one only if the weights did not depend on the state (e.g.
    $W_q = 0$ or $W_k = 0$: uniform attention over the mask) and the resulting linear
    map were symmetric; this class does not detect that case and never claims it.
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

    def __call__(self, f: Float[Array, "l c"]) -> Float[Array, "l c"]:
        if f.shape != self.position.shape:
            raise ValueError(
                f"`AttentionCoupling` expects a feature map of shape "
                f"{self.position.shape}; got {f.shape}."
            )
        fp = f + self.position
        out = multi_head_attention(
            fp @ self.query,
            fp @ self.key_weight,
            f @ self.value,
            self.num_heads,
            self.mask,
        )
        return out @ self.output

    def is_symmetric(self):
        return jnp.array(False)

    def is_rotation_invariant(self, omega):
        del omega
        return jnp.array(False)


class GroupedCoupling(AbstractOscillatorCoupling):
    r"""A feature coupling acting on the oscillator view of its feature maps: the
    oscillator coupling of [`hopkur.Kuramoto`][] with drive
    $d(X) = \mathrm{view}\big(J(\mathrm{view}^{-1}(X))\big)$ and interaction energy
    $E_{int}(X) = -\tfrac12 \sum_i x_i \cdot d_i(X)$, for states $X$ of shape
    `(N, D)`, $N = \prod(\text{shape}) / D$ (see the module docstring for the layout).

    Symmetric (a gradient system, under the conditions of [`hopkur.Kuramoto`][]) when
    the feature coupling is a fixed symmetric linear map; never for attention.

    !!! example

        ```python
        conv = hopkur.ConvCoupling(8, 3, key=key)
        model = hopkur.Kuramoto(hopkur.GroupedCoupling(conv, (6, 6, 8), dim=4))
        x0 = hopkur.random_sphere((6 * 6 * 2,), 4, key=key)
        sol = hopkur.simulate(model, x0, t1=5.0)
        ```
    """

    coupling: AbstractFeatureCoupling
    shape: tuple[int, ...] = eqx.field(static=True)
    group_dim: int = eqx.field(static=True)

    def __init__(
        self, coupling: AbstractFeatureCoupling, shape: tuple[int, ...], dim: int
    ):
        """**Arguments:**

        - `coupling`: an [`hopkur.AbstractFeatureCoupling`][].
        - `shape`: the feature-map shape `(*grid, C)` it acts on.
        - `dim`: the oscillator dimension $D$ (at least 2, dividing $C$).
        """
        shape = tuple(int(s) for s in shape)
        if not isinstance(coupling, AbstractFeatureCoupling):
            raise ValueError(
                "`GroupedCoupling(coupling=...)` must be a hopkur feature coupling "
                f"(e.g. ConvCoupling, AttentionCoupling); got "
                f"{type(coupling).__name__}."
            )
        if not shape or dim < 2 or shape[-1] % dim:
            raise ValueError(
                f"`GroupedCoupling(shape={shape}, dim={dim})` needs a shape (*grid, C) "
                "and `dim >= 2` dividing C."
            )
        self.coupling = coupling
        self.shape = shape
        self.group_dim = dim

    @property
    def num_oscillators(self):
        return math.prod(self.shape) // self.group_dim

    @property
    def dim(self):
        return self.group_dim

    def _hoisted(self, x):
        return self

    def check_size(self, n):
        _check_num_oscillators(self, n)

    def drive(self, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return self.coupling(x.reshape(self.shape)).reshape(x.shape)

    def energy(self, x: Float[Array, "n d"]) -> Scalar:
        return -0.5 * jnp.sum(x * self.drive(x))

    def is_symmetric(self):
        return jnp.asarray(self.coupling.is_symmetric())

    def is_rotation_invariant(self, omega):
        return jnp.asarray(self.coupling.is_rotation_invariant(omega))
