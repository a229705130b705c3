"""Conventions shared by the `hopkur` subcommands.

- Bad flags or files: raise `UsageError("one clear line")`; `hopkur` prints it and
  exits 2 (`hopkur/cli.py` also turns operating-system errors into such a line).
- Settings: one frozen dataclass per command, built and validated by
  `_settings.resolve` from defaults, `--config FILE` (TOML) and the flags.
- Output folder: `_folder.RunFolder` (marker, lock, atomic writes, `COMPLETE` last).
"""

import argparse
from typing import Any

from ._errors import UsageError
from ._folder import RunFolder
from ._settings import add_flags, resolve, setting, to_dict


__all__ = [
    "HelpFormatter",
    "RunFolder",
    "UsageError",
    "add_common_flags",
    "add_flags",
    "resolve",
    "seed_setting",
    "setting",
    "setup_jax",
    "to_dict",
    "x64_setting",
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" to a flag's help unless it already says it, or the
    default is empty (None, False, or not recorded). Every subcommand uses it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "default" in text
            or action.default is None
            or action.default is False
            or action.default is argparse.SUPPRESS
        ):
            return text
        return super()._get_help_string(action)


def seed_setting(group: str | None = None) -> Any:
    """The `seed` field every command's settings have."""
    return setting(0, "random seed", minimum=0, group=group)


def x64_setting(group: str | None = None) -> Any:
    """The `x64` field every command's settings have."""
    return setting(False, "compute in float64 (jax_enable_x64)", group=group)


def add_common_flags(
    parser: argparse.ArgumentParser, *, default_out: str, resume: bool = False
) -> None:
    """The run-control flags every subcommand has: --out, --overwrite, --config,
    --quiet, and --resume where a command can continue a run. (The seed and x64 are
    settings, declared on each command's settings class.)"""
    parser.add_argument("--out", default=default_out, help="output folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier hopkur run in --out (only a folder hopkur created)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file of settings (keys: flag names with '_' for '-'); flags given "
        "on the command line win",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    if resume:
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in --out from its checkpoint, with its settings",
        )


def setup_jax(settings: Any) -> None:
    """Applies the settings' `x64` before any computation."""
    import jax

    if getattr(settings, "x64", False):
        jax.config.update("jax_enable_x64", True)
