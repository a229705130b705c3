"""Conventions shared by the `hopkur` subcommands.

- Bad flags or files: raise `UsageError("one clear line")`; `hopkur` prints it and
  exits 2.
- Output folder: `OutputDir(path)` creates it (refusing to mix with a different earlier
  run unless `--overwrite`), writes files atomically (temporary file, then rename), and
  writes `COMPLETE` last; a folder without `COMPLETE` is never mistaken for a finished
  run. If the run fails before any file is written, the folder is removed.
- Configuration: flags, optionally overridden by a TOML file (`--config FILE`), whose
  keys are the long flag names with `_` for `-`.
"""

import argparse
import os
import shutil
import time
import tomllib
from pathlib import Path
from typing import Any

from .._io import (  # noqa: F401 (re-exported for the commands)
    atomic_save_eqx,
    atomic_write_bytes,
    atomic_write_json,
    save_figure,
)


class UsageError(Exception):
    """A bad flag, value or file: reported as one line, exit code 2."""


class OutputDir:
    """An output folder for one run; see the module docstring."""

    MARKER = "COMPLETE"

    def __init__(
        self, path: str | os.PathLike, *, overwrite: bool = False, resume: bool = False
    ):
        self.path = Path(path)
        self.start = time.time()
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"--out {self.path} exists and is not a folder")
        existing = self.path.exists() and any(self.path.iterdir())
        if existing and not (overwrite or resume):
            raise UsageError(
                f"--out {self.path} is not empty; pass --overwrite to replace it"
                + (
                    " or --resume to continue it"
                    if (self.path / "checkpoint.eqx").exists()
                    else ""
                )
            )
        self._created = not self.path.exists()
        if existing and overwrite:
            shutil.rmtree(self.path)
            self._created = True
        self.path.mkdir(parents=True, exist_ok=True)
        marker = self.path / self.MARKER
        if marker.exists():
            marker.unlink()

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        atomic_write_json(self.path / name, obj)
        return self.path / name

    def save_figure(self, name: str, fig) -> Path:
        save_figure(fig, self.path / name)
        return self.path / name

    def complete(self) -> None:
        """Marks the run complete (call last)."""
        atomic_write_bytes(
            self.path / self.MARKER, f"{time.time() - self.start:.3f}\n".encode()
        )

    def abandon(self) -> None:
        """Called on failure: removes the folder if this run created it and wrote
        nothing worth keeping (no checkpoint)."""
        if self._created and not (self.path / "checkpoint.eqx").exists():
            shutil.rmtree(self.path, ignore_errors=True)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" to a flag's help unless it already says it, or the
    default is empty (None, False). Every subcommand uses it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


def add_common_flags(parser: argparse.ArgumentParser, *, default_out: str) -> None:
    """Flags every subcommand has: --out, --overwrite, --config, --seed, --x64,
    --quiet."""
    parser.add_argument("--out", default=default_out, help="output folder")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty output folder"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file whose keys override the flags (flag names, '-' as '_')",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--x64", action="store_true", help="compute in float64 (jax_enable_x64)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def apply_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.Namespace:
    """Overrides `args` with the keys of the TOML file `args.config`, if given; unknown
    keys and type mismatches are `UsageError`s."""
    if not getattr(args, "config", None):
        return args
    path = Path(args.config)
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--config {path}: not valid TOML ({e})") from None
    known = {a.dest: a for a in parser._actions}
    for key, value in table.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in ("help", "config", "run", "command"):
            raise UsageError(f"--config {path}: unknown key '{key}'")
        action = known[dest]
        if action.choices is not None and value not in action.choices:
            raise UsageError(
                f"--config {path}: '{key}' must be one of "
                f"{sorted(action.choices)}; got {value!r}"
            )
        if action.type is not None and not isinstance(value, bool):
            try:
                value = action.type(value)
            except (TypeError, ValueError):
                raise UsageError(
                    f"--config {path}: '{key}' has a bad value {value!r}"
                ) from None
        setattr(args, dest, value)
    return args


def setup_jax(args: argparse.Namespace) -> None:
    """Applies --x64 before any computation."""
    import jax

    if getattr(args, "x64", False):
        jax.config.update("jax_enable_x64", True)
