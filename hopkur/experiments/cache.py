"""A cache of pre-trained classifiers, so that `hopkur demo` and `hopkur edit` train the
network to be edited once per configuration.

A cached model is two files in the cache folder, named by a hash of its
`ClassifyConfig` (`ClassifyConfig.key`): `hopfield-<key>.eqx` (the leaves,
`equinox.tree_serialise_leaves`) and `hopfield-<key>.json` (the configuration and the
metrics of the training run). Both are written atomically, the JSON last, so a file
pair is complete exactly when the JSON exists; a pair that cannot be read is retrained.
"""

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import equinox as eqx

from ._io import atomic_save_eqx, atomic_write_json
from .classifiers import HopfieldClassifier
from .runs import ClassifyConfig, make_classifier, run_classify


CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """`$HOPKUR_CACHE` if set and non-empty, else `~/.cache/hopkur` (hopkur's one
    cache folder)."""
    from .._cache import cache_dir

    return cache_dir()


def cache_paths(
    config: ClassifyConfig, cache_dir: str | os.PathLike
) -> tuple[Path, Path]:
    """The `(model, metadata)` files of a configuration in `cache_dir`."""
    stem = f"{config.model}-v{CACHE_VERSION}-{config.key()}"
    folder = Path(cache_dir)
    return folder / f"{stem}.eqx", folder / f"{stem}.json"


def _load(config, model_path, meta_path, num_inputs):
    if not meta_path.exists() or not model_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("config") != dataclasses.asdict(config):
            raise ValueError("configuration mismatch")
        template = make_classifier(config, num_inputs)
        model = eqx.tree_deserialise_leaves(model_path, template)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        warnings.warn(
            f"cached model {model_path} is unreadable ({error}); retraining it.",
            stacklevel=3,
        )
        return None
    return model, meta


def pretrained_hopfield_classifier(
    config: ClassifyConfig,
    data: tuple,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[HopfieldClassifier, dict[str, Any], bool]:
    """A trained Hopfield classifier for `config`, from the cache or trained now (and
    then cached).

    **Arguments:**

    - `config`: the settings (`config.model` must be `"hopfield"`).
    - `data`: `(train_images, train_labels, test_images, test_labels)`.
    - `cache_dir`: the cache folder; `default_cache_dir()` if `None`. (Keyword only
        argument.)
    - `progress`: progress bars while training. (Keyword only argument.)

    **Returns:**

    `(model, metrics, cached)`: the classifier, the metrics of its training run (see
    `hopkur.experiments.run_classify`) and whether it came from the cache.
    """
    if config.model != "hopfield":
        raise ValueError(
            "`pretrained_hopfield_classifier(config=...)` must have model 'hopfield'; "
            f"got {config.model!r}."
        )
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    model_path, meta_path = cache_paths(config, cache_dir)
    num_inputs = data[0].shape[1]
    found = _load(config, model_path, meta_path, num_inputs)
    if found is not None:
        model, meta = found
        return model, meta["metrics"], True
    model, metrics, _ = run_classify(
        config, data, progress=progress, description="pre-train hopfield"
    )
    assert isinstance(model, HopfieldClassifier)
    atomic_save_eqx(model_path, model)
    atomic_write_json(
        meta_path, {"config": dataclasses.asdict(config), "metrics": metrics}
    )
    return model, metrics, False
