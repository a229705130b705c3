"""AKOrN Sudoku: training, and evaluation with test-time extension and energy-based
voting.

`train` writes a run folder (its files, the recipe `DEFAULTS` and their checked reading
are in `hopkur.experiments.sudoku_run`); every file is written atomically, so an
interrupted run leaves a loadable checkpoint and `train(..., resume=True)` continues it.
"""

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..data.sudoku import augment, is_valid_solution, sudoku_dataset
from ._io import atomic_save_eqx, atomic_write_bytes, atomic_write_json
from .sudoku_run import (
    all_finite,
    build_model,
    count_parameters,
    DEFAULTS,
    load_resume_state,
    LOSSES,
    make_optimiser,
    read_config,
    read_history,
    RESUMABLE_KEYS,
    TRAIN_MODEL,
)


# --------------------------------------------------------------------------------------
# Inference.
# --------------------------------------------------------------------------------------


@eqx.filter_jit
def _predict_batch(model, puzzles, keys, blocks, steps):
    # keys: (votes,) keys; returns boards (batch, 81) and energies (batch,).
    def one(puzzle, key):
        logits, energy = model(puzzle, key=key, blocks=blocks, steps=steps)
        digits = jnp.argmax(logits[-1], axis=-1).astype(puzzle.dtype) + 1
        return jnp.where(puzzle > 0, puzzle, digits), energy

    def per_vote(key):
        subkeys = jr.split(key, puzzles.shape[0])
        return jax.vmap(one)(puzzles, subkeys)

    boards, energies = jax.vmap(per_vote)(keys)  # (votes, batch, 81), (votes, batch)
    best = jnp.argmin(energies, axis=0)
    chosen = jnp.take_along_axis(boards, best[None, :, None], axis=0)[0]
    return chosen, jnp.take_along_axis(energies, best[None], axis=0)[0]


def predict(
    model,
    puzzles: np.ndarray,
    *,
    key,
    blocks: int | None = None,
    steps: int | None = None,
    votes: int = 1,
    batch: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Solves puzzles with the network (never with the exact solver).

    **Arguments:**

    - `model`: a [`hopkur.experiments.sudoku_model.SudokuAKOrN`][] or
      [`hopkur.experiments.sudoku_model.SudokuTransformer`][].
    - `puzzles`: integer array `(n, 81)`.
    - `key`: a `jax.random.key` for the random initial oscillators. (Keyword only.)
    - `blocks`, `steps`: override the number of iterations / Kuramoto steps per
        iteration (test-time extension). (Keyword only.)
    - `votes`: energy-based voting: run `votes` random initialisations and keep, per
        puzzle, the answer whose final energy is lowest. (Keyword only.)
    - `batch`: puzzles per compiled call. (Keyword only.)

    **Returns:**

    `(boards, energies)`: `int8` boards `(n, 81)` (givens copied) and final energies.
    """
    puzzles = np.asarray(puzzles).reshape(-1, 81).astype(np.int32)
    n = puzzles.shape[0]
    boards, energies = [], []
    for start in range(0, n, batch):
        chunk = puzzles[start : start + batch]
        pad = batch - chunk.shape[0] if n > batch else 0
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)])
        key, sub = jr.split(key)
        b, e = _predict_batch(
            model, jnp.asarray(chunk), jr.split(sub, votes), blocks, steps
        )
        b, e = np.asarray(b), np.asarray(e)
        boards.append(b[: b.shape[0] - pad])
        energies.append(e[: e.shape[0] - pad])
    return np.concatenate(boards).astype(np.int8), np.concatenate(energies)


def evaluate(
    model,
    puzzles: np.ndarray,
    solutions: np.ndarray,
    *,
    key,
    blocks: int | None = None,
    steps: int | None = None,
    votes: int = 1,
    batch: int = 100,
) -> dict[str, float]:
    """Cell accuracy on the blanks, board accuracy (every blank right) and the fraction
    of valid boards (a board may be valid yet differ from the unique solution only if
    the puzzle had several solutions; for our data the two agree)."""
    boards, _ = predict(
        model, puzzles, key=key, blocks=blocks, steps=steps, votes=votes, batch=batch
    )
    blanks = puzzles == 0
    right = (boards == solutions) & blanks
    cell = float(right.sum() / max(1, blanks.sum()))
    board = float(np.mean(np.all((boards == solutions) | ~blanks, axis=1)))
    valid = float(np.mean(is_valid_solution(boards, puzzles)))
    return {"cell_accuracy": cell, "board_accuracy": board, "valid_fraction": valid}


# --------------------------------------------------------------------------------------
# Training.
# --------------------------------------------------------------------------------------


def _loss(model, puzzles, solutions, keys, kind):
    """`(training loss, cross-entropy on the blanks at the last iteration)`; the
    training loss is that of `kind` (one of `LOSSES`)."""
    logits, _ = jax.vmap(lambda p, k: model(p, key=k))(puzzles, keys)  # (b, L, 81, 9)
    target = solutions.astype(jnp.int32) - 1
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, target[:, None, :, None], axis=-1)[..., 0]
    blanks = (puzzles == 0).astype(logits.dtype)[:, None, :]
    per_block = jnp.sum(nll * blanks, axis=(0, 2)) / jnp.maximum(jnp.sum(blanks), 1.0)
    if kind == "all-last":
        return jnp.mean(nll[:, -1]), per_block[-1]
    # Mean over iterations (deep supervision, as in recurrent relational networks).
    return jnp.mean(per_block), per_block[-1]


@eqx.filter_jit
def _train_step(model, opt_state, puzzles, solutions, key, lr, optim, loss_kind):
    keys = jr.split(key, puzzles.shape[0])
    (loss, last), grads = eqx.filter_value_and_grad(_loss, has_aux=True)(
        model, puzzles, solutions, keys, loss_kind
    )
    params = eqx.filter(model, eqx.is_inexact_array)
    updates, opt_state = optim.update(grads, opt_state, params)
    # adamw with learning rate 1 gives the descent direction; scale it by `lr`.
    updates = jax.tree_util.tree_map(lambda u: lr.astype(u.dtype) * u, updates)
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss, last


def ema_decay(decay: float, iteration: int) -> float:
    """The decay of the weights' moving average after `iteration` updates:
    `min(decay, (1 + t) / (10 + t))`, so that the first updates are not averaged
    with the random initial weights for long."""
    return min(decay, (1 + iteration) / (10 + iteration))


@eqx.filter_jit
def _ema_update(average, model, decay):
    """`average + (1 - decay) (model - average)` over the floating-point leaves."""

    def mix(a, m):
        if eqx.is_inexact_array(a):
            return a + (1 - decay.astype(a.dtype)) * (m - a)
        return a

    return jax.tree_util.tree_map(mix, average, model)


def learning_rate(cfg: dict[str, Any], iteration: int, elapsed: float) -> float:
    """Linear warm-up over `warmup` iterations, then a cosine decay over the time
    budget (or `max_iters`, whichever is reached first) down to 5% of `lr`."""
    warm = min(1.0, (iteration + 1) / max(1, cfg["warmup"]))
    progress = max(elapsed / cfg["time_budget"], iteration / cfg["max_iters"])
    progress = min(1.0, progress)
    cosine = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg["lr"] * warm * cosine


def train(
    config: dict[str, Any],
    folder: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Trains a Sudoku model for `config["time_budget"]` seconds of training time.

    **Arguments:**

    - `config`: settings overriding `hopkur.experiments.sudoku_run.DEFAULTS`.
    - `folder`: the run folder (see the module docstring); must exist.
    - `resume`: continue from the checkpoint in `folder` (its `config.json` wins).
        (Keyword only.)
    - `progress`: show a progress bar. (Keyword only.)
    - `log`: where to send one-line progress messages. (Keyword only.)

    **Returns:**

    The final metrics (also appended to `metrics.jsonl`).
    """
    folder = Path(folder)
    cfg = {**DEFAULTS, **config}
    model_key, data_key = jr.split(jr.key(cfg["seed"]))
    optim = make_optimiser(cfg["weight_decay"])
    if resume:
        saved = read_config(folder)
        cfg = {**DEFAULTS, **saved}
        for k in RESUMABLE_KEYS:
            if k in config:
                cfg[k] = config[k]
        model, opt_state, state, average = load_resume_state(folder, optim)
    else:
        model = build_model(cfg, key=model_key)
        opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
        state = {"iteration": 0, "elapsed": 0.0}
        average = model if cfg["ema"] > 0 else None
    if cfg["loss"] not in LOSSES:
        raise ValueError(
            f"`train(config)`: loss must be one of {LOSSES}; got {cfg['loss']!r}."
        )
    if not 0 <= cfg["ema"] < 1:
        raise ValueError(f"`train(config)`: ema must be in [0, 1); got {cfg['ema']}.")
    atomic_write_json(folder / "config.json", cfg)

    puzzles, solutions = sudoku_dataset(
        "train", cfg["train_size"], seed=cfg["data_seed"], progress=progress
    )
    test_p, test_s = sudoku_dataset("test", cfg["eval_size"], seed=cfg["data_seed"])
    rng = np.random.default_rng([cfg["seed"], state["iteration"]])
    n_params = count_parameters(model)
    log(f"sudoku train: {cfg['model']} with {n_params} parameters")

    def used():
        # The weights that are evaluated and saved as `checkpoint.eqx`.
        return model if average is None else average

    def checkpoint():
        if not all_finite(model) or (average is not None and not all_finite(average)):
            raise FloatingPointError(
                f"sudoku train: the parameters became non-finite by iteration "
                f"{state['iteration']}; the last good checkpoint is kept"
            )
        if average is not None:
            atomic_save_eqx(folder / TRAIN_MODEL, model)
        atomic_save_eqx(folder / "checkpoint.eqx", used())
        atomic_save_eqx(folder / "opt_state.eqx", opt_state)
        atomic_write_json(folder / "state.json", state)

    path = folder / "metrics.jsonl"
    history = read_history(path, state["iteration"])
    # Lines written after the checkpoint being resumed (by a run killed later) are
    # dropped, so that iterations stay increasing.
    atomic_write_bytes(path, b"".join(h[1] for h in history))

    def record(metrics):
        line = json.dumps(metrics, sort_keys=True) + "\n"
        old = path.read_bytes() if path.exists() else b""
        atomic_write_bytes(path, old + line.encode())

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(cfg["time_budget"]), unit="s", desc="sudoku train")
        bar.update(int(state["elapsed"]))
    last_ckpt = last_eval = state["elapsed"]
    metrics: dict[str, Any] = history[-1][0] if history else {}
    running = None
    key = jr.fold_in(data_key, state["iteration"])
    while (
        state["elapsed"] < cfg["time_budget"] and state["iteration"] < cfg["max_iters"]
    ):
        t0 = time.time()
        idx = rng.integers(0, puzzles.shape[0], cfg["batch"])
        p, s = augment(puzzles[idx], solutions[idx], rng)
        lr = learning_rate(cfg, state["iteration"], state["elapsed"])
        key, sub = jr.split(key)
        model, opt_state, loss, last = _train_step(
            model,
            opt_state,
            jnp.asarray(p, jnp.int32),
            jnp.asarray(s, jnp.int32),
            sub,
            jnp.asarray(lr, jnp.float32),
            optim,
            cfg["loss"],
        )
        if average is not None:
            decay = ema_decay(cfg["ema"], state["iteration"])
            average = _ema_update(average, model, jnp.asarray(decay, jnp.float32))
        loss = float(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"sudoku train: loss became {loss}")
        running = loss if running is None else 0.98 * running + 0.02 * loss
        dt = time.time() - t0
        state["iteration"] += 1
        state["elapsed"] += dt
        if bar is not None:
            bar.update(int(state["elapsed"]) - bar.n)
            bar.set_postfix(loss=f"{running:.3f}", it=state["iteration"])
        done = (
            state["elapsed"] >= cfg["time_budget"]
            or state["iteration"] >= cfg["max_iters"]
        )
        if state["elapsed"] - last_eval >= cfg["eval_every"] or done:
            last_eval = state["elapsed"]
            metrics = evaluate(used(), test_p, test_s, key=jr.key(1))
            metrics.update(
                iteration=state["iteration"],
                elapsed=round(state["elapsed"], 1),
                loss=running,
                last_block_loss=float(last),
                lr=lr,
            )
            record(metrics)
            log("sudoku train: " + json.dumps(metrics, sort_keys=True))
        if state["elapsed"] - last_ckpt >= cfg["checkpoint_every"] or done:
            last_ckpt = state["elapsed"]
            checkpoint()
    checkpoint()
    if bar is not None:
        bar.close()
    metrics = {**metrics, "parameters": n_params}
    return metrics
