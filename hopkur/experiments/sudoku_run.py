"""The AKOrN Sudoku run folder: the recipe (`DEFAULTS`), the model it builds, and the
checked reading of a run's files.

A run folder holds `config.json` (the model and training settings), `checkpoint.eqx`
(the model's leaves, `equinox.tree_serialise_leaves`), `opt_state.eqx` and `state.json`
(iteration, elapsed training time, for `--resume`), and `metrics.jsonl` (one JSON line
per evaluation). With a moving average of the weights (`ema > 0`), `checkpoint.eqx`
holds the averaged weights (the ones evaluated and used) and `train_model.eqx` the
trained ones. Every file is written atomically (by `hopkur.experiments.sudoku.train`),
so an interrupted run leaves a loadable checkpoint; every file is checked when read
here (a `RunStateError` names the file and what is wrong).
"""

import importlib.resources
import json
import math
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from . import sudoku_model as _models  # private name: see sudoku_model's imports
from ._io import InputFileError, load_eqx, read_json, RunStateError


# The recipe of the shipped checkpoint (`hopkur/checkpoints/sudoku_akorn.json`), and
# the defaults of `hopkur sudoku train`, which reads them from here.
DEFAULTS: dict[str, Any] = {
    # model
    "model": "akorn",  # "akorn" or "transformer"
    "coupling": "attention",  # AKOrN coupling: "relational" or "attention"
    "channels": 64,
    "dim": 4,
    "steps": 2,
    "blocks": 8,
    "gamma": 1.0,
    "omega": "group",
    "heads": 4,
    "attention": "peers",  # attention masked to the row/column/box peers, or "all"
    # training
    "loss": "all-last",  # or "blanks-iterations" (see `LOSSES`)
    "ema": 0.0,  # decay of an exponential moving average of the weights (0: none)
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "batch": 16,
    "train_size": 8000,
    "time_budget": 5400.0,
    "max_iters": 1_000_000,
    "warmup": 100,
    "eval_every": 900.0,
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


def read_history(path: Path, up_to: int) -> list[tuple[dict, bytes]]:
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


def read_config(folder: str | Path) -> dict[str, Any]:
    """The checked `config.json` of the run in `folder` (`check_config`)."""
    folder = Path(folder)
    return check_config(_read_json(folder / "config.json"), str(folder))


def load_model(folder: str | Path, name: str = "checkpoint.eqx"):
    """Loads `(model, config)` from a folder with `config.json` and `checkpoint.eqx`
    (a `RunStateError` if one is missing, of the wrong type or corrupt)."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        dtype = _saved_dtype(folder / name)
    except FileNotFoundError:
        raise RunStateError(f"{folder / name} is missing") from None
    skeleton = build_model(config, key=jr.key(0), dtype=dtype)
    return load_eqx(folder / name, skeleton), config


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


def make_optimiser(weight_decay: float):
    import optax

    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(learning_rate=1.0, weight_decay=weight_decay),
    )


# With a moving average of the weights, `checkpoint.eqx` holds the averaged weights
# (the model that is evaluated and used) and this file the trained ones.
TRAIN_MODEL = "train_model.eqx"


def load_resume_state(folder: str | Path, optim=None):
    """`(model, optimiser state, loop state, average)` of the run in `folder`, checked
    (a `RunStateError` if a file is missing, of the wrong type or corrupt). With a
    moving average of the weights (`ema > 0`), `model` holds the trained weights
    (`train_model.eqx`) and `average` the averaged ones (`checkpoint.eqx`); without,
    `average` is `None`."""
    folder = Path(folder)
    saved = read_config(folder)
    if optim is None:
        optim = make_optimiser({**DEFAULTS, **saved}["weight_decay"])
    average = None
    if {**DEFAULTS, **saved}["ema"] > 0:
        average, _ = load_model(folder)
        model, _ = load_model(folder, TRAIN_MODEL)
    else:
        model, _ = load_model(folder)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    opt_state = load_eqx(folder / "opt_state.eqx", opt_state)
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
