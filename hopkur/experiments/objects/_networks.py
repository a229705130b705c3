r"""Object-discovery networks: AKOrN with a convolutional or an attention coupling over
image patches, and the same networks without oscillators (AKOrN's ItrConv and ItrSA),
built on hopkur's core (MODELS.md §2 discrete update, §5 and §7).

Every network maps an image of shape `(H, W, C_in)` in $[0, 1]$ to

1. a stimulus $c = E\,\mathrm{patch}(2\,\mathrm{image} - 1) + b$: non-overlapping
   $p\times p$ patches, flattened and mapped linearly to $C$ channels (a stride-$p$
   convolution, as AKOrN's `patchfy`), on a grid of $(H/p)\times(W/p)$ positions;
2. a state relaxed for $T$ steps under that stimulus:
   - **AKOrN** ([`hopkur.experiments.objects.ObjectAKOrN`][]): $C/n$ oscillators of
     dimension $n$ per position, started uniformly at random on the spheres and
     updated by the discrete AKOrN step
     $x_i \leftarrow \Pi\big(x_i + \gamma\,P_{x_i}(c_i + [Jx]_i)\big)$
     ([`hopkur.nn.KuramotoLayer`][], that is [`hopkur.akorn_steps`][] on a
     [`hopkur.Kuramoto`][] model with a [`hopkur.GroupedCoupling`][]);
   - **baseline** ([`hopkur.experiments.objects.ObjectItrNet`][]): a real state
     started at $h_0 = c$ and updated by the residual iteration
     $h \leftarrow h + \gamma\,J(\mathrm{LN}(h))$ with the same coupling $J$, read as
     $\mathrm{LN}(h)$ (LN a per-position layer norm without parameters);

   $J$ is a [`hopkur.ConvCoupling`][] on the grid (`coupling="conv"`) or a
   [`hopkur.AttentionCoupling`][] over the patches as tokens (`coupling="attention"`);
3. readout features $m = \mathrm{readout}(x_T)$ per position ([`hopkur.nn.Readout`][],
   AKOrN's $m_k = \|\sum_i U_{ki} x_i\| + b_k$), and an embedding
   $z = \mathrm{MLP}(\max_{\text{positions}} m)$ for the self-supervised objective.

The two kinds have exactly the same parameters: the baseline's layer norm has none,
as AKOrN's projection and normalisation have none. The objects are found by
clustering the final states ("oscillators") or the readout features per position
([`hopkur.experiments.objects.segment`][]).
"""

import abc
import math
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

# Imported under private names, so that the documentation generator finds these
# objects under their public paths (`hopkur.ConvCoupling`, `hopkur.nn.Readout`).
from ... import _feature_couplings as _fc, nn as _nn
from ...nn._blocks import affine


COUPLINGS = ("conv", "attention")


class ObjectFeatures(NamedTuple):
    """What [`hopkur.experiments.objects.AbstractObjectNetwork.features`][] returns.

    - `states`: the final state per patch position, shape `(h, w, C)`: the
      oscillators of AKOrN (each group of $n$ channels of unit norm), the
      layer-normalised state of the baseline.
    - `readout`: the readout features per position, shape `(h, w, C)`.
    - `energies`: the AKOrN energy of the states $x^{(0)}, \\dots, x^{(T)}$, shape
      `(T + 1,)` (zeros for the baseline, which has none).
    """

    states: Array
    readout: Array
    energies: Array


def _check_image(call: str, image, shape: tuple[int, int, int]) -> None:
    if tuple(image.shape) != shape:
        raise ValueError(f"`{call}(image)` must have shape {shape}; got {image.shape}.")


def _layer_norm(h: Float[Array, "*s c"]) -> Float[Array, "*s c"]:
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.var(h, axis=-1, keepdims=True)
    return (h - mean) * jax.lax.rsqrt(var + 1e-5)


def _make_coupling(coupling: str, channels: int, grid, kernel_size, heads, dtype, key):
    if coupling == "conv":
        return _fc.ConvCoupling(channels, kernel_size, dtype=dtype, key=key)
    if coupling == "attention":
        tokens = grid[0] * grid[1]
        return _fc.AttentionCoupling(channels, tokens, heads, dtype=dtype, key=key)
    raise ValueError(
        f"`coupling` must be one of {COUPLINGS}; got {coupling!r}."
    )  # pragma: no cover - checked by the callers


class AbstractObjectNetwork(eqx.Module):
    r"""Abstract base of the object-discovery networks (see the module docstring):
    patch stimulus → $T$ steps of a coupled state → readout → pooled embedding.

    Final subclasses provide the state update
    ([`hopkur.experiments.objects.ObjectAKOrN`][],
    [`hopkur.experiments.objects.ObjectItrNet`][]); everything else is shared, so
    that the two differ only in the update.
    """

    patch_weight: eqx.AbstractVar[Float[Array, "q c"]]
    patch_bias: eqx.AbstractVar[Float[Array, " c"]]
    readout: eqx.AbstractVar[_nn.Readout]
    head_hidden: eqx.AbstractVar[eqx.nn.Linear]
    head_out: eqx.AbstractVar[eqx.nn.Linear]
    image_shape: eqx.AbstractVar[tuple[int, int, int]]
    patch: eqx.AbstractVar[int]
    steps: eqx.AbstractVar[int]
    coupling_kind: eqx.AbstractVar[str]

    @abc.abstractmethod
    def relax(
        self, c: Float[Array, "h w c"], *, key: PRNGKeyArray, steps: int
    ) -> tuple[Float[Array, "h w c"], Float[Array, " t"]]:
        """The state after `steps` updates under the stimulus `c` (per position,
        the state that the readout reads), and the energies along the way."""

    @property
    def grid(self) -> tuple[int, int]:
        """The patch grid `(H / p, W / p)`."""
        h, w, _ = self.image_shape
        return h // self.patch, w // self.patch

    @property
    def channels(self) -> int:
        """The number of channels $C$ per position."""
        return self.patch_weight.shape[1]

    def stimulus(self, image: Float[Array, "H W ci"]) -> Float[Array, "h w c"]:
        """The stimulus $c$ of an image: its patches mapped linearly to $C$ channels
        (pixels rescaled from $[0, 1]$ to $[-1, 1]$ first)."""
        h, w, ci = self.image_shape
        p = self.patch
        x = 2 * image.astype(self.patch_weight.dtype) - 1
        x = x.reshape(h // p, p, w // p, p, ci).transpose(0, 2, 1, 3, 4)
        x = x.reshape(h // p, w // p, p * p * ci)
        return affine(x, self.patch_weight.T, self.patch_bias)

    def features(
        self,
        image: Float[Array, "H W ci"],
        *,
        key: PRNGKeyArray,
        steps: int | None = None,
    ) -> ObjectFeatures:
        """The final states, readout features and energies of one image.

        **Arguments:**

        - `image`: shape `(H, W, C_in)`, values in $[0, 1]$.
        - `key`: a `jax.random.key` for the random initial oscillators (ignored by
            the baseline). (Keyword only argument.)
        - `steps`: the number of updates $T$; defaults to the trained number
            (more at test time is AKOrN's test-time extension). (Keyword only
            argument.)

        **Returns:**

        An [`hopkur.experiments.objects.ObjectFeatures`][].
        """
        _check_image(type(self).__name__, image, self.image_shape)
        steps = self.steps if steps is None else steps
        c = self.stimulus(image)
        states, energies = self.relax(c, key=key, steps=steps)
        return ObjectFeatures(states, self.readout(states), energies)

    def embed(self, m: Float[Array, "h w c"]) -> Float[Array, " c"]:
        """The embedding $z = \\mathrm{MLP}(\\max_{\\text{positions}} m)$ of the
        readout features (AKOrN's max-pooled head)."""
        pooled = jnp.max(m.reshape(-1, m.shape[-1]), axis=0)
        hidden = jax.nn.relu(
            affine(pooled, self.head_hidden.weight, self.head_hidden.bias)
        )
        return affine(hidden, self.head_out.weight, self.head_out.bias)

    def __call__(
        self,
        image: Float[Array, "H W ci"],
        *,
        key: PRNGKeyArray,
        steps: int | None = None,
    ) -> Float[Array, " c"]:
        """The embedding $z$ of one image (the input of the contrastive loss); the
        arguments are those of `features`."""
        return self.embed(self.features(image, key=key, steps=steps).readout)


def _shared_init(
    self,
    image_shape,
    channels,
    patch,
    coupling,
    kernel_size,
    heads,
    readout_dim,
    dtype,
    key,
):
    # The parameters both final classes have, set on `self` (each final class calls
    # this from its own `__init__`: one definition of the shared architecture); returns
    # the coupling J, which each class stores where its update uses it.
    h, w, ci = (int(s) for s in image_shape)
    if patch < 1 or h % patch or w % patch:
        raise ValueError(
            f"`patch={patch}` must be a positive divisor of the image height {h} and "
            f"width {w}."
        )
    if coupling not in COUPLINGS:
        raise ValueError(f"`coupling` must be one of {COUPLINGS}; got {coupling!r}.")
    kwargs = {} if dtype is None else {"dtype": dtype}
    pkey, ckey, rkey, hkey, okey = jr.split(key, 5)
    fan_in = patch * patch * ci
    self.patch_weight = jr.normal(pkey, (fan_in, channels), **kwargs) / math.sqrt(
        fan_in
    )
    self.patch_bias = jnp.zeros(channels, **kwargs)
    grid = (h // patch, w // patch)
    self.readout = _nn.Readout(channels, channels, readout_dim, dtype=dtype, key=rkey)
    self.head_hidden = eqx.nn.Linear(channels, 2 * channels, key=hkey, dtype=dtype)
    self.head_out = eqx.nn.Linear(2 * channels, channels, key=okey, dtype=dtype)
    self.image_shape = (h, w, ci)
    self.patch = patch
    self.coupling_kind = coupling
    return _make_coupling(coupling, channels, grid, kernel_size, heads, dtype, ckey)


class ObjectAKOrN(AbstractObjectNetwork):
    r"""AKOrN for object discovery: $C/n$ oscillators of dimension $n$ per patch,
    relaxed for $T$ discrete AKOrN steps under the patch stimulus, with a
    convolutional ([`hopkur.ConvCoupling`][], kernel $k$ on the patch grid) or
    attention ([`hopkur.AttentionCoupling`][], over all patches, with learned
    positional embeddings) coupling. No natural frequencies ($\Omega = 0$) and no
    stimulus normalisation, as in AKOrN's Tetrominoes runs (`use_omega=False`,
    `c_norm=none`).

    With the convolutional coupling and $\Omega = 0$ the energy reported by the layer
    is the Lyapunov function of the flow when the kernel is symmetric; it is not
    enforced (AKOrN does not either), so the energies are a diagnostic.

    ??? cite "Reference"

        ```bibtex
        @inproceedings{miyato2025akorn,
            title={Artificial Kuramoto Oscillatory Neurons},
            author={Miyato, Takeru and L{\"o}we, Sindy and Geiger, Andreas and
                    Welling, Max},
            booktitle={ICLR},
            year={2025}
        }
        ```
    """

    patch_weight: Float[Array, "q c"]
    patch_bias: Float[Array, " c"]
    readout: _nn.Readout
    head_hidden: eqx.nn.Linear
    head_out: eqx.nn.Linear
    layer: _nn.KuramotoLayer
    image_shape: tuple[int, int, int] = eqx.field(static=True)
    patch: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    coupling_kind: str = eqx.field(static=True)

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: int = 64,
        dim: int = 4,
        *,
        patch: int = 4,
        steps: int = 8,
        gamma: float = 1.0,
        coupling: Literal["conv", "attention"] = "conv",
        kernel_size: int = 5,
        heads: int = 4,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `image_shape`: `(H, W, C_in)` of the images.
        - `channels`: channels $C$ per patch, a multiple of `dim`.
        - `dim`: the oscillator dimension $n$ (at least 2).
        - `patch`: the patch size $p$, dividing `H` and `W`. (Keyword only argument.)
        - `steps`: the number of AKOrN updates $T$. (Keyword only argument.)
        - `gamma`: the step size $\\gamma$ (fixed, as in AKOrN). (Keyword only
            argument.)
        - `coupling`: `"conv"` or `"attention"`. (Keyword only argument.)
        - `kernel_size`: the odd kernel size of the convolutional coupling.
            (Keyword only argument.)
        - `heads`: attention heads (dividing `channels`). (Keyword only argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key` for initialisation. (Keyword only argument.)
        """
        if dim < 2 or channels % dim:
            raise ValueError(
                f"`ObjectAKOrN(channels={channels}, dim={dim})` needs `dim >= 2` "
                "dividing `channels`."
            )
        if steps < 0:
            raise ValueError(f"`ObjectAKOrN(steps=...)` must be >= 0; got {steps}.")
        skey, lkey = jr.split(key)
        j = _shared_init(
            self,
            image_shape,
            channels,
            patch,
            coupling,
            kernel_size,
            heads,
            dim,
            dtype,
            skey,
        )
        self.layer = _nn.KuramotoLayer(
            j,
            channels,
            dim,
            steps=steps,
            gamma=gamma,
            omega="none",
            norm=None,
            dtype=dtype,
            key=lkey,
        )
        self.steps = steps

    @property
    def dim(self) -> int:
        """The oscillator dimension $n$."""
        return self.layer.dim

    def relax(self, c, *, key, steps):
        h, w, ch = c.shape
        if self.coupling_kind == "attention":
            c = c.reshape(h * w, ch)
        x0 = _nn.random_oscillators(c.shape, self.dim, key=key, dtype=c.dtype)
        result = self.layer(x0, c, steps=steps)
        return result.x.reshape(h, w, ch), result.energies


class ObjectItrNet(AbstractObjectNetwork):
    r"""The non-oscillator baseline of [`hopkur.experiments.objects.ObjectAKOrN`][]
    (AKOrN's ItrConv with `coupling="conv"`, ItrSA with `coupling="attention"`): the
    same network with the Kuramoto update replaced by a plain residual iteration of
    the same coupling,

    $$h_0 = c, \qquad h \leftarrow h + \gamma\, J\big(\mathrm{LN}(h)\big),$$

    read as $\mathrm{LN}(h_T)$ (LN a layer norm over the channels of each position,
    without parameters). It has exactly the parameters of the AKOrN network built with
    the same arguments, and is deterministic (the `key` is ignored).
    """

    patch_weight: Float[Array, "q c"]
    patch_bias: Float[Array, " c"]
    coupling: _fc.AbstractFeatureCoupling
    readout: _nn.Readout
    head_hidden: eqx.nn.Linear
    head_out: eqx.nn.Linear
    gamma: Float[Array, ""]
    image_shape: tuple[int, int, int] = eqx.field(static=True)
    patch: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    coupling_kind: str = eqx.field(static=True)

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: int = 64,
        dim: int = 4,
        *,
        patch: int = 4,
        steps: int = 8,
        gamma: float = 1.0,
        coupling: Literal["conv", "attention"] = "conv",
        kernel_size: int = 5,
        heads: int = 4,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:** as [`hopkur.experiments.objects.ObjectAKOrN`][]; `dim` only
        sets the readout's block size (there are no oscillators)."""
        if dim < 1 or channels % dim:
            raise ValueError(
                f"`ObjectItrNet(channels={channels}, dim={dim})` needs `dim` dividing "
                "`channels`."
            )
        if steps < 0:
            raise ValueError(f"`ObjectItrNet(steps=...)` must be >= 0; got {steps}.")
        skey, _ = jr.split(key)
        self.coupling = _shared_init(
            self,
            image_shape,
            channels,
            patch,
            coupling,
            kernel_size,
            heads,
            dim,
            dtype,
            skey,
        )
        # Stored like the layer's fixed step of AKOrN (trained by neither).
        self.gamma = jnp.asarray(
            gamma, dtype=jnp.result_type(float) if dtype is None else dtype
        )
        self.steps = steps

    def relax(self, c, *, key, steps):
        del key
        h, w, ch = c.shape
        shape = (h * w, ch) if self.coupling_kind == "attention" else c.shape
        gamma = jax.lax.stop_gradient(self.gamma).astype(c.dtype)

        def body(state, _):
            return state + gamma * self.coupling(_layer_norm(state)), None

        final, _ = jax.lax.scan(body, c.reshape(shape), None, length=steps)
        return _layer_norm(final).reshape(h, w, ch), jnp.zeros(steps + 1, c.dtype)
