"""The output folder of one `hopkur` run: what `--overwrite` may delete, what `--resume`
continues, and the lock that keeps two runs out of one folder.

- A folder that hopkur creates for a run holds a marker file, `.hopkur-run`, written
  when the run starts. `--overwrite` deletes only a folder with that marker. hopkur
  never writes a run into, nor deletes, the current folder, one of its parents, the
  home folder or a filesystem root, and never deletes a folder without the marker.
- `RunFolder(...)` only looks: every check (the path, the marker, the lock, whether a
  run can be resumed) happens there, before the command loads its data and checks its
  settings; nothing is created or deleted until `open()`, which the command calls
  once every check has passed. A refused run leaves the folder exactly as it was.
- While a run uses the folder it holds an exclusive lock on `.hopkur-lock`
  (`fcntl.flock`, released by the operating system when the process ends, however it
  ends); a second run on the same folder fails at once.
- Files are written atomically (temporary file, then rename); `COMPLETE` is written
  last, so a folder without it is never mistaken for a finished run. A run that fails
  or is interrupted keeps what it has written (without `COMPLETE`); only a folder that
  the run created and in which it wrote nothing but its bookkeeping is removed.
- `metrics.json` is always valid JSON: non-finite numbers are written as `null` and
  listed under `"non_finite"`.
"""

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..experiments._io import (
    atomic_save_eqx,
    atomic_write_bytes,
    atomic_write_json,
    InputFileError,
    read_json,
    save_figure,
)
from ._errors import UsageError


MARKER = ".hopkur-run"
LOCK = ".hopkur-lock"
COMPLETE = "COMPLETE"
BOOKKEEPING = frozenset({MARKER, LOCK, "config.json"})


def os_error_text(error: OSError) -> str:
    """A short description of an operating-system error, e.g. "No space left on
    device: 'out/metrics.json'"."""
    text = error.strerror or type(error).__name__
    if error.errno == errno.ENAMETOOLONG:
        text = "file name too long"
    name = error.filename
    return f"{text}: '{name}'" if name else text


def _protected(path: Path) -> str | None:
    """Why `path` may never be a run folder, or `None`."""
    cwd = Path.cwd().resolve()
    if path == cwd:
        return "is the current folder"
    if path in cwd.parents:
        return "is a parent of the current folder"
    with contextlib.suppress(RuntimeError, KeyError):
        if path == Path.home().resolve():
            return "is the home folder"
    if path == Path(path.anchor):
        return "is a filesystem root"
    return None


def _lock_holder(lock: Path) -> str | None:
    """The pid recorded by the run holding `lock`, `"?"` if held without one, or
    `None` if the lock is free."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        with contextlib.suppress(OSError):
            return os.read(fd, 32).decode(errors="replace").strip() or "?"
        return "?"
    finally:
        os.close(fd)
    return None


class RunFolder:
    """The output folder of one run; see the module docstring.

    **Arguments:**

    - `path`: the `--out` folder.
    - `command`: the command's name, recorded in the marker.
    - `overwrite`: replace an earlier hopkur run in `path`. (Keyword only.)
    - `resume`: continue the run in `path`; `None` for a command that cannot resume.
        (Keyword only.)
    - `flag`: the flag named in messages. (Keyword only.)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        command: str,
        *,
        overwrite: bool = False,
        resume: bool | None = None,
        flag: str = "--out",
    ):
        text = os.fspath(path)
        if not text.strip():
            raise UsageError(f"{flag} must name a folder; got an empty path")
        self.path = Path(text).expanduser()
        self.command = command
        self.flag = flag
        self.start = time.time()
        self._lock_fd: int | None = None
        self._fresh = False
        try:
            resolved = self.path.resolve()
            why = _protected(resolved)
            if why is not None:
                raise UsageError(
                    f"{flag} {text} {why}; hopkur writes each run into a folder of "
                    "its own (for example --out runs/first)"
                )
            for parent in resolved.parents:
                if parent.exists():
                    if not parent.is_dir():
                        raise UsageError(f"{flag} {text}: {parent} is a file")
                    break
            exists = resolved.exists()
            if exists and not resolved.is_dir():
                raise UsageError(f"{flag} {text} exists and is not a folder")
            entries = {p.name for p in resolved.iterdir()} if exists else set()
        except OSError as e:
            raise UsageError(f"{flag} {text}: {os_error_text(e)}") from None
        self.is_run = MARKER in entries
        self.existing = bool(entries)
        if self.existing and not self.is_run:
            raise UsageError(
                f"{flag} {text} holds files that hopkur did not write (no {MARKER} "
                "marker); hopkur never writes into or deletes such a folder - choose "
                "another folder"
            )
        if self.is_run:
            holder = _lock_holder(resolved / LOCK)
            if holder is not None:
                raise UsageError(
                    f"{flag} {text} is in use by another hopkur run (pid {holder}); "
                    "wait for it to finish or choose another folder"
                )
        if resume and not self.existing:
            raise UsageError(f"--resume: there is no run in {text} to continue")
        if self.existing and not (overwrite or resume):
            raise UsageError(
                f"{flag} {text} holds an earlier hopkur run; pass --overwrite to "
                "replace it"
                + (" or --resume to continue it" if resume is not None else "")
            )
        self.resume = bool(resume and self.existing)
        self.overwrite = bool(overwrite and self.existing and not self.resume)

    # ------------------------------------------------------------------ reading

    def file(self, name: str) -> Path:
        return self.path / name

    def read_json(self, name: str) -> Any:
        """A JSON file of the run, with problems as one-line `UsageError`s."""
        try:
            return read_json(self.path / name)
        except InputFileError as e:
            raise UsageError(f"--resume: {e}") from None
        except OSError as e:
            raise UsageError(f"--resume: {os_error_text(e)}") from None

    # ------------------------------------------------------------------ writing

    def open(self) -> "RunFolder":
        """Creates (or, with `overwrite`, empties) the folder, takes the lock and
        writes the marker. Call it only after every check has passed."""
        import fcntl

        try:
            self._fresh = not self.path.exists() or self.overwrite
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UsageError(
                    f"{self.flag} {self.path} is in use by another hopkur run"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._lock_fd = fd
            if self.overwrite:
                for entry in self.path.iterdir():
                    if entry.name == LOCK:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            (self.path / COMPLETE).unlink(missing_ok=True)
            if not self.resume:
                marker = {"command": self.command, "started": time.time()}
                atomic_write_json(self.path / MARKER, marker)
        except OSError as e:
            self.close()
            raise UsageError(f"{self.flag} {self.path}: {os_error_text(e)}") from None
        return self

    def write_json(self, name: str, obj: Any) -> list[str]:
        """Writes `obj` as JSON atomically; non-finite numbers become `null` and are
        listed under `"non_finite"` (for a dictionary). Returns their paths."""
        return atomic_write_json(self.path / name, obj, flag_key="non_finite")

    def write_bytes(self, name: str, data: bytes) -> Path:
        atomic_write_bytes(self.path / name, data)
        return self.path / name

    def save_eqx(self, name: str, module) -> Path:
        atomic_save_eqx(self.path / name, module)
        return self.path / name

    def save_figure(self, name: str, fig) -> Path:
        save_figure(fig, self.path / name)
        return self.path / name

    def complete(self) -> None:
        """Marks the run complete (call last)."""
        atomic_write_bytes(
            self.path / COMPLETE, f"{time.time() - self.start:.3f}\n".encode()
        )

    def close(self, *, failed: bool = False) -> None:
        """Releases the lock. After a failure, removes the folder if this run
        created it and wrote nothing but its bookkeeping into it."""
        if failed and self._fresh:
            with contextlib.suppress(OSError):
                names = {p.name for p in self.path.iterdir()}
                if names <= BOOKKEEPING:
                    shutil.rmtree(self.path)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def opened(self) -> Iterator["RunFolder"]:
        """`open()`, then `close()` however the block ends (`failed=True` on an
        exception other than Ctrl-C, which keeps everything)."""
        self.open()
        try:
            yield self
        except KeyboardInterrupt:
            self.close()
            raise
        except BaseException:
            self.close(failed=True)
            raise
        self.close()
