r"""Trainable image classifiers whose forward pass is an ODE solve (MODELS.md §4).

An image (a flat vector of `P` pixels in $[0, 1]$) becomes the initial state of a
network of `N` units, the network is integrated from $t = 0$ to $t = 1$ (Tsit5,
rtol 1e-3, atol 1e-6), and the class scores $\ell_c$ are read from the last `C` units:

- `HopfieldClassifier`: `P + extra + C` threshold units; initial state: the pixels,
  then zeros; scores: the final states of the last `C` units.
- `KuramotoClassifier`: `P + 1 + extra + C` oscillators; pixel $p$ starts at
  $(f, \sqrt{1 - f^2}, 0, \dots)$ with $f = (p - m)/(1 - m)$ clipped to $[-1, 1]$
  (`encoding`: `"signed"` is $m = 1/2$, i.e. $f = 2p - 1$; `"centred"` is $m$ = the
  mean pixel value of the training images, as in the research code), the reference
  oscillator at $e_1$, the others at trained unit vectors (or, `class_start="common"`,
  the class oscillators all at $e_1$); scores: $x_c \cdot x_\text{ref}$ at $t = 1$.
- `HopfieldKuramotoClassifier`: `P + 1 + extra + C` units with both; initial states as
  above; scores: the final threshold states of the last `C` units. With
  `binding=True` it takes two images: the first on the threshold units, the second
  (the *context*) on the oscillators (the note's MNIST addition).

The reference oscillator (index `P`) starts at $e_1$, the direction against which the
pixel oscillators encode their values; reading the class oscillators against its
*final* state makes the readout invariant under a common rotation. The extra and class
oscillators start at trained, distinct unit vectors. Starting *every* oscillator at one
point is an equilibrium where the gradients with respect to the oscillator parameters
vanish (MODELS.md §4.3). `class_start="common"` puts only the class oscillators at one
point, the reference $e_1$, as the research code does; the pixel oscillators are spread
by the image and the hidden ones keep distinct trained starts, so the state is no
equilibrium and the class oscillators separate under their different couplings.

The loss is $\frac1B\sum_b \sum_c (\ell_c - (2\,\mathrm{onehot}_c - 1))^2$
(`classification_loss`) and the prediction is $\arg\max_c \ell_c$.

Every classifier is called on a *batch*: `model(images)` returns `(B, C)` scores. The
batch is integrated as one system with per-sample error control (see
`hopkur.experiments._batch`).

This module is long because the three classifiers are one protocol (MODELS.md §4.1):
they share their encoders, readout conventions, size checks and construction helpers,
which split over three files would have to be imported back and forth.
"""

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, PyTree

import hopkur
from hopkur.data import encode_hopfield, encode_oscillators, reference_oscillator

from .._graphs import edge_matrix
from .._system import AbstractEnergySystem
from ._batch import solve_batch


#: Integration time, tolerances and default step budget of the forward pass
#: (MODELS.md §4; the research code allows 5,000 steps).
T1 = 1.0
RTOL = 1e-3
ATOL = 1e-6
MAX_STEPS = 256

#: Pixel encodings of the oscillator classifiers (see `oscillator_centre`).
ENCODINGS = ("signed", "centred")
#: Initial states of the class oscillators.
CLASS_STARTS = ("random", "common")

LAGRANGIANS = {
    "tanh": hopkur.lagrangian_tanh,
    "relu": hopkur.lagrangian_relu,
    "sigmoid": hopkur.lagrangian_sigmoid,
    "identity": hopkur.lagrangian_identity,
}


def _dtype(dtype):
    return jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)


def _check_sizes(call: str, **sizes) -> None:
    for name, value in sizes.items():
        minimum = 0 if name == "num_extra" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(
                f"`{call}({name}=...)` must be an integer >= {minimum}; got {value!r}."
            )


def _lagrangian(call: str, lagrangian) -> Callable:
    if isinstance(lagrangian, str):
        if lagrangian not in LAGRANGIANS:
            raise ValueError(
                f"`{call}(lagrangian=...)` must be one of {sorted(LAGRANGIANS)} or a "
                f"callable; got {lagrangian!r}."
            )
        return LAGRANGIANS[lagrangian]
    if not callable(lagrangian):
        raise ValueError(
            f"`{call}(lagrangian=...)` must be a name or a callable; got "
            f"{type(lagrangian).__name__}."
        )
    return lagrangian


def _graph(call: str, n: int, k: int | None, *, key: PRNGKeyArray) -> np.ndarray | None:
    """A connected small-world graph with `k` neighbours per node, or `None` (dense)."""
    if k is None or k == 0:
        return None
    if not isinstance(k, int) or k < 2 or k % 2 or k >= n:
        raise ValueError(
            f"`{call}(graph_k=...)` must be 0/None (dense) or an even integer in "
            f"[2, {n}); got {k!r}."
        )
    return np.asarray(hopkur.small_world_edges(key, n, k, 0.1))


def _check_max_steps(call: str, max_steps) -> int:
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(
            f"`{call}(max_steps=...)` must be an integer >= 1; got {max_steps!r}."
        )
    return max_steps


def oscillator_centre(encoding: str, train_images: ArrayLike | None = None) -> float:
    r"""The pixel value $m$ that the oscillator encoding maps to the equator
    $f = 0$: pixel $p$ starts at $(f, \sqrt{1-f^2}, 0, \dots)$ with
    $f = \operatorname{clip}\big((p - m)/(1 - m), -1, 1\big)$.

    **Arguments:**

    - `encoding`: `"signed"` ($m = 1/2$: $f = 2p - 1$, black pixels at $-e_1$) or
        `"centred"` ($m$ = the mean of every pixel of `train_images`: the research
        code's encoding, which maps black pixels to $-m/(1 - m)$ and white ones to 1).
    - `train_images`: the training images (needed for `"centred"`).

    **Returns:**

    $m$, a float in $[0, 1)$.
    """
    if encoding == "signed":
        return 0.5
    if encoding != "centred":
        raise ValueError(
            f"`oscillator_centre(encoding=...)` must be one of {ENCODINGS}; got "
            f"{encoding!r}."
        )
    if train_images is None:
        raise ValueError("`oscillator_centre('centred')` needs `train_images`.")
    m = float(np.mean(np.clip(np.asarray(train_images, np.float64), 0, 1)))
    if not 0 <= m < 1:
        raise ValueError(
            f"`oscillator_centre`: the mean pixel value must be in [0, 1); got {m}."
        )
    return m


def classification_loss(
    scores: Float[Array, "b c"], labels: Int[ArrayLike, " b"]
) -> Float[Array, ""]:
    r"""The research note's squared loss, averaged over the batch:
    $\frac1B\sum_b\sum_c \big(\ell_{bc} - (2\,\mathrm{onehot}(y_b)_c - 1)\big)^2$.

    **Arguments:**

    - `scores`: class scores $\ell$, shape `(B, C)`.
    - `labels`: integer labels in `0..C-1`, shape `(B,)`.

    **Returns:**

    The scalar loss.
    """
    targets = 2 * jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype) - 1
    return jnp.mean(jnp.sum((scores - targets) ** 2, axis=-1))


class AbstractClassifier(eqx.Module):
    """A classifier whose forward pass integrates an energy-based model.

    Subclasses give the model (`system`), the map from an image (and an optional context
    image) to the initial state, and the readout of class scores from the final state.
    """

    if TYPE_CHECKING:
        # pyright reads an `AbstractVar` as a dataclass field of this class, so each
        # subclass's generated `__init__` would take `num_inputs, num_classes` first.
        # At run time equinox drops abstract fields and the order is the subclass's
        # own. For the type checker only, they are declared as class variables, which
        # are no dataclass fields (as in `hopkur.AbstractHopfield`).
        num_inputs: ClassVar[int]
        num_classes: ClassVar[int]
    else:
        num_inputs: eqx.AbstractVar[int]
        num_classes: eqx.AbstractVar[int]

    @property
    @abc.abstractmethod
    def system(self) -> AbstractEnergySystem:
        """The model that is integrated (one sample)."""

    @abc.abstractmethod
    def initial_state(
        self, image: Float[Array, " p"], context: Float[Array, " p"] | None = None
    ) -> PyTree[Array]:
        """The initial state for one image (and context image, if the model uses
        one)."""

    @abc.abstractmethod
    def readout(self, y: PyTree[Array]) -> Float[Array, " c"]:
        """The class scores $\\ell$ of one final state."""

    @abc.abstractmethod
    def trainable_filter(self) -> PyTree[bool]:
        """`True` on the arrays that training updates (for the classifiers of this
        module every floating array). Use with `eqx.partition`."""

    @property
    @abc.abstractmethod
    def dtype(self) -> np.dtype:
        """The floating dtype of the parameters."""

    def __call__(
        self,
        images: Float[ArrayLike, "b p"],
        contexts: Float[ArrayLike, "b q"] | None = None,
        *,
        max_steps: int | None = None,
    ) -> Float[Array, "b c"]:
        """Class scores of a batch of images.

        **Arguments:**

        - `images`: flat images, shape `(B, P)`.
        - `contexts`: context images `(B, Q)`, for models that take one.
        - `max_steps`: the solver's step budget; default the classifier's own
            `max_steps` field if it has one, else `MAX_STEPS` (256). (Keyword only
            argument.)

        **Returns:**

        The scores $\\ell$, shape `(B, C)`.
        """
        images = jnp.asarray(images, self.dtype)
        if images.ndim != 2 or images.shape[1] != self.num_inputs:
            raise ValueError(
                f"`{type(self).__name__}(images)` must have shape (B, "
                f"{self.num_inputs}); got {images.shape}."
            )
        if contexts is None:
            y0 = jax.vmap(self.initial_state)(images)
        else:
            contexts = jnp.asarray(contexts, self.dtype)
            y0 = jax.vmap(self.initial_state)(images, contexts)
        budget: int = getattr(self, "max_steps", MAX_STEPS)
        if max_steps is not None:
            budget = max_steps
        y1 = solve_batch(self.system, y0, t1=T1, rtol=RTOL, atol=ATOL, max_steps=budget)
        return jax.vmap(self.readout)(y1)


def _every_floating_array(module) -> PyTree[bool]:
    # the `trainable_filter` of the classifiers here: every floating array
    return jtu.tree_map(eqx.is_inexact_array, module)


def _parameter_dtype(module) -> np.dtype:
    # the `dtype` of the classifiers here: that of their first floating array
    return jtu.tree_leaves(eqx.filter(module, eqx.is_inexact_array))[0].dtype


def _no_context(name: str, context) -> None:
    if context is not None:
        raise ValueError(f"`{name}` takes no context image; got one.")


class HopfieldClassifier(AbstractClassifier):
    r"""A continuous Hopfield network read as a classifier.

    Units: `num_inputs` pixels, `num_extra` hidden units, `num_classes` class units. The
    initial state is the pixels followed by zeros; the scores are the class units'
    states at $t = 1$. The weights are dense, or restricted to a small-world graph
    (`graph_k`) by a fixed mask; either way they are symmetrised by the dynamics.
    """

    weights: Float[Array, "n n"]
    bias: Float[Array, " n"]
    mask: Bool[Array, "n n"] | None
    lagrangian: Callable
    num_inputs: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        num_inputs: int,
        num_extra: int = 100,
        num_classes: int = 10,
        *,
        lagrangian: str | Callable = "tanh",
        graph_k: int | None = None,
        max_steps: int = MAX_STEPS,
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `num_inputs`: pixels per image $P$.
        - `num_extra`: hidden units.
        - `num_classes`: classes $C$.
        - `lagrangian`: `"tanh"`, `"relu"`, `"sigmoid"`, `"identity"` or a Lagrangian.
            (Keyword only argument.)
        - `graph_k`: `None` for dense weights, or the (even) number of neighbours of a
            small-world graph that masks them. (Keyword only argument.)
        - `max_steps`: the solver's step budget of the forward pass. (Keyword only
            argument.)
        - `dtype`: floating dtype of the parameters. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)

        Weights start as $\mathcal N(0, 1/N)$, biases at zero.
        """
        call = "HopfieldClassifier"
        _check_sizes(
            call, num_inputs=num_inputs, num_extra=num_extra, num_classes=num_classes
        )
        n = num_inputs + num_extra + num_classes
        wkey, gkey = jr.split(key)
        dtype = _dtype(dtype)
        edges = _graph(call, n, graph_k, key=gkey)
        self.weights = jr.normal(wkey, (n, n), dtype) / np.sqrt(n)
        self.bias = jnp.zeros(n, dtype)
        self.mask = None if edges is None else edge_matrix(edges, n)
        self.lagrangian = _lagrangian(call, lagrangian)
        self.num_inputs = num_inputs
        self.num_classes = num_classes
        self.max_steps = _check_max_steps(call, max_steps)

    @property
    def num_units(self) -> int:
        """$N$."""
        return self.weights.shape[0]

    @property
    def hopfield(self) -> hopkur.Hopfield:
        """The network as a [`hopkur.Hopfield`][] (mask applied)."""
        weights = (
            self.weights if self.mask is None else jnp.where(self.mask, self.weights, 0)
        )
        return hopkur.Hopfield(weights, self.bias, self.lagrangian)

    @property
    def system(self) -> hopkur.Hopfield:
        return self.hopfield

    def initial_state(self, image, context=None):
        _no_context("HopfieldClassifier", context)
        return encode_hopfield(image, self.num_units)

    def readout(self, y):
        return y[-self.num_classes :]

    def trainable_filter(self) -> PyTree[bool]:
        return _every_floating_array(self)

    @property
    def dtype(self) -> np.dtype:
        return _parameter_dtype(self)


def _oscillator_coupling(call, n, dim, graph_k, interaction, dtype, *, key):
    gkey, wkey = jr.split(key)
    edges = _graph(call, n, graph_k, key=gkey)
    if edges is None:
        if interaction != "linear":
            raise ValueError(
                f"`{call}(interaction=...)` must be 'linear' with dense coupling "
                f"(graph_k=None); got {interaction!r}."
            )
        return hopkur.DenseCoupling(jr.normal(wkey, (n, n), dtype) / np.sqrt(n))
    e = edges.shape[0]
    scale = 1 / np.sqrt(graph_k)
    if interaction == "linear":
        inter = hopkur.LinearInteraction(scale * jr.normal(wkey, (e,), dtype))
    elif interaction == "relu":
        akey, bkey = jr.split(wkey)
        inter = hopkur.ReluInteraction(
            scale * jr.normal(akey, (e,), dtype), scale * jr.normal(bkey, (e,), dtype)
        )
    else:
        raise ValueError(
            f"`{call}(interaction=...)` must be 'linear' or 'relu'; got "
            f"{interaction!r}."
        )
    return hopkur.EdgeCoupling(jnp.asarray(edges), inter, n)


class _OscillatorParts(NamedTuple):
    num_units: int
    dtype: Any
    kuramoto: hopkur.Kuramoto
    initial: Float[Array, "m d"]
    centre: Float[Array, ""]


def _oscillator_parts(
    call: str,
    num_inputs: int,
    num_extra: int,
    num_classes: int,
    dim: int,
    graph_k: int | None,
    interaction: str,
    dtype,
    *,
    pixel_centre: float | int,
    class_start: str,
    coupling_key: PRNGKeyArray,
    initial_key: PRNGKeyArray,
) -> _OscillatorParts:
    """The construction shared by the two oscillator classifiers: checks, the number
    of units (pixels, reference, hidden, classes), the Kuramoto model, the trained
    initial hidden (and, `class_start="random"`, class) oscillators and the pixel
    centre $m$ of the encoding."""
    _check_sizes(
        call, num_inputs=num_inputs, num_extra=num_extra, num_classes=num_classes
    )
    if not isinstance(dim, int) or dim < 2:
        raise ValueError(f"`{call}(dim=...)` must be an integer >= 2; got {dim!r}.")
    if class_start not in CLASS_STARTS:
        raise ValueError(
            f"`{call}(class_start=...)` must be one of {CLASS_STARTS}; got "
            f"{class_start!r}."
        )
    if isinstance(pixel_centre, bool) or not 0 <= pixel_centre < 1:
        raise ValueError(
            f"`{call}(pixel_centre=...)` must be a number in [0, 1); got "
            f"{pixel_centre!r}."
        )
    dtype = _dtype(dtype)
    n = num_inputs + 1 + num_extra + num_classes
    coupling = _oscillator_coupling(
        call, n, dim, graph_k, interaction, dtype, key=coupling_key
    )
    trained = num_extra + (num_classes if class_start == "random" else 0)
    initial = hopkur.random_sphere((trained,), dim, key=initial_key, dtype=dtype)
    centre = jnp.asarray(pixel_centre, dtype)
    return _OscillatorParts(n, dtype, hopkur.Kuramoto(coupling), initial, centre)


def _initial_oscillators(
    image, num_units: int, initial, centre, num_common: int
) -> Float[Array, "n d"]:
    """The oscillators' initial state: the pixels encoded with $f = (p - m)/(1 - m)$,
    the reference at $e_1$, the trained hidden (and class) oscillators (normalised),
    then `num_common` class oscillators at $e_1$."""
    dim = initial.shape[1]
    ref = reference_oscillator(dim, dtype=initial.dtype)[None]
    common = jnp.broadcast_to(ref, (num_common, dim))
    fill = jnp.concatenate([ref, hopkur.normalise(initial), common])
    # encode_oscillators maps q to 2 q - 1: q = (f + 1) / 2 gives f
    image = jnp.asarray(image, initial.dtype)
    shifted = ((image - centre) / (1 - centre) + 1) / 2
    return encode_oscillators(shifted, num_units, dim, fill=fill)


def _oscillator_filter(module) -> PyTree[bool]:
    # every floating array but the (fixed) pixel centre of the encoding
    spec = _every_floating_array(module)
    return eqx.tree_at(lambda m: m.centre, spec, replace=False)


class KuramotoClassifier(AbstractClassifier):
    r"""Generalised Kuramoto oscillators read as a classifier.

    Oscillators: `num_inputs` pixel oscillators, one reference oscillator (index
    `num_inputs`), `num_extra` hidden and `num_classes` class oscillators, all on
    $S^{D-1}$. Pixel $p$ starts at $(f, \sqrt{1-f^2}, 0, \dots)$ with
    $f = \operatorname{clip}((p - m)/(1 - m), -1, 1)$ (see
    `hopkur.data.encode_oscillators`; $m = 1/2$ gives $f = 2p - 1$), the reference at
    $e_1$, the others at trained unit vectors `initial` (or the class oscillators at
    $e_1$). The score of class $c$ is $x_c(1)\cdot x_\text{ref}(1)$, in $[-1, 1]$.
    Couplings: a dense linear matrix, or a small-world graph with a linear or relu
    interaction per edge; no natural frequencies (a common $\Omega$ could not change
    the rotation-invariant readout).
    """

    kuramoto: hopkur.Kuramoto
    initial: Float[Array, "m d"]
    centre: Float[Array, ""]
    num_inputs: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)
    class_start: str = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        num_inputs: int,
        num_extra: int = 100,
        num_classes: int = 10,
        dim: int = 4,
        *,
        graph_k: int | None = None,
        interaction: str = "linear",
        pixel_centre: float | int = 0.5,
        class_start: str = "random",
        max_steps: int = MAX_STEPS,
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `num_inputs`, `num_extra`, `num_classes`: as for
            [`hopkur.experiments.HopfieldClassifier`][].
        - `dim`: the oscillator dimension $D \ge 2$.
        - `graph_k`: `None` for a dense coupling matrix ($\mathcal N(0, 1/N)$), or the
            neighbours of a small-world graph (per-edge parameters
            $\mathcal N(0, 1/k)$). (Keyword only argument.)
        - `interaction`: `"linear"` or (graphs only) `"relu"`. (Keyword only argument.)
        - `pixel_centre`: the pixel value $m$ mapped to $f = 0$ (see
            [`hopkur.experiments.oscillator_centre`][]): $1/2$ (the default) gives
            $f = 2p - 1$. (Keyword only argument.)
        - `class_start`: `"random"`: the class oscillators start at trained, distinct
            unit vectors; `"common"`: all at the reference $e_1$, as in the research
            code (the hidden oscillators keep distinct trained starts, so the initial
            state is no equilibrium, MODELS.md §4.3). (Keyword only argument.)
        - `max_steps`: the solver's step budget of the forward pass. (Keyword only
            argument.)
        - `dtype`: floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        call = "KuramotoClassifier"
        ckey, ikey = jr.split(key)
        parts = _oscillator_parts(
            call,
            num_inputs,
            num_extra,
            num_classes,
            dim,
            graph_k,
            interaction,
            dtype,
            pixel_centre=pixel_centre,
            class_start=class_start,
            coupling_key=ckey,
            initial_key=ikey,
        )
        self.kuramoto = parts.kuramoto
        self.initial = parts.initial
        self.centre = parts.centre
        self.num_inputs = num_inputs
        self.num_classes = num_classes
        self.class_start = class_start
        self.max_steps = _check_max_steps(call, max_steps)

    @property
    def num_units(self) -> int:
        """$N$ (pixels, reference, hidden and class oscillators)."""
        common = self.num_classes if self.class_start == "common" else 0
        return self.num_inputs + 1 + self.initial.shape[0] + common

    @property
    def dim(self) -> int:
        """$D$."""
        return self.initial.shape[1]

    @property
    def system(self) -> hopkur.Kuramoto:
        return self.kuramoto

    def initial_state(self, image, context=None):
        _no_context("KuramotoClassifier", context)
        common = self.num_classes if self.class_start == "common" else 0
        return _initial_oscillators(
            image, self.num_units, self.initial, self.centre, common
        )

    def readout(self, y):
        return y[-self.num_classes :] @ y[self.num_inputs]

    def trainable_filter(self) -> PyTree[bool]:
        return _oscillator_filter(self)

    @property
    def dtype(self) -> np.dtype:
        return _parameter_dtype(self)


class HopfieldKuramotoClassifier(AbstractClassifier):
    r"""The coupled Hopfield–Kuramoto network ([`hopkur.HopfieldKuramoto`][], *network*
    coupling) read as a classifier: every unit has a threshold state and an
    oscillator; both see the image (the encoders of the two classifiers above, with the
    reference at index `num_inputs`); the scores are the last `num_classes` threshold
    states at $t = 1$. Trained: Hopfield weights and biases, oscillator couplings, the
    per-edge coefficients $c_{ij}$ and the initial hidden and class oscillators.

    With `binding=True` the model is called as `model(images, contexts)`: the image
    goes to the threshold units only (pixels, then zeros) and the context image to the
    oscillators only (encoded as above). This is the note's MNIST-addition setting,
    where the answer needs both, so the two kinds of unit must be bound through the
    coefficients $c_{ij}$.
    """

    weights: Float[Array, "n n"]
    bias: Float[Array, " n"]
    lagrangian: Callable
    kuramoto: hopkur.Kuramoto
    coupling: hopkur.NetworkCoupling
    initial: Float[Array, "m d"]
    centre: Float[Array, ""]
    num_inputs: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)
    class_start: str = eqx.field(static=True)
    binding: bool = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        num_inputs: int,
        num_extra: int = 100,
        num_classes: int = 10,
        dim: int = 4,
        *,
        lagrangian: str | Callable = "tanh",
        graph_k: int | None = None,
        interaction: str = "linear",
        pixel_centre: float | int = 0.5,
        class_start: str = "random",
        binding: bool = False,
        max_steps: int = MAX_STEPS,
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `num_inputs`, `num_extra`, `num_classes`, `lagrangian`: as for
            [`hopkur.experiments.HopfieldClassifier`][] (`num_inputs`: the pixels of
            one image; with `binding`, of the image and of the context alike).
        - `dim`, `interaction`: as for [`hopkur.experiments.KuramotoClassifier`][].
        - `graph_k`: `None` for dense oscillator couplings and an all-to-all coupling
            graph (every pair has a coefficient $c_{ij}$), or the neighbours of the
            small-world graphs used for both. (Keyword only argument.)
        - `binding`: `False`: one image seen by both kinds of unit; `True`: the image
            on the threshold units and a context image on the oscillators. (Keyword
            only argument.)
        - `dtype`: floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        - `pixel_centre`: the pixel value $m$ mapped to $f = 0$ (see
            [`hopkur.experiments.oscillator_centre`][]): $1/2$ (the default) gives
            $f = 2p - 1$. (Keyword only argument.)
        - `class_start`: `"random"`: the class oscillators start at trained, distinct
            unit vectors; `"common"`: all at the reference $e_1$, as in the research
            code (the hidden oscillators keep distinct trained starts, so the initial
            state is no equilibrium, MODELS.md §4.3). (Keyword only argument.)
        - `max_steps`: the solver's step budget of the forward pass. (Keyword only
            argument.)

        Coefficients $c_{ij}$ start as $\mathcal N(0, 10^{-4})$.
        """
        call = "HopfieldKuramotoClassifier"
        wkey, ckey, gkey, hkey, ikey = jr.split(key, 5)
        parts = _oscillator_parts(
            call,
            num_inputs,
            num_extra,
            num_classes,
            dim,
            graph_k,
            interaction,
            dtype,
            pixel_centre=pixel_centre,
            class_start=class_start,
            coupling_key=ckey,
            initial_key=ikey,
        )
        n, dtype = parts.num_units, parts.dtype
        self.weights = jr.normal(wkey, (n, n), dtype) / np.sqrt(n)
        self.bias = jnp.zeros(n, dtype)
        self.lagrangian = _lagrangian(call, lagrangian)
        self.kuramoto = parts.kuramoto
        edges = _graph(call, n, graph_k, key=gkey)
        if edges is None:
            edges = np.asarray(hopkur.complete_edges(n))
        self.coupling = hopkur.NetworkCoupling(
            jnp.asarray(edges), 1e-2 * jr.normal(hkey, (edges.shape[0],), dtype)
        )
        self.initial = parts.initial
        self.centre = parts.centre
        self.num_inputs = num_inputs
        self.num_classes = num_classes
        self.class_start = class_start
        if not isinstance(binding, bool):
            raise ValueError(f"`{call}(binding=...)` must be a bool; got {binding!r}.")
        self.binding = binding
        self.max_steps = _check_max_steps(call, max_steps)

    @property
    def num_units(self) -> int:
        """$N$."""
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        """$D$."""
        return self.initial.shape[1]

    @property
    def system(self) -> hopkur.HopfieldKuramoto:
        return hopkur.HopfieldKuramoto(
            hopkur.Hopfield(self.weights, self.bias, self.lagrangian),
            self.kuramoto,
            self.coupling,
        )

    def initial_state(self, image, context=None):
        name = "HopfieldKuramotoClassifier"
        if not self.binding:
            _no_context(name, context)
            context = image
        elif context is None:
            raise ValueError(
                f"`{name}(binding=True)` needs a context image for the oscillators."
            )
        common = self.num_classes if self.class_start == "common" else 0
        x = _initial_oscillators(
            context, self.num_units, self.initial, self.centre, common
        )
        return encode_hopfield(image, self.num_units), x

    def readout(self, y):
        return y[0][-self.num_classes :]

    def trainable_filter(self) -> PyTree[bool]:
        return _oscillator_filter(self)

    @property
    def dtype(self) -> np.dtype:
        return _parameter_dtype(self)
