"""Training loops with optax: optimisers, a resumable loop with atomic checkpoints,
prediction, accuracy and confusion matrices.

**Reproducibility.** Batches are drawn by `numpy.random.default_rng([seed, step])`, a
function of the seed and the step index only, so a run resumed from a checkpoint sees
exactly the batches the uninterrupted run would have seen, and the same seed gives the
same metrics on the same machine.

**Checkpoints.** `train` saves `(trainable parameters, optimiser state, step, loss
history, evaluation history)` with `eqx.tree_serialise_leaves` into a temporary file
that is then renamed over the previous checkpoint, so a run killed at any moment leaves
the last complete checkpoint intact. On Ctrl-C it saves the state after the last
complete step before stopping.
"""

import functools as ft
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PyTree

from ._io import atomic_save_eqx, InputFileError


OPTIMISERS = ("lion", "adam")
SCHEDULES = ("staircase", "exponential", "constant")


@ft.lru_cache(maxsize=64)
def make_optimiser(
    name: str = "lion",
    learning_rate: float = 1e-3,
    *,
    decay_every: int | None = None,
    decay_rate: float = 0.5,
    schedule: str = "staircase",
) -> optax.GradientTransformation:
    r"""An optax optimiser: `optax.lion` (with optax's default weight decay 1e-3) or
    `optax.adam`, with a learning-rate schedule.

    With `decay_every` $= T$ and `decay_rate` $= \gamma$, the learning rate at step
    $t$ is $\eta_0\,\gamma^{\lfloor t/T\rfloor}$ for `"staircase"` (multiplied by
    $\gamma$ every $T$ steps: the halving every 1000 steps of hopkur's classifiers) and
    $\eta_0\,\gamma^{t/T}$ for `"exponential"` (`optax.exponential_decay` without
    staircase: the continuous decay of the research code, which equals the staircase
    at multiples of $T$). `"constant"`, or no `decay_every`, keeps $\eta_0$.

    **Arguments:**

    - `name`: `"lion"` or `"adam"`.
    - `learning_rate`: the initial learning rate $\eta_0$.
    - `decay_every`: steps $T$ per factor `decay_rate`; `None` for a constant rate.
        (Keyword only argument.)
    - `decay_rate`: the factor $\gamma$ per `decay_every` steps. (Keyword only
        argument.)
    - `schedule`: `"staircase"`, `"exponential"` or `"constant"`. (Keyword only
        argument.)

    **Returns:**

    The `optax.GradientTransformation`.
    """
    if name not in OPTIMISERS:
        raise ValueError(
            f"`make_optimiser(name=...)` must be one of {OPTIMISERS}; got {name!r}."
        )
    if schedule not in SCHEDULES:
        raise ValueError(
            f"`make_optimiser(schedule=...)` must be one of {SCHEDULES}; got "
            f"{schedule!r}."
        )
    if not learning_rate > 0:
        raise ValueError(
            "`make_optimiser(learning_rate=...)` must be positive; got "
            f"{learning_rate}."
        )
    lr: Any = learning_rate
    if decay_every and schedule != "constant":
        lr = optax.exponential_decay(
            learning_rate,
            decay_every,
            decay_rate,
            staircase=schedule == "staircase",
        )
    if name == "lion":
        return optax.lion(lr)
    return optax.adam(lr)


@eqx.filter_jit
def _train_step(params, opt_state, mean, batch, static, loss_fn, optimiser, average):
    # One optimiser step of `train`, at module level so that runs with the same model
    # structure, loss, optimiser (`make_optimiser` returns the same object for the same
    # settings) and shapes share one compiled program.
    def loss_of(p):
        return loss_fn(eqx.combine(p, static), batch)

    loss, grads = eqx.filter_value_and_grad(loss_of)(params)
    # optax mixes Python scalars with int32 step counters (bias correction), which
    # strict dtype promotion rejects; the update itself is dtype-preserving.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimiser.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    finite = jnp.all(
        jnp.stack(
            [jnp.array(True)]
            + [jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]
        )
    )
    if mean is not None:
        assert average is not None
        beta = average
        mean = jax.tree_util.tree_map(
            lambda m, p: beta * m + (1 - beta) * p, mean, params
        )
    return loss, finite, (params, opt_state, mean)


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The random generator of one training step: `default_rng([seed, step])`."""
    return np.random.default_rng([int(seed), int(step)])


@dataclass
class TrainResult:
    """The outcome of `train`.

    - `model`: the trained model.
    - `losses`: the training loss of every step, shape `(steps,)`.
    - `evaluations`: `{"step": [...], name: [...]}` for each evaluation metric.
    - `seconds`: wall time of this call (compilation included; excludes time before a
        resume).
    - `resumed_from`: the step the run resumed from (0 for a fresh run).
    """

    model: Any
    losses: np.ndarray
    evaluations: dict[str, list[float] | list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_from: int = 0


def _history_arrays(steps: int, num_evals: int, num_metrics: int):
    losses = np.full(steps, np.nan)
    evals = np.full((num_evals, 1 + num_metrics), np.nan)
    return losses, evals


def _eval_steps(steps: int, eval_every: int | None) -> list[int]:
    """Steps after which evaluations run: every `eval_every` steps and at the end."""
    if not eval_every:
        return [steps] if steps else []
    points = list(range(eval_every, steps, eval_every))
    return [*points, steps] if steps else points


def train(
    model: eqx.Module,
    loss_fn: Callable[[Any, Any], Array],
    sample_batch: Callable[[int], Any],
    *,
    optimiser: optax.GradientTransformation,
    steps: int,
    filter_spec: PyTree[bool] | None = None,
    evaluate: Callable[[eqx.Module], dict[str, float]] | None = None,
    metric_names: Sequence[str] = (),
    eval_every: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    resume: bool = False,
    progress: bool = True,
    description: str = "train",
    average: float | None = None,
) -> TrainResult:
    r"""Minimises `loss_fn` with `optimiser` for `steps` steps.

    **Arguments:**

    - `model`: the initial model (also the template a checkpoint is read into).
    - `loss_fn`: `(model, batch) -> scalar`.
    - `sample_batch`: `step -> batch`, deterministic in `step` (see `batch_rng`).
    - `optimiser`: an optax optimiser. (Keyword only argument.)
    - `steps`: the total number of steps. (Keyword only argument.)
    - `filter_spec`: `True` on the arrays to train (`eqx.partition`); default every
        floating array. Frozen arrays are neither differentiated nor seen by the
        optimiser (so weight decay does not move them). (Keyword only argument.)
    - `evaluate`: `model -> {name: value}` with the keys `metric_names`, run every
        `eval_every` steps and at the end. (Keyword only argument.)
    - `metric_names`: the keys `evaluate` returns. (Keyword only argument.)
    - `eval_every`: steps between evaluations. (Keyword only argument.)
    - `checkpoint`: a file to save the training state to (atomically) every
        `checkpoint_every` steps, at the end and on Ctrl-C. (Keyword only argument.)
    - `checkpoint_every`: steps between checkpoints. (Keyword only argument.)
    - `resume`: read `checkpoint` first, if it exists, and continue from its step.
        (Keyword only argument.)
    - `progress`: show a tqdm progress bar. (Keyword only argument.)
    - `description`: the progress bar's label. (Keyword only argument.)
    - `average`: if given, a decay $\beta$ for an exponential moving average of the
        parameters (Polyak averaging), $\bar\theta \leftarrow \beta\bar\theta +
        (1 - \beta)\theta$ after every step; evaluations and the returned model then
        use the average. (Keyword only argument.)

    **Returns:**

    A `TrainResult`.
    """
    from tqdm.auto import tqdm

    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"`train(steps=...)` must be an integer >= 0; got {steps!r}.")
    if filter_spec is None:
        filter_spec = jax.tree_util.tree_map(eqx.is_inexact_array, model)
    metric_names = tuple(metric_names)
    eval_at = _eval_steps(steps, eval_every) if evaluate is not None else []
    if average is not None and not 0 <= average < 1:
        raise ValueError(f"`train(average=...)` must be in [0, 1); got {average}.")
    params, static = eqx.partition(model, filter_spec)
    opt_state = optimiser.init(params)
    mean = None if average is None else params
    losses, evals = _history_arrays(steps, len(eval_at), len(metric_names))
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        template = (params, opt_state, mean, np.int64(0), losses, evals)
        try:
            restored = eqx.tree_deserialise_leaves(Path(checkpoint), template)
            params, opt_state, mean, start, losses, evals = restored
        except (ValueError, RuntimeError, EOFError, KeyError, TypeError) as e:
            text = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InputFileError(
                f"`train`: the checkpoint {checkpoint} is corrupt or of other "
                f"settings ({text})."
            ) from None
        start = int(start)
        if not 0 <= start <= steps:
            raise ValueError(
                f"`train`: the checkpoint {checkpoint} is at step {start}, beyond "
                f"`steps={steps}`."
            )

    def make_step(params, opt_state, mean, batch):
        return _train_step(
            params, opt_state, mean, batch, static, loss_fn, optimiser, average
        )

    def current():
        return eqx.combine(params if mean is None else mean, static)

    def save(step):
        if checkpoint is not None:
            state = (params, opt_state, mean, np.int64(step), losses, evals)
            atomic_save_eqx(checkpoint, state)

    t0 = time.perf_counter()
    step = start
    bar = tqdm(
        total=steps, initial=start, desc=description, disable=not progress, leave=False
    )
    try:
        while step < steps:
            loss, finite, new = make_step(params, opt_state, mean, sample_batch(step))
            loss = float(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"`train`: the loss is {loss} at step {step}; lower the learning "
                    "rate or check the data (the last checkpoint is kept)."
                )
            if not bool(finite):
                raise FloatingPointError(
                    f"`train`: the parameters became non-finite at step {step + 1}; "
                    "lower the learning rate (the last checkpoint is kept)."
                )
            params, opt_state, mean = new
            losses[step] = loss
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if step in eval_at:
                assert evaluate is not None
                values = evaluate(current())
                row = eval_at.index(step)
                evals[row, 0] = step
                evals[row, 1:] = [float(values[k]) for k in metric_names]
                if progress:
                    bar.write(
                        f"{description} step {step}: "
                        + ", ".join(f"{k} {float(values[k]):.4f}" for k in metric_names)
                    )
            if step % checkpoint_every == 0 or step == steps:
                save(step)
    except KeyboardInterrupt:
        save(step)
        raise
    finally:
        bar.close()
    done = ~np.isnan(evals[:, 0])
    evaluations: dict[str, list[float] | list[int]] = {
        "step": [int(s) for s in evals[done, 0]]
    }
    for i, name in enumerate(metric_names):
        evaluations[name] = [float(v) for v in evals[done, 1 + i]]
    return TrainResult(
        model=current(),
        losses=losses,
        evaluations=evaluations,
        seconds=time.perf_counter() - t0,
        resumed_from=start,
    )


@eqx.filter_jit
def _predict_batch(model, images, contexts):
    # Module level, so that one compiled function serves every call with the same
    # shapes (a closure would be recompiled on every call of `predict`).
    scores = model(images) if contexts is None else model(images, contexts)
    return jnp.argmax(scores, axis=-1)


def predict(
    model: Callable,
    images: ArrayLike,
    contexts: ArrayLike | None = None,
    *,
    batch_size: int = 256,
    progress: bool = False,
    description: str = "predict",
) -> np.ndarray:
    """Predicted labels $\\arg\\max_c \\ell_c$ of a classifier, batch by batch (the
    last batch is padded so that one compiled function serves every batch).

    **Arguments:**

    - `model`: a classifier (`model(images[, contexts]) -> (B, C)` scores).
    - `images`: `(n, P)`.
    - `contexts`: `(n, P)` context images, for models that take them.
    - `batch_size`: samples per solve. (Keyword only argument.)
    - `progress`: show a progress bar. (Keyword only argument.)
    - `description`: its label. (Keyword only argument.)

    **Returns:**

    Integer labels, shape `(n,)`.
    """
    from tqdm.auto import tqdm

    images = np.asarray(images)
    n = images.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    batch_size = min(batch_size, n)

    out = []
    for lo in tqdm(
        range(0, n, batch_size), desc=description, disable=not progress, leave=False
    ):
        idx = np.arange(lo, lo + batch_size).clip(max=n - 1)
        c = None if contexts is None else np.asarray(contexts)[idx]
        labels = _predict_batch(model, jnp.asarray(images[idx]), c)
        out.append(np.asarray(labels)[: min(batch_size, n - lo)])
    return np.concatenate(out)


def accuracy(predicted: ArrayLike, labels: ArrayLike) -> float:
    """The fraction of `predicted` equal to `labels` (NaN for no samples)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.size == 0:
        return float("nan")
    return float(np.mean(predicted == labels))


def confusion_matrix(
    predicted: ArrayLike, labels: ArrayLike, num_classes: int = 10
) -> np.ndarray:
    """Counts `M[true, predicted]`, shape `(num_classes, num_classes)`."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(predicted)), 1)
    return m
