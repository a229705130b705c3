r"""Trainable image classifiers whose forward pass is an ODE solve (MODELS.md §4).

An image (a flat vector of `P` pixels in $[0, 1]$) becomes the initial state of a
network of `N` units, the network is integrated from $t = 0$ to $t = 1$ (Tsit5,
rtol 1e-3, atol 1e-6), and the class scores $\ell_c$ are read from the last `C` units:

- `HopfieldClassifier`: `P + extra + C` threshold units; initial state: the pixels,
  then zeros; scores: the final states of the last `C` units.
- `KuramotoClassifier`: `P + 1 + extra + C` oscillators; pixel $p$ starts at
  $(f, \sqrt{1 - f^2}, 0, \dots)$ with $f = 2p - 1$, the reference oscillator at $e_1$,
  the others at trained unit vectors; scores: $x_c \cdot x_\text{ref}$ at $t = 1$.
- `HopfieldKuramotoClassifier`: `P + 1 + extra + C` units with both; initial states as
  above; scores: the final threshold states of the last `C` units.

The reference oscillator (index `P`) starts at $e_1$, the direction against which the
pixel oscillators encode their values; reading the class oscillators against its
*final* state makes the readout invariant under a common rotation. The extra and class
oscillators start at trained, distinct unit vectors (never all at one point, which
would be an equilibrium with vanishing gradients).

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


#: Integration time, tolerances and step budget of the forward pass (MODELS.md §4).
T1 = 1.0
RTOL = 1e-3
ATOL = 1e-6
MAX_STEPS = 256

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
        contexts: Float[ArrayLike, "b p"] | None = None,
        *,
        max_steps: int = MAX_STEPS,
    ) -> Float[Array, "b c"]:
        """Class scores of a batch of images.

        **Arguments:**

        - `images`: flat images, shape `(B, P)`.
        - `contexts`: context images `(B, P)`, for models that take one.
        - `max_steps`: the solver's step budget. (Keyword only argument.)

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
        y1 = solve_batch(
            self.system, y0, t1=T1, rtol=RTOL, atol=ATOL, max_steps=max_steps
        )
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

    def __init__(
        self,
        num_inputs: int,
        num_extra: int = 100,
        num_classes: int = 10,
        *,
        lagrangian: str | Callable = "tanh",
        graph_k: int | None = None,
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
    coupling_key: PRNGKeyArray,
    initial_key: PRNGKeyArray,
) -> _OscillatorParts:
    """The construction shared by the two oscillator classifiers: checks, the number
    of units (pixels, reference, hidden, classes), the Kuramoto model and the trained
    initial hidden and class oscillators."""
    _check_sizes(
        call, num_inputs=num_inputs, num_extra=num_extra, num_classes=num_classes
    )
    if not isinstance(dim, int) or dim < 2:
        raise ValueError(f"`{call}(dim=...)` must be an integer >= 2; got {dim!r}.")
    dtype = _dtype(dtype)
    n = num_inputs + 1 + num_extra + num_classes
    coupling = _oscillator_coupling(
        call, n, dim, graph_k, interaction, dtype, key=coupling_key
    )
    initial = hopkur.random_sphere(
        (num_extra + num_classes,), dim, key=initial_key, dtype=dtype
    )
    return _OscillatorParts(n, dtype, hopkur.Kuramoto(coupling), initial)


def _initial_oscillators(image, num_units: int, initial) -> Float[Array, "n d"]:
    """The oscillators' initial state: the pixels encoded, the reference at $e_1$,
    then the trained hidden and class oscillators (normalised)."""
    dim = initial.shape[1]
    ref = reference_oscillator(dim, dtype=initial.dtype)[None]
    fill = jnp.concatenate([ref, hopkur.normalise(initial)])
    return encode_oscillators(image, num_units, dim, fill=fill)


class KuramotoClassifier(AbstractClassifier):
    r"""Generalised Kuramoto oscillators read as a classifier.

    Oscillators: `num_inputs` pixel oscillators, one reference oscillator (index
    `num_inputs`), `num_extra` hidden and `num_classes` class oscillators, all on
    $S^{D-1}$. Pixel $p$ starts at $(f, \sqrt{1-f^2}, 0, \dots)$ with $f = 2p - 1$ (see
    `hopkur.data.encode_oscillators`), the reference at $e_1$, the others at trained
    unit vectors `initial`. The score of class $c$ is $x_c(1)\cdot x_\text{ref}(1)$, in
    $[-1, 1]$. Couplings: a dense linear matrix, or a small-world graph with a linear or
    relu interaction per edge; no natural frequencies (a common $\Omega$ could not
    change the rotation-invariant readout).
    """

    kuramoto: hopkur.Kuramoto
    initial: Float[Array, "m d"]
    num_inputs: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)

    def __init__(
        self,
        num_inputs: int,
        num_extra: int = 100,
        num_classes: int = 10,
        dim: int = 4,
        *,
        graph_k: int | None = None,
        interaction: str = "linear",
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
        - `dtype`: floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        ckey, ikey = jr.split(key)
        parts = _oscillator_parts(
            "KuramotoClassifier",
            num_inputs,
            num_extra,
            num_classes,
            dim,
            graph_k,
            interaction,
            dtype,
            coupling_key=ckey,
            initial_key=ikey,
        )
        self.kuramoto = parts.kuramoto
        self.initial = parts.initial
        self.num_inputs = num_inputs
        self.num_classes = num_classes

    @property
    def num_units(self) -> int:
        """$N$ (pixels, reference, hidden and class oscillators)."""
        return self.num_inputs + 1 + self.initial.shape[0]

    @property
    def dim(self) -> int:
        """$D$."""
        return self.initial.shape[1]

    @property
    def system(self) -> hopkur.Kuramoto:
        return self.kuramoto

    def initial_state(self, image, context=None):
        _no_context("KuramotoClassifier", context)
        return _initial_oscillators(image, self.num_units, self.initial)

    def readout(self, y):
        return y[-self.num_classes :] @ y[self.num_inputs]

    def trainable_filter(self) -> PyTree[bool]:
        return _every_floating_array(self)

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
    """

    weights: Float[Array, "n n"]
    bias: Float[Array, " n"]
    lagrangian: Callable
    kuramoto: hopkur.Kuramoto
    coupling: hopkur.NetworkCoupling
    initial: Float[Array, "m d"]
    num_inputs: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)

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
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `num_inputs`, `num_extra`, `num_classes`, `lagrangian`: as for
            [`hopkur.experiments.HopfieldClassifier`][].
        - `dim`, `interaction`: as for [`hopkur.experiments.KuramotoClassifier`][].
        - `graph_k`: `None` for dense oscillator couplings and an all-to-all coupling
            graph (every pair has a coefficient $c_{ij}$), or the neighbours of the
            small-world graphs used for both. (Keyword only argument.)
        - `dtype`: floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)

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
        self.num_inputs = num_inputs
        self.num_classes = num_classes

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
        _no_context("HopfieldKuramotoClassifier", context)
        x = _initial_oscillators(image, self.num_units, self.initial)
        return encode_hopfield(image, self.num_units), x

    def readout(self, y):
        return y[0][-self.num_classes :]

    def trainable_filter(self) -> PyTree[bool]:
        return _every_floating_array(self)

    @property
    def dtype(self) -> np.dtype:
        return _parameter_dtype(self)
