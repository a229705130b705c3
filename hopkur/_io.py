"""Atomic file writes (private): a file is either its old or its new complete
version, never a partial one, whatever happens during the write. Used by the
commands, the experiment runners and the caches."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """`atomic_write_bytes` of `obj` as indented JSON."""
    atomic_write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    )


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
