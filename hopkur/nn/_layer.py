r"""The AKOrN Kuramoto layer: $T$ discrete projected updates of oscillator groups.

The layer is the core's discrete AKOrN step ([`hopkur.akorn_steps`][]) on a
[`hopkur.Kuramoto`][] model over the oscillator view of its channels
([`hopkur.GroupedCoupling`][]); it adds the stimulus normalisation and the trainable
parametrisation of $\Omega$ and $\gamma$.
"""

import math
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._discrete import akorn_step, akorn_steps
from .._feature_couplings import AbstractFeatureCoupling, GroupedCoupling
from .._kuramoto import Kuramoto
from .._sphere import antisymmetrise, normalise, random_sphere


def _groups(x: Float[Array, "*s c"], n: int) -> Float[Array, "*s g n"]:
    return x.reshape(*x.shape[:-1], x.shape[-1] // n, n)


def _flat(x: Float[Array, "*s g n"]) -> Float[Array, "*s c"]:
    return x.reshape(*x.shape[:-2], -1)


def normalise_groups(x: Float[Array, "*s c"], n: int) -> Float[Array, "*s c"]:
    """Rescales each oscillator group (consecutive `n` channels) to unit norm
    ([`hopkur.normalise`][] on the groups).

    **Arguments:**

    - `x`: a state of shape `(*spatial, channels)`, `channels` divisible by `n`.
    - `n`: the oscillator dimension.

    **Returns:**

    The state with every group of `n` channels of unit norm.
    """
    return _flat(normalise(_groups(x, n)))


def random_oscillators(
    shape: tuple[int, ...], n: int, *, key: PRNGKeyArray, dtype=None
) -> Float[Array, "..."]:
    """Draws a state of shape `shape = (*spatial, channels)` whose oscillator groups
    are uniform on $S^{n-1}$ ([`hopkur.random_sphere`][] on the groups).

    **Arguments:**

    - `shape`: the state shape; its last entry must be divisible by `n`.
    - `n`: the oscillator dimension.
    - `key`: a `jax.random.key`. (Keyword only argument.)
    - `dtype`: the floating dtype. (Keyword only argument.)

    **Returns:**

    An array of shape `shape` with unit-norm groups.
    """
    *spatial, channels = shape
    return _flat(random_sphere((*spatial, channels // n), n, key=key, dtype=dtype))


class KuramotoResult(NamedTuple):
    """What [`hopkur.nn.KuramotoLayer`][] returns.

    - `x`: the final state, shape `(*spatial, channels)`.
    - `energies`: the energy of the states $x^{(0)}, \\dots, x^{(T)}$, shape `(T+1,)`.
    - `xs`: all states $x^{(0)}, \\dots, x^{(T)}$, shape `(T+1, *spatial, channels)`,
        or `None` unless asked for.
    """

    x: Array
    energies: Array
    xs: Array | None


class KuramotoLayer(eqx.Module):
    r"""An AKOrN Kuramoto layer: `steps` discrete updates of oscillator groups.

    The state $x$ has shape `(*spatial, channels)`; consecutive groups of $n$ channels
    are oscillators $x_i \in S^{n-1}$. Given a stimulus $c$ of the same shape, each
    step is (MODELS.md §2, discrete AKOrN update)

    $$x_i \leftarrow \Pi\big(x_i + \gamma\,[\,\Omega_i x_i + P_{x_i}(c_i + [Jx]_i)\,]
    \big), \qquad \Pi(v) = v/\|v\|, \quad P_x v = v - \frac{x\cdot v}{x\cdot x}x,$$

    with $J$ a feature coupling ([`hopkur.nn.LinearCoupling`][],
    [`hopkur.ConvCoupling`][], [`hopkur.AttentionCoupling`][],
    [`hopkur.nn.RelationalCoupling`][], or any [`hopkur.AbstractFeatureCoupling`][]) and
    $\Omega_i$ antisymmetric $n\times n$.

    **The core model.** The update is exactly [`hopkur.akorn_steps`][] on the
    [`hopkur.Kuramoto`][] model that [`hopkur.nn.KuramotoLayer.kuramoto`][] returns:
    the state viewed as `(N, n)` oscillators (`x.reshape(-1, n)`), the coupling
    [`hopkur.GroupedCoupling`][]`(J, x.shape, n)`, the field $c$ and the frequencies
    $\Omega_i$ per oscillator. The projection, retraction, energy and
    random states are the core's.

    **Energy convention.** The layer reports, for every state,

    $$E(x) = -\tfrac12 \sum_i x_i \cdot [Jx]_i - \sum_i c_i \cdot x_i$$

    (sums over all oscillators; $c$ after the stimulus normalisation). Positive
    coupling synchronises. When $J$ is a fixed symmetric map and $\Omega = 0$, $E$ does
    not increase under the update for small $\gamma$ (roughly $\gamma\|J\| \lesssim
    1$); with $\Omega \neq 0$, a non-symmetric $J$ or attention (where $J$ depends on
    $x$) it is a diagnostic only.

    **Stimulus normalisation.** `norm="group"` applies a group norm to $c$ with one
    group per oscillator (zero mean and unit variance over its $n$ channels and all
    spatial positions, then a learned per-channel scale and shift), as AKOrN does;
    `norm=None` uses $c$ as given.
    """

    coupling: AbstractFeatureCoupling
    raw_omega: Float[Array, "*g n n"] | None
    norm_weight: Float[Array, " c"] | None
    norm_bias: Float[Array, " c"] | None
    raw_gamma: Float[Array, ""]
    channels: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    learn_gamma: bool = eqx.field(static=True)

    def __init__(
        self,
        coupling: AbstractFeatureCoupling,
        channels: int,
        dim: int = 4,
        *,
        steps: int = 8,
        gamma: float = 1.0,
        learn_gamma: bool = False,
        omega: Literal["none", "shared", "group"] = "shared",
        norm: Literal["group"] | None = None,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `coupling`: the coupling $J$.
        - `channels`: the number of channels $C$, a multiple of `dim`.
        - `dim`: the oscillator dimension $n$ (at least 2).
        - `steps`: the default number of updates $T$. (Keyword only argument.)
        - `gamma`: the step size $\\gamma$ (positive). (Keyword only argument.)
        - `learn_gamma`: whether $\\gamma$ is trained (parametrised as
            $\\gamma = \\mathrm{softplus}(\\cdot)$). (Keyword only argument.)
        - `omega`: natural frequencies: `"none"`, `"shared"` (one antisymmetric
            $n\\times n$ matrix for every oscillator) or `"group"` (one per
            oscillator group, shared over spatial positions). (Keyword only
            argument.)
        - `norm`: stimulus normalisation, `"group"` or `None`. (Keyword only
            argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        if dim < 2 or channels % dim:
            raise ValueError(
                f"`KuramotoLayer(channels={channels}, dim={dim})` needs `dim >= 2` "
                "dividing `channels`."
            )
        if gamma <= 0:
            raise ValueError(
                f"`KuramotoLayer(gamma=...)` must be positive; got {gamma}."
            )
        if steps < 0:
            raise ValueError(f"`KuramotoLayer(steps=...)` must be >= 0; got {steps}.")
        if omega not in ("none", "shared", "group"):
            raise ValueError(
                "`KuramotoLayer(omega=...)` must be 'none', 'shared' or 'group'; got "
                f"{omega!r}."
            )
        if norm not in ("group", None):
            raise ValueError(
                f"`KuramotoLayer(norm=...)` must be 'group' or None; got {norm!r}."
            )
        kwargs = {} if dtype is None else {"dtype": dtype}
        groups = channels // dim
        if omega == "none":
            self.raw_omega = None
        else:
            shape = (dim, dim) if omega == "shared" else (groups, dim, dim)
            self.raw_omega = 0.1 * jr.normal(key, shape, **kwargs)
        if norm == "group":
            self.norm_weight = jnp.ones(channels, **kwargs)
            self.norm_bias = jnp.zeros(channels, **kwargs)
        else:
            self.norm_weight = self.norm_bias = None
        # softplus^{-1}(gamma) if learnable, else gamma itself.
        raw = math.log(math.expm1(gamma)) if learn_gamma else gamma
        # A strongly typed scalar: a weakly typed one would turn strong after the first
        # optimiser update and recompile a jitted training step once.
        self.raw_gamma = jnp.asarray(
            raw, dtype=jnp.result_type(float) if dtype is None else dtype
        )
        self.coupling = coupling
        self.channels = channels
        self.dim = dim
        self.steps = steps
        self.learn_gamma = learn_gamma

    @property
    def gamma(self) -> Float[Array, ""]:
        """The step size $\\gamma$ in use."""
        if self.learn_gamma:
            return jax.nn.softplus(self.raw_gamma)
        return jax.lax.stop_gradient(self.raw_gamma)

    @property
    def omega(self) -> Float[Array, "*g n n"] | None:
        r"""The antisymmetric natural frequencies,
        $(\tilde\Omega - \tilde\Omega^\top)/2$."""
        if self.raw_omega is None:
            return None
        return antisymmetrise(self.raw_omega)

    def normalise_stimulus(self, c: Float[Array, "*s c"]) -> Float[Array, "*s c"]:
        """Applies the stimulus normalisation (identity if `norm=None`)."""
        if self.norm_weight is None or self.norm_bias is None:
            return c
        g = _groups(c, self.dim)
        axes = tuple(range(g.ndim - 2)) + (g.ndim - 1,)
        mean = jnp.mean(g, axis=axes, keepdims=True)
        var = jnp.var(g, axis=axes, keepdims=True)
        g = (g - mean) * jax.lax.rsqrt(var + 1e-5)
        out = _flat(g)
        weight = jnp.broadcast_to(self.norm_weight, out.shape)
        return out * weight + jnp.broadcast_to(self.norm_bias, out.shape)

    def kuramoto(self, c: Float[Array, "*s c"]) -> Kuramoto:
        r"""The core model the layer steps under the stimulus `c` (already normalised):
        [`hopkur.Kuramoto`][] on the oscillator view `(N, n)` of states shaped like
        `c`, with coupling [`hopkur.GroupedCoupling`][]`(J, c.shape, n)`, field
        `c.reshape(-1, n)` and $\Omega$ shared, or per oscillator (each group's
        $\Omega$ repeated over the positions).

        **Arguments:**

        - `c`: the normalised stimulus, shape `(*spatial, channels)`.

        **Returns:**

        The [`hopkur.Kuramoto`][] model; `hopkur.akorn_steps(model, x.reshape(-1, n),
        steps=T, gamma=layer.gamma)` is the layer's update.
        """
        n = self.dim
        omega = self.omega
        if omega is not None and omega.ndim == 3:
            shape = (*c.shape[:-1], *omega.shape)
            omega = jnp.broadcast_to(omega, shape).reshape(-1, n, n)
        coupling = GroupedCoupling(self.coupling, c.shape, n)
        return Kuramoto(coupling, field=c.reshape(-1, n), omega=omega)

    def energy(
        self, x: Float[Array, "*s c"], c: Float[Array, "*s c"]
    ) -> Float[Array, ""]:
        r"""$E(x) = -\tfrac12 \langle x, Jx\rangle - \langle c, x\rangle$, with `c`
        already normalised (see the class docstring): the energy of the core model."""
        return self.kuramoto(c).energy(x.reshape(-1, self.dim), None)

    def step(
        self, x: Float[Array, "*s c"], c: Float[Array, "*s c"]
    ) -> Float[Array, "*s c"]:
        r"""One update $x \leftarrow \Pi(x + \gamma[\Omega x + P_x(c + Jx)])$, with `c`
        already normalised: [`hopkur.akorn_step`][] on the core model."""
        gamma = self.gamma.astype(x.dtype)
        new = akorn_step(self.kuramoto(c), x.reshape(-1, self.dim), gamma)
        return new.reshape(x.shape)

    def __call__(
        self,
        x: Float[Array, "*s c"],
        c: Float[Array, "*s c"],
        *,
        steps: int | None = None,
        return_all: bool = False,
    ) -> KuramotoResult:
        """Runs the updates from the initial state `x` under the stimulus `c`.

        **Arguments:**

        - `x`: the initial state, shape `(*spatial, channels)`; it is normalised per
            oscillator group first.
        - `c`: the stimulus, same shape.
        - `steps`: the number of updates $T$; defaults to the layer's `steps`.
            (Keyword only argument.)
        - `return_all`: also return every intermediate state. (Keyword only
            argument.)

        **Returns:**

        A [`hopkur.nn.KuramotoResult`][] `(x, energies, xs)`.
        """
        if x.shape != c.shape or x.shape[-1] != self.channels:
            raise ValueError(
                f"`KuramotoLayer(channels={self.channels})` needs `x` and `c` of the "
                f"same shape (..., {self.channels}); got {x.shape} and {c.shape}."
            )
        steps = self.steps if steps is None else steps
        c = self.normalise_stimulus(c)
        run = akorn_steps(
            self.kuramoto(c),
            x.reshape(-1, self.dim),
            steps=steps,
            gamma=self.gamma.astype(x.dtype),
            save_states=return_all,
        )
        if return_all:
            xs = run.ys.reshape(steps + 1, *x.shape)
            return KuramotoResult(xs[-1], run.energies, xs)
        return KuramotoResult(run.ys.reshape(x.shape), run.energies, None)
