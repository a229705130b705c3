"""hopkur's cache folder (private): one place, one environment variable.

`cache_dir()` is `$HOPKUR_CACHE` if set and non-empty, else `~/.cache/hopkur`. The old
`$HOPKUR_CACHE_DIR` (used by the compiled kernels before) is still honoured, with a
`DeprecationWarning`, when `$HOPKUR_CACHE` is not set.
"""

import os
import warnings
from pathlib import Path


def cache_dir() -> Path:
    """The folder hopkur caches files in (not created here)."""
    env = os.environ.get("HOPKUR_CACHE")
    if env:
        return Path(env).expanduser()
    old = os.environ.get("HOPKUR_CACHE_DIR")
    if old:
        warnings.warn(
            "$HOPKUR_CACHE_DIR is deprecated; set $HOPKUR_CACHE instead (the same "
            "folder: hopkur's caches, default ~/.cache/hopkur).",
            DeprecationWarning,
            stacklevel=2,
        )
        return Path(old).expanduser()
    return Path.home() / ".cache" / "hopkur"
