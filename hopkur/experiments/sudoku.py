"""AKOrN Sudoku: training, evaluation with test-time extension and energy-based voting.

A run folder holds `config.json` (the model and training settings), `checkpoint.eqx`
(the model's leaves, `equinox.tree_serialise_leaves`), `opt_state.eqx` and `state.json`
(iteration, elapsed training time, for `--resume`), and `metrics.jsonl` (one JSON line
per evaluation). With a moving average of the weights (`ema > 0`), `checkpoint.eqx`
holds the averaged weights (the ones evaluated and used) and `train_model.eqx` the
trained ones. Every file is written atomically, so an interrupted run leaves a
loadable checkpoint.
"""

import importlib.resources
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
from . import sudoku_model as _models  # private name: see sudoku_model's imports
from ._io import (
    atomic_save_eqx,
    atomic_write_bytes,
    atomic_write_json,
    InputFileError,
    read_json,
    RunStateError,
)


# The recipe of the shipped checkpoint (`hopkur/checkpoints/sudoku_akorn.json`), and
# the defaults of `hopkur sudoku train`, which reads them from here.
DEFAULTS: dict[str, Any] = {
    # model
    "model": "akorn",  # "akorn" or "transformer"
    "coupling": "attention",  # AKOrN coupling: "relational" or "attention"
    "channels": 48,
    "dim": 4,
    "steps": 2,
    "blocks": 8,
    "gamma": 1.0,
    "omega": "group",
    "heads": 4,
    "attention": "peers",  # attention masked to the row/column/box peers, or "all"
    # training
    "loss": "blanks-iterations",  # or "all-last" (see `LOSSES`)
    "ema": 0.0,  # decay of an exponential moving average of the weights (0: none)
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "batch": 16,
    "train_size": 8000,
    "time_budget": 5400.0,
    "max_iters": 1_000_000,
    "warmup": 100,
    "eval_every": 600.0,
    "eval_size": 200,
    "checkpoint_every": 120.0,
    "seed": 0,
    "data_seed": 0,
}

# Settings a resumed run may change (a longer budget, other evaluation intervals).
RESUMABLE_KEYS = ("time_budget", "max_iters", "eval_every", "checkpoint_every")


def all_finite(model) -> bool:
    """Whether every floating-point leaf of `model` is finite."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def _read_history(path: Path, up_to: int) -> list[tuple[dict, bytes]]:
    """The `(metrics, line)` records of `metrics.jsonl` up to iteration `up_to`
    (unreadable lines, such as a line cut short, are dropped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().splitlines(keepends=True):
        try:
            entry = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("iteration"), int):
            continue
        if entry["iteration"] <= up_to and (
            not records or entry["iteration"] > records[-1][0]["iteration"]
        ):
            records.append((entry, line if line.endswith(b"\n") else line + b"\n"))
    return records


MODEL_KEYS = (
    "model",
    "coupling",
    "channels",
    "dim",
    "steps",
    "blocks",
    "gamma",
    "omega",
    "heads",
    "attention",
)

# The training losses: cross-entropy on the blank cells averaged over the iterations
# (deep supervision, hopkur's recipe), or on all 81 cells after the last iteration
# only (the published AKOrN recipe).
LOSSES = ("blanks-iterations", "all-last")

# How attention is masked: to each cell's row/column/box peers (and itself), or not
# at all (every cell attends to every cell; positions told apart by the coupling's
# learned positional embedding).
ATTENTION = ("peers", "all")


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the keys of older runs renamed: `structured: true/false`, written
    before the `attention` key, becomes `attention: "peers"/"all"`."""
    if "structured" not in config:
        return config
    config = dict(config)
    structured = config.pop("structured")
    config.setdefault("attention", "peers" if structured else "all")
    return config


def build_model(
    config: dict[str, Any], *, key, dtype=None
) -> "_models.SudokuAKOrN | _models.SudokuTransformer":
    """Builds the model described by the model keys of `config` (see `DEFAULTS`)."""
    cfg = {**DEFAULTS, **upgrade_config(config)}
    if cfg["attention"] not in ATTENTION:
        raise ValueError(
            f"`build_model(config)` needs attention 'peers' or 'all'; got "
            f"{cfg['attention']!r}."
        )
    structured = cfg["attention"] == "peers"
    if cfg["model"] == "akorn":
        return _models.SudokuAKOrN(
            cfg["channels"],
            cfg["dim"],
            steps=cfg["steps"],
            blocks=cfg["blocks"],
            gamma=cfg["gamma"],
            coupling=cfg["coupling"],
            num_heads=cfg["heads"],
            structured=structured,
            omega=cfg["omega"],
            dtype=dtype,
            key=key,
        )
    if cfg["model"] == "transformer":
        return _models.SudokuTransformer(
            cfg["channels"],
            blocks=cfg["blocks"],
            num_heads=cfg["heads"],
            structured=structured,
            dtype=dtype,
            key=key,
        )
    raise ValueError(
        f"`build_model(config)` needs model 'akorn' or 'transformer'; got "
        f"{cfg['model']!r}."
    )


def count_parameters(model) -> int:
    """The number of trainable floating-point numbers in `model`."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(x.size for x in leaves))


def _saved_dtype(path: Path):
    # Checkpoints are written in the dtype they were trained in: float32 unless the
    # run used --x64. Read the first leaf's header (numpy .npy format) to find out.
    with open(path, "rb") as f:
        header = f.read(128)
    return jnp.float64 if b"<f8" in header else jnp.float32


def check_config(config: Any, where: str) -> dict[str, Any]:
    """Checks a run's configuration against the types of `DEFAULTS` (an integer is
    accepted for a float); returns it, with the keys of older runs renamed
    (`upgrade_config`)."""
    if not isinstance(config, dict):
        raise RunStateError(f"{where}: the configuration is not a table")
    if not isinstance(config.get("structured", True), bool):
        raise RunStateError(
            f"{where}: 'structured' must be of type bool; got {config['structured']!r}"
        )
    config = upgrade_config(config)
    for key, value in config.items():
        if key not in DEFAULTS:
            continue
        kind = type(DEFAULTS[key])
        ok = isinstance(value, kind) and not (
            isinstance(value, bool) and kind is not bool
        )
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise RunStateError(
                f"{where}: '{key}' must be of type {kind.__name__}; got {value!r}"
            )
    return config


def _read_json(path: Path) -> Any:
    try:
        return read_json(path)
    except InputFileError as e:
        raise RunStateError(str(e)) from None


def _deserialise(path: Path, skeleton):
    try:
        with open(path, "rb") as f:
            return eqx.tree_deserialise_leaves(f, skeleton)
    except FileNotFoundError:
        raise RunStateError(f"{path} is missing") from None
    except (ValueError, RuntimeError, EOFError, KeyError, TypeError) as e:
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RunStateError(f"{path} is corrupt or of another model ({text})") from None


def load_model(folder: str | Path, name: str = "checkpoint.eqx"):
    """Loads `(model, config)` from a folder with `config.json` and `checkpoint.eqx`
    (a `RunStateError` if one is missing, of the wrong type or corrupt)."""
    folder = Path(folder)
    config = check_config(_read_json(folder / "config.json"), str(folder))
    try:
        dtype = _saved_dtype(folder / name)
    except FileNotFoundError:
        raise RunStateError(f"{folder / name} is missing") from None
    skeleton = build_model(config, key=jr.key(0), dtype=dtype)
    return _deserialise(folder / name, skeleton), config


def load_shipped_model():
    """Loads `(model, config)` of the small checkpoint shipped in
    `hopkur/checkpoints`."""
    files = importlib.resources.files("hopkur.checkpoints")
    config = json.loads(files.joinpath("sudoku_akorn.json").read_text())
    # The shipped checkpoint is float32 (also under `jax_enable_x64`).
    skeleton = build_model(config, key=jr.key(0), dtype=jnp.float32)
    with files.joinpath("sudoku_akorn.eqx").open("rb") as f:
        model = eqx.tree_deserialise_leaves(f, skeleton)
    return model, config


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


def _make_optimiser(weight_decay: float):
    import optax

    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(learning_rate=1.0, weight_decay=weight_decay),
    )


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


def load_resume_state(folder: str | Path, optim=None):
    """`(model, optimiser state, loop state, average)` of the run in `folder`, checked
    (a `RunStateError` if a file is missing, of the wrong type or corrupt). With a
    moving average of the weights (`ema > 0`), `model` holds the trained weights
    (`train_model.eqx`) and `average` the averaged ones (`checkpoint.eqx`); without,
    `average` is `None`."""
    folder = Path(folder)
    saved = check_config(_read_json(folder / "config.json"), str(folder))
    if optim is None:
        optim = _make_optimiser({**DEFAULTS, **saved}["weight_decay"])
    average = None
    if {**DEFAULTS, **saved}["ema"] > 0:
        average, _ = load_model(folder)
        model, _ = load_model(folder, TRAIN_MODEL)
    else:
        model, _ = load_model(folder)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    opt_state = _deserialise(folder / "opt_state.eqx", opt_state)
    state = _read_json(folder / "state.json")
    if not (
        isinstance(state, dict)
        and isinstance(state.get("iteration"), int)
        and isinstance(state.get("elapsed"), int | float)
        and state["iteration"] >= 0
        and math.isfinite(state["elapsed"])
    ):
        raise RunStateError(f"{folder / 'state.json'} is corrupt: {state!r}")
    return model, opt_state, state, average


# With a moving average of the weights, `checkpoint.eqx` holds the averaged weights
# (the model that is evaluated and used) and this file the trained ones.
TRAIN_MODEL = "train_model.eqx"


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

    - `config`: settings overriding `DEFAULTS`.
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
    optim = _make_optimiser(cfg["weight_decay"])
    if resume:
        saved = check_config(_read_json(folder / "config.json"), str(folder))
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
    history = _read_history(path, state["iteration"])
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
