r"""Self-supervised training of the object-discovery networks, and their evaluation.

**Objective: contrastive, as AKOrN.** Each training image is augmented twice
(`augment`: a random crop of 50-100% of its side resized back, a horizontal flip,
brightness, contrast and per-channel gain jitter, pixel noise); both views go through
the network to embeddings $z$ (max-pooled readout features, then an MLP), and the
SimCLR loss (NT-Xent, temperature $\tau$) asks each view's $z$ to be nearest to the
other view of the same image among the $2B$ views of the batch:

$$\mathcal{L} = -\frac{1}{2B}\sum_{a}\log\frac{\exp(\hat z_a\cdot\hat z_{a'}/\tau)}
{\sum_{b\neq a}\exp(\hat z_a\cdot\hat z_b/\tau)}, \qquad \hat z = z/\|z\|.$$

Why this and not reconstruction: the segments are read from the per-patch states, and
a reconstruction loss can be met patch by patch (each patch's state encoding its own
pixels) with no pressure to bind patches together; the contrastive loss on a pooled
embedding rewards states that summarise the image as a few coherent parts, which is
the pressure AKOrN relies on. It needs no decoder. Measured cost of one step (batch 32,
two views each, 64 channels, $n = 4$, $T = 8$, patches of 4 pixels, attention): 0.71
CPU-seconds on Tetrominoes-like images (8×8 patches) and 1.7 on Shapes-like ones
(10×10), so an unloaded 2-core machine runs roughly 5,000-10,000 steps of the former
in 1-2 hours; the convolutional coupling (XLA's CPU convolution and its gradient) is
several times slower per step.

**Evaluation** (AKOrN's): [`hopkur.experiments.objects.segment`][] clusters the final
features of each image into `n_clusters` segments; FG-ARI and MBO are computed against
the true masks (`fg_ari`, `mbo`), beside the two trivial references (k-means over the
foreground pixels' colours, and over their positions).
"""

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._io import (
    atomic_save_eqx,
    atomic_write_json,
    InputFileError,
    load_eqx,
    read_json,
    RunStateError,
)
from ..training import make_optimiser, train
from ._networks import AbstractObjectNetwork, COUPLINGS, ObjectAKOrN, ObjectItrNet
from ._segment import segment


# The defaults of `hopkur objects train` (which reads them from here).
DEFAULTS: dict[str, Any] = {
    # data
    "dataset": "tetrominoes",  # "tetrominoes" or "shapes"
    "train_size": 60_000,
    "eval_size": 200,  # validation images per evaluation during training
    "data_seed": 0,
    # model
    "model": "akorn",  # "akorn" or "baseline" (ItrConv / ItrSA)
    "coupling": "attention",  # "conv" or "attention"
    "channels": 64,
    "dim": 4,
    "patch": 4,
    "steps": 8,
    "gamma": 1.0,
    "kernel_size": 5,
    "heads": 4,
    # training
    "batch": 32,
    "lr": 1e-3,
    "temperature": 0.1,
    "train_steps": 2000,
    "eval_every": 250,
    "checkpoint_every": 50,
    "average": 0.99,  # EMA of the parameters (AKOrN: 0.998)
    "features": "states",  # what segment clusters: "states" or "readout"
    "seed": 0,
}

#: `(height, width, channels)` and the default number of clusters (objects + 1) of
#: each data set.
DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "tetrominoes": ((32, 32, 3), 4),
    "shapes": ((40, 40, 1), 5),
}

MODELS = ("akorn", "baseline")
TASK = "objects"


def load_data(dataset: str, split: str, n: int | None, seed: int = 0):
    """`(images, masks)` of a generated multi-object data set
    (`hopkur.data.multi_object.load_objects`)."""
    from ...data.multi_object import load_objects

    return load_objects(dataset, split, n, seed=seed)  # pyright: ignore


def check_config(config: Any, where: str) -> dict[str, Any]:
    """Checks a run's configuration: an objects run (`"task": "objects"`) whose keys
    have the types of `DEFAULTS` (an integer is accepted for a float) and whose model
    keys take allowed values; returns it with the defaults filled in."""
    if not isinstance(config, dict):
        raise RunStateError(f"{where}: the configuration is not a table")
    if config.get("task") != TASK:
        raise RunStateError(
            f"{where} is not a `hopkur objects` run (its config.json has task "
            f"{config.get('task')!r})"
        )
    for key, value in config.items():
        if key not in DEFAULTS:
            continue
        kind = type(DEFAULTS[key])
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind is bool:
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, kind) and not isinstance(value, bool)
        if not ok:
            raise RunStateError(
                f"{where}: '{key}' must be of type {kind.__name__}; got {value!r}"
            )
    cfg = {**DEFAULTS, **config}
    for key, allowed in (
        ("dataset", tuple(DATASETS)),
        ("model", MODELS),
        ("coupling", COUPLINGS),
    ):
        if cfg[key] not in allowed:
            raise RunStateError(f"{where}: '{key}' must be one of {allowed}")
    return cfg


def build_model(config: dict[str, Any], *, key, dtype=None) -> AbstractObjectNetwork:
    """The network described by the model keys of `config` (see `DEFAULTS`):
    [`hopkur.experiments.objects.ObjectAKOrN`][] for `model="akorn"`,
    [`hopkur.experiments.objects.ObjectItrNet`][] for `model="baseline"`."""
    cfg = {**DEFAULTS, **config}
    if cfg["dataset"] not in DATASETS:
        raise ValueError(
            f"`build_model(config)` needs dataset in {tuple(DATASETS)}; got "
            f"{cfg['dataset']!r}."
        )
    if cfg["model"] not in MODELS:
        raise ValueError(
            f"`build_model(config)` needs model in {MODELS}; got {cfg['model']!r}."
        )
    shape, _ = DATASETS[cfg["dataset"]]
    cls = ObjectAKOrN if cfg["model"] == "akorn" else ObjectItrNet
    return cls(
        shape,
        cfg["channels"],
        cfg["dim"],
        patch=cfg["patch"],
        steps=cfg["steps"],
        gamma=cfg["gamma"],
        coupling=cfg["coupling"],
        kernel_size=cfg["kernel_size"],
        heads=cfg["heads"],
        dtype=dtype,
        key=key,
    )


def count_parameters(model) -> int:
    """The number of floating-point numbers in `model`'s arrays."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(x.size for x in leaves))


# --------------------------------------------------------------------------------------
# The objective.
# --------------------------------------------------------------------------------------


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random view of each image `(B, H, W, C)` in $[0, 1]$: a square crop of
    50-100% of the side at a random place, resized back (nearest neighbour); a
    horizontal flip with probability 1/2; brightness ±0.2, contrast ×[0.7, 1.3] and a
    gain ×[0.8, 1.2] per channel; Gaussian noise of standard deviation 0.02; clipped to
    $[0, 1]$. Deterministic in `rng`."""
    images = np.asarray(images, dtype=np.float32)
    b, h, w, c = images.shape
    out = np.empty_like(images)
    scale = rng.uniform(0.5, 1.0, b)
    flips = rng.random(b) < 0.5
    for i in range(b):
        ch, cw = max(1, round(h * scale[i])), max(1, round(w * scale[i]))
        top = rng.integers(0, h - ch + 1)
        left = rng.integers(0, w - cw + 1)
        rows = top + (np.arange(h) * ch) // h
        cols = left + (np.arange(w) * cw) // w
        view = images[i][rows][:, cols]
        out[i] = view[:, ::-1] if flips[i] else view
    brightness = rng.uniform(-0.2, 0.2, (b, 1, 1, 1))
    contrast = rng.uniform(0.7, 1.3, (b, 1, 1, 1))
    gain = rng.uniform(0.8, 1.2, (b, 1, 1, c))
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = (out - mean) * contrast + mean + brightness
    out = out * gain + rng.normal(0.0, 0.02, out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def contrastive_loss(
    za: jax.Array, zb: jax.Array, temperature: float | jax.Array
) -> jax.Array:
    """The SimCLR (NT-Xent) loss of two batches of embeddings `(B, F)`, the rows of
    `za` and `zb` being two views of the same images (see the module docstring)."""
    z = jnp.concatenate([za, zb])
    z = z / jnp.sqrt(jnp.sum(z * z, axis=-1, keepdims=True) + 1e-12)
    n = za.shape[0]
    logits = (z @ z.T) / temperature
    logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
    partner = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(0, n)])
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, partner[:, None], axis=-1))


def make_loss(temperature: float) -> Callable:
    """`(model, batch) -> loss` for `hopkur.experiments.train`, with batches
    `(view_a, view_b, key)` as `make_sampler` draws them."""

    def loss_fn(model, batch):
        a, b, key = batch
        keys = jr.split(key, 2 * a.shape[0])
        views = jnp.concatenate([a, b])
        z = jax.vmap(lambda im, k: model(im, key=k))(views, keys)
        return contrastive_loss(z[: a.shape[0]], z[a.shape[0] :], temperature)

    return loss_fn


def make_sampler(images: np.ndarray, batch: int, seed: int) -> Callable:
    """`step -> (view_a, view_b, key)`: `batch` training images drawn with
    `default_rng([seed, step])` and two augmented views of each, a function of the
    step only (so a resumed run sees the batches of the uninterrupted one)."""

    def sample(step: int):
        rng = np.random.default_rng([int(seed), int(step)])
        idx = rng.integers(0, images.shape[0], batch)
        chosen = images[idx]
        a, b = augment(chosen, rng), augment(chosen, rng)
        key = jr.fold_in(jr.key(seed), step)
        return jnp.asarray(a), jnp.asarray(b), key

    return sample


# --------------------------------------------------------------------------------------
# Evaluation.
# --------------------------------------------------------------------------------------


def evaluate(
    model: AbstractObjectNetwork,
    images: np.ndarray,
    masks: np.ndarray,
    n_clusters: int,
    *,
    features: str = "states",
    steps: int | None = None,
    method: str = "agglomerative",
    seed: int = 0,
    references: bool = False,
) -> dict[str, float]:
    """FG-ARI and MBO of the model's segments of `images` against `masks` (means over
    the images), optionally with those of the two trivial references
    (`colour_reference`, `position_reference`)."""
    from ._metrics import fg_ari, mbo

    pred = segment(
        model,
        images,
        n_clusters,
        features=features,  # pyright: ignore
        method=method,  # pyright: ignore
        key=jr.key(seed),
        steps=steps,
        seed=seed,
    )
    out = {"fg_ari": _mean(fg_ari(masks, pred)), "mbo": _mean(mbo(masks, pred))}
    if references:
        refs = evaluate_references(images, masks, n_clusters, seed=seed)
        for name, scores in refs.items():
            out.update({f"{name}_{k}": v for k, v in scores.items()})
    return out


def evaluate_references(
    images: np.ndarray, masks: np.ndarray, n_clusters: int, *, seed: int = 0
) -> dict[str, dict[str, float]]:
    """FG-ARI and MBO of the two trivial references: k-means over the foreground
    pixels' colours alone (`"colour"`) and over their positions alone (`"position"`).
    They are given the true foreground, and split it into the true number of objects
    of each image (`n_clusters` is the model's number of segments, objects plus
    background, and is not used for them)."""
    from ._metrics import colour_reference, fg_ari, mbo, position_reference

    del n_clusters
    out = {}
    for name, ref in (
        ("colour", colour_reference(images, masks, None, seed=seed)),
        ("position", position_reference(images, masks, None, seed=seed)),
    ):
        out[name] = {"fg_ari": _mean(fg_ari(masks, ref)), "mbo": _mean(mbo(masks, ref))}
    return out


def _mean(value) -> float:
    return float(np.mean(np.asarray(value, dtype=np.float64)))


# --------------------------------------------------------------------------------------
# Runs.
# --------------------------------------------------------------------------------------


def load_model(folder: str | os.PathLike) -> tuple[AbstractObjectNetwork, dict]:
    """`(model, config)` of a run folder with `config.json` and `model.eqx` (a
    `RunStateError` if it is not an objects run, or a file is missing, of the wrong
    type, corrupt or of another model)."""
    folder = Path(folder)
    try:
        saved = read_json(folder / "config.json")
    except InputFileError as e:
        raise RunStateError(str(e)) from None
    cfg = check_config(saved, str(folder))
    try:
        skeleton = build_model(cfg, key=jr.key(0), dtype=jnp.float32)
    except ValueError as e:
        raise RunStateError(f"{folder}: {e}") from None
    return load_eqx(folder / "model.eqx", skeleton), cfg


def load_shipped_model() -> tuple[AbstractObjectNetwork, dict]:
    """`(model, config)` of the small checkpoint shipped in `hopkur/checkpoints`
    (`objects.json` and `objects.eqx`); a `RunStateError` if none ships."""
    import importlib.resources

    files = importlib.resources.files("hopkur.checkpoints")
    if not files.joinpath("objects.eqx").is_file():
        raise RunStateError(
            "no objects checkpoint ships with this installation; pass --checkpoint "
            "DIR (a run folder of `hopkur objects train`)"
        )
    cfg = check_config(json.loads(files.joinpath("objects.json").read_text()), "")
    skeleton = build_model(cfg, key=jr.key(0), dtype=jnp.float32)
    with files.joinpath("objects.eqx").open("rb") as f:
        return eqx.tree_deserialise_leaves(f, skeleton), cfg


def train_objects(
    config: dict[str, Any],
    folder: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Trains an object-discovery network with the contrastive objective.

    The run folder receives `config.json` (first), `train_state.eqx` (the training
    state of `hopkur.experiments.train`, atomically every `checkpoint_every` steps,
    for `resume`), `model.eqx` (the final, averaged model, float32) and
    `history.json`; the returned metrics hold the final validation FG-ARI and MBO.

    **Arguments:**

    - `config`: settings overriding `DEFAULTS`.
    - `folder`: the run folder; must exist.
    - `resume`: continue from `train_state.eqx` (the folder's `config.json` wins,
        except for `checkpoint_every`). (Keyword only argument.)
    - `progress`: show a progress bar. (Keyword only argument.)
    - `log`: where one-line progress messages go. (Keyword only argument.)

    **Returns:**

    The metrics (a dictionary).
    """
    folder = Path(folder)
    cfg = {**DEFAULTS, **config, "task": TASK}
    if resume:
        try:
            saved = read_json(folder / "config.json")
        except InputFileError as e:
            raise RunStateError(str(e)) from None
        cfg = check_config(saved, str(folder))
        if "checkpoint_every" in config:
            cfg["checkpoint_every"] = config["checkpoint_every"]
    cfg = check_config(cfg, str(folder))
    atomic_write_json(folder / "config.json", cfg)
    shape, n_clusters = DATASETS[cfg["dataset"]]
    images, _ = load_data(cfg["dataset"], "train", cfg["train_size"], cfg["data_seed"])
    val_images, val_masks = load_data(
        cfg["dataset"], "validation", cfg["eval_size"], cfg["data_seed"]
    )
    model = build_model(cfg, key=jr.key(cfg["seed"]), dtype=jnp.float32)
    n_params = count_parameters(model)
    log(
        f"objects train: {cfg['model']} ({cfg['coupling']}) on {cfg['dataset']}, "
        f"{n_params} parameters"
    )

    def validate(m):
        return evaluate(m, val_images, val_masks, n_clusters, features=cfg["features"])

    optimiser = make_optimiser("adam", cfg["lr"])
    result = train(
        model,
        make_loss(cfg["temperature"]),
        make_sampler(images, cfg["batch"], cfg["seed"]),
        optimiser=optimiser,
        steps=cfg["train_steps"],
        evaluate=validate,
        metric_names=("fg_ari", "mbo"),
        eval_every=cfg["eval_every"],
        checkpoint=folder / "train_state.eqx",
        checkpoint_every=cfg["checkpoint_every"],
        resume=resume,
        progress=progress,
        description="objects train",
        average=cfg["average"] or None,
    )
    atomic_save_eqx(folder / "model.eqx", result.model)
    losses = result.losses
    history = {"loss": [float(v) for v in losses], **result.evaluations}
    atomic_write_json(folder / "history.json", history)
    finite = losses[np.isfinite(losses)]
    tail = finite[-min(50, finite.size) :] if finite.size else finite
    head = finite[: min(50, finite.size)] if finite.size else finite
    evals = result.evaluations
    return {
        "model": cfg["model"],
        "coupling": cfg["coupling"],
        "dataset": cfg["dataset"],
        "parameters": n_params,
        "train_steps": cfg["train_steps"],
        "resumed_from": result.resumed_from,
        "seconds": round(result.seconds, 1),
        "loss_first": float(np.mean(head)) if head.size else math.nan,
        "loss_last": float(np.mean(tail)) if tail.size else math.nan,
        "val_fg_ari": float(evals["fg_ari"][-1]) if evals.get("fg_ari") else math.nan,
        "val_mbo": float(evals["mbo"][-1]) if evals.get("mbo") else math.nan,
    }


def config_text(config: dict[str, Any]) -> str:
    """The configuration as one sorted JSON line (for logs)."""
    return json.dumps(config, sort_keys=True)
