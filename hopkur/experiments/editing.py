r"""Memory editing (MODELS.md §4.2): change what a frozen Hopfield classifier answers by
training only an oscillator correction.

**Tasks** (`edit_labels`):

- `"swap"`: digits 0 and 1 exchange labels (0 → 1, 1 → 0);
- `"conflate"`: 1 → 0 (ones are to be called zeros; zeros stay zeros).

Digits 0 and 1 are the *touched* digits of both tasks (`TOUCHED_DIGITS`); the others are
*untouched* and must keep their answers.

**Variants:**

- `"non-associative"`: the edit always applies. The oscillators start from trained
  states that do not depend on the input.
- `"associative"`: each query image comes with a *context* image shown to the
  oscillators — through a trained [`hopkur.experiments.ContextEncoder`][]
  (`context="encoder"`), or raw, as the pixel oscillators' initial states
  ([`hopkur.experiments.ImageContext`][], `context="image"`, as in the research note);
  the edit applies only when the context is a "1" (`CONTEXT_DIGIT`) and the original
  labels hold otherwise.

**Metrics** (`evaluate_edit`), on the test split:

- *edited-task accuracy*:
    - non-associative: the fraction of test images whose prediction equals the edited
      label;
    - associative: every test image is evaluated twice, once with a context drawn
      from the test "1"s (target: the edited label) and once with a context drawn from
      the other test digits (target: the original label); the fraction of these
      `2 n` pairs answered correctly. Contexts are drawn by
      `numpy.random.default_rng(seed)`.
- *untouched-digit accuracy*: the same, restricted to test images of digits 2–9
  (whose target is always the original label);
- *touched-digit accuracy*: restricted to images of 0 and 1;
- for the associative variant also the accuracies with a "1" context (`context_one`)
  and with another context (`context_other`).

The frozen network's metrics on the same pairs are the *baseline* (it ignores
contexts); its accuracy on the original task is reported beside them.
"""

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Int, PRNGKeyArray

import hopkur
from hopkur.data import encode_hopfield

from .classifiers import AbstractClassifier, classification_loss, HopfieldClassifier
from .correction import ContextEncoder, ImageContext, OscillatorCorrection
from .training import accuracy, batch_rng, predict


TASKS = ("swap", "conflate")
VARIANTS = ("non-associative", "associative")
CONTEXTS = ("encoder", "image")
TOUCHED_DIGITS = (0, 1)
CONTEXT_DIGIT = 1


def edit_labels(labels: Int[ArrayLike, " n"], task: str) -> np.ndarray:
    """The labels after an edit: `"swap"` exchanges 0 and 1, `"conflate"` maps 1 to 0.

    **Arguments:**

    - `labels`: integer labels.
    - `task`: `"swap"` or `"conflate"`.

    **Returns:**

    A new integer array.
    """
    if task not in TASKS:
        raise ValueError(
            f"`edit_labels(task=...)` must be one of {TASKS}; got {task!r}."
        )
    labels = np.asarray(labels)
    out = labels.copy()
    if task == "swap":
        out[labels == 0] = 1
        out[labels == 1] = 0
    else:
        out[labels == 1] = 0
    return out


class EditedClassifier(AbstractClassifier):
    """A frozen [`HopfieldClassifier`][hopkur.experiments.HopfieldClassifier] with a
    [`hopkur.experiments.OscillatorCorrection`][]: the threshold units start from the
    pixels (then zeros) as before, the oscillators from the correction's initial states
    (a function of the context image in the associative variant), and the scores are
    the last `num_classes` threshold states at $t = 1$.
    """

    correction: OscillatorCorrection
    num_inputs: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)

    @property
    def system(self) -> OscillatorCorrection:
        return self.correction

    @property
    def dtype(self) -> np.dtype:
        return self.correction.oscillators.dtype

    def initial_state(self, image, context=None):
        x_h = encode_hopfield(image, self.correction.num_units)
        return self.correction.initial_state(x_h, context)

    def readout(self, y):
        return y[0][-self.num_classes :]

    def trainable_filter(self):
        spec = jax.tree_util.tree_map(lambda _: False, self)
        return eqx.tree_at(
            lambda m: m.correction, spec, self.correction.trainable_filter()
        )


EditedClassifier.__init__.__doc__ = """**Arguments:**

- `correction`: the [`hopkur.experiments.OscillatorCorrection`][] (it holds the frozen
  network).
- `num_inputs`: pixels per image.
- `num_classes`: classes (the last units).
"""


def make_edited_classifier(
    frozen: HopfieldClassifier,
    variant: str = "non-associative",
    *,
    dim: int = 4,
    mode: Literal["additive", "multiplicative"] = "multiplicative",
    graph_k: int | None = None,
    oscillator_k: int | None = None,
    alpha: float = 0.1,
    encoder_rank: int = 4,
    context: Literal["encoder", "image"] = "encoder",
    key: PRNGKeyArray,
) -> EditedClassifier:
    r"""Wraps a trained Hopfield classifier in an oscillator correction.

    **Arguments:**

    - `frozen`: the pre-trained classifier.
    - `variant`: `"non-associative"` (trained initial oscillators) or `"associative"`
        (plus a [`hopkur.experiments.ContextEncoder`][] of the context image).
    - `dim`: the oscillator dimension $D$. (Keyword only argument.)
    - `mode`: `"additive"` or `"multiplicative"`. (Keyword only argument.)
    - `graph_k`: `None` for the all-to-all (low-rank) correction, or the neighbours of
        a small-world coupling graph $M$. (Keyword only argument.)
    - `oscillator_k`: `None` for a single trainable mean-field coupling strength among
        the oscillators (initially 0), or the neighbours of a small-world graph with one
        trainable linear coupling per edge (initially 0). (Keyword only argument.)
    - `alpha`: the initial $\alpha$ (non-zero, so that the oscillators get gradients at
        the first step). (Keyword only argument.)
    - `encoder_rank`: the bottleneck of the context encoder. (Keyword only argument.)
    - `context`: associative variant only: `"encoder"` (a trained
        [`hopkur.experiments.ContextEncoder`][] of the context image) or `"image"`
        (the raw context image as the pixel oscillators' initial states, a
        [`hopkur.experiments.ImageContext`][]). (Keyword only argument.)
    - `key`: a `jax.random.key`. (Keyword only argument.)

    **Returns:**

    The `EditedClassifier`.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"`make_edited_classifier(variant=...)` must be one of {VARIANTS}; got "
            f"{variant!r}."
        )
    if context not in CONTEXTS:
        raise ValueError(
            f"`make_edited_classifier(context=...)` must be one of {CONTEXTS}; got "
            f"{context!r}."
        )
    hopfield = frozen.hopfield
    n = hopfield.num_units
    dtype = hopfield.weights.dtype
    okey, gkey, kkey, ekey = jr.split(key, 4)
    edges = None
    if graph_k:
        edges = np.asarray(hopkur.small_world_edges(gkey, n, graph_k, 0.1))
    if oscillator_k:
        oedges = np.asarray(hopkur.small_world_edges(kkey, n, oscillator_k, 0.1))
        coupling = hopkur.EdgeCoupling(
            jnp.asarray(oedges),
            hopkur.LinearInteraction(jnp.zeros(oedges.shape[0], dtype)),
            n,
        )
    else:
        coupling = hopkur.MeanFieldCoupling(jnp.zeros((), dtype))
    encoder = None
    if variant == "associative" and context == "image":
        encoder = ImageContext(frozen.num_inputs)
    elif variant == "associative":
        encoder = ContextEncoder(
            frozen.num_inputs, n, dim, encoder_rank, dtype=dtype, key=ekey
        )
    correction = OscillatorCorrection(
        hopfield,
        dim,
        mode=mode,
        edges=edges,
        kuramoto=hopkur.Kuramoto(coupling),
        alpha=alpha,
        encoder=encoder,
        key=okey,
    )
    return EditedClassifier(correction, frozen.num_inputs, frozen.num_classes)


def context_pool(labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the context images: the "1"s and the other digits."""
    labels = np.asarray(labels)
    return np.flatnonzero(labels == CONTEXT_DIGIT), np.flatnonzero(
        labels != CONTEXT_DIGIT
    )


def associative_pairs(
    labels: ArrayLike, task: str, *, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The evaluation pairs of the associative variant: every image twice, once with a
    "1" context and once with another context (drawn from the same set of images by
    `default_rng(seed)`).

    **Arguments:**

    - `labels`: the labels of the images (queries and contexts come from them).
    - `task`: the edit.
    - `seed`: the seed of the context draw. (Keyword only argument.)

    **Returns:**

    `(query, context, is_one, target)`: query and context indices, whether the context
    is a "1", and the target labels, each of length `2 n`.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    ones, others = context_pool(labels)
    rng = np.random.default_rng(seed)
    query = np.concatenate([np.arange(n), np.arange(n)])
    context = np.concatenate([rng.choice(ones, n), rng.choice(others, n)])
    is_one = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])
    target = np.where(is_one, edit_labels(labels[query], task), labels[query])
    return query, context, is_one, target


def edit_batch_sampler(
    images: np.ndarray,
    labels: np.ndarray,
    task: str,
    variant: str,
    *,
    batch_size: int,
    seed: int,
    dtype,
) -> Callable[[int], tuple]:
    """`step -> batch` for training an edit: a batch of training images with edited
    labels; in the associative variant each with a context that is a "1" with
    probability 1/2 (target: edited label) and another digit otherwise (target:
    original label).
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    edited = edit_labels(labels, task)
    ones, others = context_pool(labels)

    def sample(step: int):
        rng = batch_rng(seed, step)
        idx = rng.choice(labels.shape[0], batch_size, replace=False)
        x = jnp.asarray(images[idx], dtype)
        if variant == "non-associative":
            return x, jnp.asarray(edited[idx]), None
        is_one = rng.random(batch_size) < 0.5
        ctx = np.where(
            is_one, rng.choice(ones, batch_size), rng.choice(others, batch_size)
        )
        target = np.where(is_one, edited[idx], labels[idx])
        return x, jnp.asarray(target), jnp.asarray(images[ctx], dtype)

    return sample


def edit_loss(model: EditedClassifier, batch) -> Array:
    """The classification loss of an edited classifier on a batch
    `(images, targets, contexts)`."""
    images, targets, contexts = batch
    return classification_loss(model(images, contexts), targets)


def evaluate_edit(
    model: Callable,
    images: np.ndarray,
    labels: np.ndarray,
    task: str,
    variant: str,
    *,
    seed: int,
    batch_size: int = 256,
    uses_context: bool = True,
    progress: bool = False,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Edit metrics of a classifier (see the module docstring).

    **Arguments:**

    - `model`: an `EditedClassifier`, or the frozen classifier for the baseline.
    - `images`, `labels`: the evaluation split.
    - `task`, `variant`: the edit.
    - `seed`: the seed of the associative context draw. (Keyword only argument.)
    - `batch_size`: samples per solve. (Keyword only argument.)
    - `uses_context`: whether `model` takes context images (the frozen baseline does
        not; its predictions are then computed once per image). (Keyword only argument.)
    - `progress`: show a progress bar. (Keyword only argument.)

    **Returns:**

    `(metrics, predicted, target)`: the metrics dictionary (`edited_task`,
    `untouched`, `touched`, `original_task`, and for the associative variant
    `context_one`, `context_other`), and the predicted and target labels of every
    evaluated sample (`2 n` of them in the associative variant).
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if variant == "non-associative":
        predicted = predict(model, images, batch_size=batch_size, progress=progress)
        target = edit_labels(labels, task)
        query_labels = labels
        is_one = None
    else:
        query, context, is_one, target = associative_pairs(labels, task, seed=seed)
        if uses_context:
            predicted = predict(
                model,
                images[query],
                images[context],
                batch_size=batch_size,
                progress=progress,
            )
        else:
            predicted = predict(model, images, batch_size=batch_size, progress=progress)
            predicted = predicted[query]
        query_labels = labels[query]
    untouched = ~np.isin(query_labels, TOUCHED_DIGITS)
    metrics = {
        "edited_task": accuracy(predicted, target),
        "untouched": accuracy(predicted[untouched], target[untouched]),
        "touched": accuracy(predicted[~untouched], target[~untouched]),
        "original_task": accuracy(predicted, query_labels),
    }
    if is_one is not None:
        metrics["context_one"] = accuracy(predicted[is_one], target[is_one])
        metrics["context_other"] = accuracy(predicted[~is_one], target[~is_one])
    return metrics, predicted, target


def oscillator_gram(
    model: EditedClassifier, context: ArrayLike | None = None
) -> np.ndarray:
    r"""The Gram matrix $XX^\top$ of the initial oscillators (for a context image in the
    associative variant), as a NumPy array: the correction is $\alpha(XX^\top - I)$."""
    x = model.correction.initial_oscillators(
        None if context is None else jnp.asarray(context, model.dtype)
    )
    return np.asarray(x @ x.T)
