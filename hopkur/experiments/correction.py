r"""An oscillator correction of a frozen, pre-trained Hopfield network (MODELS.md §3).

The threshold units of a [`hopkur.HopfieldKuramoto`][] model see the effective weights

$$W_\text{eff} = W_s + \kappa_H^{-1}\, C \circ (X X^\top).$$

With the Hopfield part frozen, the second term is a trainable *correction* whose factors
are the oscillator states $X \in (S^{D-1})^N$: all-to-all and additive it is
$\kappa_H^{-1}\alpha (XX^\top - I)$, a rank-$\le D$ update (a Hebbian sum of outer
products, or a LoRA update with $N D$ parameters instead of the $N^2$ of a full weight
update). With a coupling graph, or multiplicatively, the correction is generically
full rank (MODELS.md §3). [`hopkur.experiments.OscillatorCorrection`][] packages all
four variants: the frozen network, the oscillators' initial states (fixed, or computed
from a context image), their couplings and $\alpha$. It is the memory-editing model of
the applications layer; the core does not import it.

It was `hopkur.LowRankOscillatorCorrection`, a name that was true in one configuration
of four; that name (and `hopkur.ContextEncoder`) remain as deprecated aliases.
"""

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, PyTree

from hopkur.data import encode_oscillators

from .._coupled import HopfieldKuramoto
from .._custom_types import Args, RealScalarLike, Scalar
from .._hk_couplings import (
    AbstractHopfieldKuramotoCoupling,
    AdditiveCoupling,
    MultiplicativeCoupling,
)
from .._hopfield import Hopfield
from .._kuramoto import Kuramoto, MeanFieldCoupling
from .._misc import check_edges, check_finite, check_shape, is_concrete
from .._sphere import _normalise, normalise, random_sphere
from .._system import AbstractEnergySystem


def _stop_gradient(tree):
    """`lax.stop_gradient` on the array leaves of a pytree (other leaves untouched)."""
    return jtu.tree_map(
        lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree
    )


def _count(tree) -> int:
    leaves = jtu.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return int(sum(np.size(leaf) for leaf in leaves))


class ContextEncoder(eqx.Module):
    r"""A small trainable encoder from a context image to oscillator offsets:
    $c \mapsto U \tanh(V c + a)$, reshaped to `(N, D)`, with a rank-`rank` bottleneck
    so that it costs `rank·(P + 1 + N·D)` parameters rather than `P·N·D`.

    [`hopkur.experiments.OscillatorCorrection`][] adds its output to the base initial
    oscillators and normalises each row, so that the oscillators (and with them the
    correction $\alpha(XX^\top - I)$) depend on the context.
    """

    down: Float[Array, "r p"]
    down_bias: Float[Array, " r"]
    up: Float[Array, "n d r"]

    def __init__(
        self,
        context_size: int,
        num_units: int,
        dim: int,
        rank: int = 8,
        *,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `context_size`: the number $P$ of context pixels.
        - `num_units`: the number $N$ of oscillators.
        - `dim`: the oscillator dimension $D$.
        - `rank`: the bottleneck width $r$.
        - `dtype`: the floating dtype of the parameters (JAX's default if `None`).
          (Keyword only argument.)
        - `key`: a `jax.random.key` for initialisation. (Keyword only argument.)
        """
        for name, value in (
            ("context_size", context_size),
            ("num_units", num_units),
            ("dim", dim),
            ("rank", rank),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`ContextEncoder({name}=...)` must be a positive integer; got "
                    f"{value!r}."
                )
        dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
        dkey, ukey = jr.split(key)
        self.down = jr.normal(dkey, (rank, context_size), dtype) / np.sqrt(context_size)
        self.down_bias = jnp.zeros(rank, dtype)
        self.up = jr.normal(ukey, (num_units, dim, rank), dtype) / np.sqrt(rank)

    def __call__(self, context: Float[Array, " p"]) -> Float[Array, "n d"]:
        """**Arguments:**

        - `context`: one context image, a flat vector of `P` pixels.

        **Returns:**

        Offsets of shape `(N, D)` for the initial oscillators.
        """
        context = jnp.asarray(context, self.down.dtype)
        h = jnp.tanh(self.down @ context + self.down_bias)
        return self.up @ h


class ImageContext(eqx.Module):
    r"""The research note's associative context: the raw context image shown to the
    oscillators. Pixel $i$ of the context becomes the initial state of oscillator $i$
    by [`hopkur.data.encode_oscillators`][] ($p \mapsto (f, \sqrt{1 - f^2}, 0, \dots)$,
    $f = 2p - 1$); the other oscillators (hidden and class units) keep the trained base
    rows of [`hopkur.experiments.OscillatorCorrection`][].

    It has no parameters: the context reaches the readout only through the inner
    products of the pixel oscillators with each other and with the trained ones, and
    through the oscillator dynamics. The base rows of the pixel oscillators are
    overwritten, so they are not counted as trained parameters.
    """

    num_pixels: int = eqx.field(static=True)

    def __init__(self, num_pixels: int):
        """**Arguments:**

        - `num_pixels`: the number $P$ of context pixels, which set the first $P$
            oscillators.
        """
        if not isinstance(num_pixels, int) or num_pixels < 1:
            raise ValueError(
                "`ImageContext(num_pixels=...)` must be a positive integer; got "
                f"{num_pixels!r}."
            )
        self.num_pixels = num_pixels

    def __call__(
        self, context: Float[Array, " p"], oscillators: Float[Array, "n d"]
    ) -> Float[Array, "n d"]:
        """**Arguments:**

        - `context`: one context image, a flat vector of `P` pixels in $[0, 1]$.
        - `oscillators`: the base initial oscillators, shape `(N, D)` with $N > P$.

        **Returns:**

        The initial oscillators, shape `(N, D)`, unit rows: the encoded image, then
        the last `N - P` base rows (normalised).
        """
        context = jnp.asarray(context, oscillators.dtype)
        if context.shape != (self.num_pixels,):
            raise ValueError(
                f"`ImageContext(context)` must have shape ({self.num_pixels},); got "
                f"{context.shape}."
            )
        n, d = oscillators.shape
        return encode_oscillators(
            context, n, d, fill=_normalise(oscillators[self.num_pixels :])
        )


class OscillatorCorrection(AbstractEnergySystem):
    r"""A frozen, pre-trained [`hopkur.Hopfield`][] network corrected by oscillators:
    the coupled Hopfield–Kuramoto dynamics of MODELS.md §3 in which only the oscillator
    side is trained.

    The threshold units see $W_\text{eff} = W_s + \kappa_H^{-1} C\circ(XX^\top)$ with
    $C$ given by `mode` and `edges`:

    | `mode` | `edges` | $C \circ XX^\top$ | cost $O(\cdot)$ |
    |---|---|---|---|
    | additive | `None` | $\alpha(XX^\top - I)$, rank $\le D$ | $ND$ |
    | additive | graph $M$ | $\alpha M\circ XX^\top$, full rank | $ED$ |
    | multiplicative | `None` | $\alpha\, W_s^{\text{off-diag}}\circ XX^\top$ | $N^2D$ |
    | multiplicative | graph $M$ | $\alpha M\circ W_s\circ XX^\top$ | $ED$ |

    Only the first is a low-rank correction (`is_low_rank`).

    **Trainable parameters** (`trainable_filter`): the base initial oscillators
    `oscillators` (rows normalised on use), the oscillator couplings (the `kuramoto`
    model's coupling and field), $\alpha$, and the optional `encoder` of a context
    image. The Hopfield network is frozen: its arrays are behind
    `jax.lax.stop_gradient` in every evaluation (so they receive zero gradients) and are
    left out of `trainable_filter` (so an optimiser with weight decay does not move them
    either).

    **Symmetric starts.** Oscillators initialised all at one point are an equilibrium of
    the oscillator dynamics; there $XX^\top$ is the all-ones matrix and gradients with
    respect to the oscillators vanish. The constructor therefore draws distinct random
    unit vectors.

    **Dead parameters.** The threshold units see the oscillators only through the
    inner products $x_i\cdot x_j$, which a common rotation leaves unchanged: a shared
    natural frequency $\Omega$ (and a global rotation of the initial oscillators) cannot
    change the readout. A shared `omega` of the `kuramoto` model is therefore not
    trained (left out of `trainable_filter`); per-oscillator $\Omega_i$ are, but make
    the model a non-gradient system.

    The model is an [`hopkur.AbstractEnergySystem`][] on the state `(x_h, x)`:
    `hopkur.simulate(correction, correction.initial_state(x_h0))` integrates it.
    """

    hopfield: Hopfield
    kuramoto: Kuramoto
    alpha: Float[Array, ""]
    oscillators: Float[Array, "n d"]
    encoder: Callable | None
    edges: Int[Array, "e 2"] | None
    mode: Literal["additive", "multiplicative"] = eqx.field(static=True)
    kappa_h: Float[Array, ""]
    kappa_k: Float[Array, ""]

    def __init__(
        self,
        hopfield: Hopfield,
        dim: int,
        *,
        mode: Literal["additive", "multiplicative"] = "additive",
        edges: ArrayLike | None = None,
        kuramoto: Kuramoto | None = None,
        alpha: RealScalarLike = 0.01,
        encoder: Callable | None = None,
        kappa_h: RealScalarLike = 1.0,
        kappa_k: RealScalarLike = 1.0,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `hopfield`: the pre-trained network to correct (frozen).
        - `dim`: the oscillator dimension $D \ge 2$ (the rank bound of the all-to-all
            additive correction).
        - `mode`: `"additive"` ($c_{ij} = \alpha M_{ij}$) or `"multiplicative"`
            ($c_{ij} = \alpha M_{ij} (W_s)_{ij}$). (Keyword only argument.)
        - `edges`: the coupling graph $M$ as `(E, 2)` integer edges (each undirected
            edge once), or `None` for all-to-all. (Keyword only argument.)
        - `kuramoto`: the oscillators' own dynamics (their couplings are trained). The
            default is a mean-field coupling of strength 0, i.e. one trainable scalar.
            (Keyword only argument.)
        - `alpha`: the initial coupling scale $\alpha$. It should be non-zero, or the
            oscillators get no gradient at the first step. (Keyword only argument.)
        - `encoder`: `None` for fixed (trained) initial oscillators; a callable
            module mapping a context image to `(N, D)` offsets that are added to them,
            e.g. a [`hopkur.experiments.ContextEncoder`][]; or a
            [`hopkur.experiments.ImageContext`][], which sets the first $P$
            oscillators from the raw context image. (Keyword only argument.)
        - `kappa_h`, `kappa_k`: the scales $\kappa_H, \kappa_K > 0$. (Keyword only
            arguments.)
        - `key`: a `jax.random.key` for the initial oscillators. (Keyword only
            argument.)
        """
        call = "OscillatorCorrection"
        if not isinstance(hopfield, Hopfield):
            raise ValueError(
                f"`{call}(hopfield=...)` must be a hopkur.Hopfield; got "
                f"{type(hopfield).__name__}."
            )
        if not isinstance(dim, int) or dim < 2:
            raise ValueError(f"`{call}(dim=...)` must be an integer >= 2; got {dim!r}.")
        if mode not in ("additive", "multiplicative"):
            raise ValueError(
                f"`{call}(mode=...)` must be 'additive' or 'multiplicative'; got "
                f"{mode!r}."
            )
        dtype = hopfield.weights.dtype
        if kuramoto is None:
            kuramoto = Kuramoto(MeanFieldCoupling(jnp.zeros((), dtype)))
        self.hopfield = hopfield
        self.kuramoto = kuramoto
        self.alpha = jnp.asarray(alpha, dtype)
        self.oscillators = random_sphere(
            (hopfield.num_units,), dim, key=key, dtype=dtype
        )
        self.encoder = encoder
        self.edges = None if edges is None else jnp.asarray(edges)
        self.mode = mode
        self.kappa_h = jnp.asarray(kappa_h, dtype)
        self.kappa_k = jnp.asarray(kappa_k, dtype)

    def __check_init__(self):
        call = "OscillatorCorrection"
        if not isinstance(self.kuramoto, Kuramoto):
            raise ValueError(
                f"`{call}(kuramoto=...)` must be a hopkur.Kuramoto; got "
                f"{type(self.kuramoto).__name__}."
            )
        check_shape(call, "alpha", self.alpha, ())
        check_finite(call, "alpha", self.alpha)
        if self.edges is not None:
            check_edges(call, self.edges, self.num_units)
        if (
            isinstance(self.encoder, ImageContext)
            and self.encoder.num_pixels >= self.num_units
        ):
            raise ValueError(
                f"`{call}(encoder=ImageContext(num_pixels=...))` must have fewer "
                f"pixels than the {self.num_units} units; got "
                f"{self.encoder.num_pixels}."
            )
        if self.encoder is not None and not callable(self.encoder):
            raise ValueError(
                f"`{call}(encoder=...)` must be callable (context -> (N, D)); got "
                f"{type(self.encoder).__name__}."
            )
        for name in ("kappa_h", "kappa_k"):
            value = getattr(self, name)
            check_shape(call, name, value, ())
            if is_concrete(value) and not float(value) > 0:
                raise ValueError(
                    f"`{call}({name}=...)` must be positive; got {float(value)}."
                )
        # Builds the coupled model once: checks that the oscillator part fits N and D.
        self.system

    # -- structure -----------------------------------------------------------------

    @property
    def num_units(self) -> int:
        """The number of units $N$."""
        return self.hopfield.num_units

    @property
    def dim(self) -> int:
        """The oscillator dimension $D$."""
        return self.oscillators.shape[-1]

    @property
    def is_low_rank(self) -> bool:
        r"""Whether the correction is the rank-$\le D$ all-to-all additive one."""
        return self.coupling.is_low_rank

    @property
    def coupling(self) -> AbstractHopfieldKuramotoCoupling:
        """The Hopfield–oscillator coupling: a [`hopkur.AdditiveCoupling`][] or a
        [`hopkur.MultiplicativeCoupling`][] with scale `alpha` on `edges`."""
        if self.mode == "additive":
            return AdditiveCoupling(self.alpha, self.edges)
        return MultiplicativeCoupling(self.alpha, self.edges)

    @property
    def system(self) -> HopfieldKuramoto:
        """The coupled model with the Hopfield part frozen (`stop_gradient`)."""
        return HopfieldKuramoto(
            _stop_gradient(self.hopfield),
            self.kuramoto,
            self.coupling,
            self.kappa_h,
            self.kappa_k,
        )

    def trainable_filter(self) -> PyTree[bool]:
        """A pytree of booleans with the structure of `self`, `True` on the arrays that
        are trained: everything but the frozen Hopfield network, the graph, the scales
        $\\kappa$ and a shared `omega`. Use it with `eqx.partition`.

        **Returns:**

        The filter pytree.
        """
        spec = jtu.tree_map(eqx.is_inexact_array, self)
        spec = eqx.tree_at(
            lambda c: c.hopfield,
            spec,
            jtu.tree_map(lambda _: False, self.hopfield),
        )
        spec = eqx.tree_at(lambda c: (c.kappa_h, c.kappa_k), spec, (False, False))
        omega = self.kuramoto.omega
        if omega is not None and omega.ndim == 2:
            spec = eqx.tree_at(lambda c: c.kuramoto.omega, spec, False)
        return spec

    @property
    def num_parameters(self) -> int:
        """The number of trained scalars (see `trainable_filter`)."""
        trainable, _ = eqx.partition(self, self.trainable_filter())
        count = _count(trainable)
        if isinstance(self.encoder, ImageContext):
            # the base rows of the pixel oscillators are overwritten by the image
            count -= self.encoder.num_pixels * self.dim
        return count

    @property
    def num_full_update_parameters(self) -> int:
        """$N^2$: the number of scalars of a full update of the Hopfield weights, to
        compare with `num_parameters`."""
        return self.num_units**2

    # -- states --------------------------------------------------------------------

    def initial_oscillators(
        self, context: Float[ArrayLike, " p"] | None = None
    ) -> Float[Array, "n d"]:
        """The oscillators' initial states: the rows of `oscillators`, plus the
        encoder's offsets for `context` if there is an encoder, each normalised to unit
        length.

        **Arguments:**

        - `context`: one context image (flat), required exactly when the model has an
            `encoder`.

        **Returns:**

        Unit rows, shape `(N, D)`.
        """
        if (context is None) != (self.encoder is None):
            have = "has" if self.encoder is not None else "has no"
            raise ValueError(
                "`OscillatorCorrection.initial_oscillators(context=...)` must be "
                f"given exactly when the model has an encoder; this model {have} "
                f"encoder and context is {'None' if context is None else 'given'}."
            )
        x = self.oscillators
        if isinstance(self.encoder, ImageContext):
            return self.encoder(jnp.asarray(context), x)
        if self.encoder is not None:
            x = x + self.encoder(jnp.asarray(context))
        return normalise(x)

    def initial_state(
        self,
        x_h: Float[ArrayLike, " n"],
        context: Float[ArrayLike, " p"] | None = None,
    ) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
        """The initial state `(x_h, x)` for threshold states `x_h`.

        **Arguments:**

        - `x_h`: the threshold units' initial states, shape `(N,)` (e.g. from
            `hopkur.data.encode_hopfield`).
        - `context`: the context image, if the model has an encoder.

        **Returns:**

        The pair `(x_h, initial_oscillators(context))`.
        """
        x_h = jnp.asarray(x_h, self.oscillators.dtype)
        check_shape("OscillatorCorrection.initial_state", "x_h", x_h, (self.num_units,))
        return x_h, self.initial_oscillators(context)

    def effective_weights(
        self,
        x: Float[ArrayLike, "n d"] | None = None,
        *,
        context: Float[ArrayLike, " p"] | None = None,
    ) -> Float[Array, "n n"]:
        r"""$W_\text{eff} = W_s + \kappa_H^{-1} C\circ(XX^\top)$ (dense $N\times N$, for
        analysis; the dynamics never form it).

        **Arguments:**

        - `x`: oscillator states `(N, D)`; by default the initial oscillators.
        - `context`: the context image for the default, if the model has an encoder.
            (Keyword only argument.)

        **Returns:**

        The `(N, N)` effective weights.
        """
        if x is None:
            x = self.initial_oscillators(context)
        return self.system.effective_weights(jnp.asarray(x))

    # -- the AbstractEnergySystem interface -----------------------------------------

    def vector_field(
        self,
        t: RealScalarLike,
        y: tuple[Float[Array, " n"], Float[Array, "n d"]],
        args: Args,
    ) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
        return self.system.vector_field(t, y, args)

    def energy(
        self, y: tuple[Float[Array, " n"], Float[Array, "n d"]], args: Args
    ) -> Scalar:
        return self.system.energy(y, args)

    def _hoisted(self, y):
        # for a solve, only the vector field is used: the coupled system's
        return self.system._hoisted(y)

    @property
    def is_gradient_system(self) -> Bool[Array, ""]:
        return self.kuramoto.is_gradient_system

    def retract(
        self, y: tuple[Float[Array, " n"], Float[Array, "n d"]]
    ) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
        return y[0], _normalise(y[1])

    @property
    def retract_is_identity(self) -> bool:
        return False
