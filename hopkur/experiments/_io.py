"""Atomic file writes (private): a file is either its old or its new complete
version, never a partial one, whatever happens during the write. Used by the
commands, the experiment runners and the caches. JSON is always valid JSON:
non-finite numbers are written as `null`."""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


class InputFileError(ValueError):
    """A file a run reads back (a checkpoint, an optimiser or loop state, a run's
    configuration) that is missing, of the wrong type or corrupt. The `hopkur`
    command reports it as one line with exit code 2."""


class RunStateError(InputFileError):
    """A run folder whose files (configuration, checkpoint, optimiser or loop state)
    are missing, of the wrong type or corrupt, or that is not a run of the command
    reading it."""


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in `path`; an `InputFileError` if it is missing, not UTF-8 or
    not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputFileError(f"{path} is corrupt ({e})") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file in the same folder and
    `os.replace`, so that `path` is either the old or the new complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def json_safe(obj: Any) -> tuple[Any, list[str]]:
    """`(copy of obj with non-finite floats replaced by None, their paths)`, the
    paths written like `a.b[2]`."""
    bad: list[str] = []

    def walk(o, where):
        if isinstance(o, float) and not math.isfinite(o):
            bad.append(where or "(value)")
            return None
        if isinstance(o, dict):
            return {
                k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in o.items()
            }
        if isinstance(o, list | tuple):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(o)]
        return o

    return walk(obj, ""), bad


def atomic_write_json(
    path: str | os.PathLike, obj: Any, *, flag_key: str | None = None
) -> list[str]:
    """`atomic_write_bytes` of `obj` as indented JSON, non-finite numbers as `null`
    (see `json_safe`); with `flag_key`, a dictionary also lists their paths under that
    key. Returns the paths."""
    clean, bad = json_safe(obj)
    if bad and flag_key is not None and isinstance(clean, dict):
        clean[flag_key] = bad
    text = json.dumps(clean, indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())
    return bad


def save_figure(fig, path: str | os.PathLike) -> None:
    """Saves a matplotlib figure as PNG atomically and closes it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_save_eqx(path: str | os.PathLike, model) -> None:
    """Serialises an equinox module's leaves (`eqx.tree_serialise_leaves`)
    atomically."""
    import io

    import equinox as eqx

    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    atomic_write_bytes(path, buffer.getvalue())


def load_eqx(path: str | os.PathLike, skeleton):
    """The leaves saved at `path` (`eqx.tree_deserialise_leaves`) into `skeleton`; a
    `RunStateError` naming the file if it is missing, corrupt or of another model."""
    import equinox as eqx

    path = Path(path)
    try:
        with open(path, "rb") as f:
            return eqx.tree_deserialise_leaves(f, skeleton)
    except FileNotFoundError:
        raise RunStateError(f"{path} is missing") from None
    except (ValueError, RuntimeError, EOFError, KeyError, TypeError) as e:
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RunStateError(f"{path} is corrupt or of another model ({text})") from None
