"""Building, verifying and loading the compiled kernels' shared library (private).

Nothing here runs a compiler unless `build()` is called (`hopkur kernels build`,
`make kernels`): tracing a model never builds. A library is cached in
`cache_dir()/native` (see `hopkur._cache`) as `edge_kernels-KEY.so`, KEY a hash of the
source, the compiler command, jax's version and the CPU (what `-march=native` depends
on), next to `edge_kernels-KEY.json`, the build record: the library's size and sha256,
written after the library, atomically. A library is loaded only if its size and sha256
match the record; a missing, truncated, empty or otherwise changed library is never
handed to the dynamic loader (a truncated one used to end the process with SIGBUS).
"""

import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import NamedTuple

from .._cache import cache_dir


SOURCE = Path(__file__).parent / "csrc" / "edge_kernels.cc"
TARGETS = ("HopkurEdgeDrive", "HopkurEdgeTangent", "HopkurEdgeCotangent")
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno")
_COMPILE_TIMEOUT = 600
_RECORD_VERSION = 1
HOW_TO_BUILD = "run `hopkur kernels build` (or `make kernels`) once"

# the states of `status()`
BUILT = "built"
NOT_BUILT = "not built"
NO_COMPILER = "no compiler"
DAMAGED = "damaged"
FAILED = "failed to load"
DISABLED = "disabled"


class NativeKernels(NamedTuple):
    """What [`hopkur.native_kernels`][] returns: `(available, detail)`."""

    available: bool
    detail: str


class BuildError(RuntimeError):
    """`build()` could not produce a library (no compiler, or the compiler failed)."""


@dataclasses.dataclass(frozen=True)
class Status:
    state: str  # one of BUILT, NOT_BUILT, NO_COMPILER, DAMAGED, FAILED, DISABLED
    detail: str  # one line
    path: Path | None = None


@dataclasses.dataclass(frozen=True)
class _Plan:
    command: tuple[str, ...]
    library: Path
    record: Path


def _cpu_tag() -> str:
    """What `-march=native` depends on: the CPU model and its feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        first = text.split("\n\n")[0]
        keep = [
            line
            for line in first.splitlines()
            if line.split(":")[0].strip() in ("model name", "flags", "Features")
        ]
        return "\n".join(keep)
    except OSError:
        return platform.processor() + platform.machine()


def compiler() -> str | None:
    """`$CXX`, else the first of `c++`, `g++`, `clang++` on the `PATH`."""
    if os.environ.get("CXX"):
        return os.environ["CXX"]
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def _plan() -> _Plan | None:
    """The compiler command and the cache paths, or `None` without a compiler."""
    import jax

    cxx = compiler()
    if cxx is None:
        return None
    command = (cxx, *_FLAGS, "-I", jax.ffi.include_dir())
    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        " ".join(command).encode(),
        jax.__version__.encode(),
        _cpu_tag().encode(),
    ):
        key.update(part)
        key.update(b"\0")
    folder = cache_dir() / "native"
    stem = f"edge_kernels-{key.hexdigest()[:20]}"
    return _Plan(command, folder / f"{stem}.so", folder / f"{stem}.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _damage(plan: _Plan) -> str | None:
    """Why the cached library must not be loaded (`None`: it matches its record).
    Assumes the library exists."""
    try:
        record = json.loads(plan.record.read_text())
        size, sha256 = int(record["size"]), str(record["sha256"])
    except FileNotFoundError:
        return f"{plan.library} has no build record ({plan.record.name})"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its build record {plan.record} is unreadable ({error})"
    try:
        actual = plan.library.stat().st_size
        if actual != size:
            return f"{plan.library} has {actual} bytes, its build recorded {size}"
        if _sha256(plan.library) != sha256:
            return f"{plan.library} does not match the sha256 of its build"
    except OSError as error:
        return f"{plan.library} cannot be read ({error})"
    return None


def _disabled() -> bool:
    return os.environ.get("HOPKUR_NATIVE", "1").strip().lower() in ("0", "false", "no")


def inspect() -> Status:
    """What is in the cache for this machine, without loading anything."""
    if _disabled():
        return Status(DISABLED, "disabled by HOPKUR_NATIVE=0")
    plan = _plan()
    if plan is None:
        return Status(
            NO_COMPILER,
            "no C++ compiler found (install g++ or clang++, or set $CXX), then "
            + HOW_TO_BUILD,
        )
    if not plan.library.exists():
        return Status(NOT_BUILT, f"not built: {HOW_TO_BUILD}", plan.library)
    if not plan.record.exists():
        # e.g. left by a version of hopkur that kept no records: it cannot be
        # verified, so it is not used (silently, as a library never built)
        return Status(
            NOT_BUILT,
            f"not built: {plan.library} has no build record and is not used; "
            + HOW_TO_BUILD,
            plan.library,
        )
    damage = _damage(plan)
    if damage is not None:
        return Status(
            DAMAGED,
            f"damaged: {damage}; {HOW_TO_BUILD.replace('once', 'to rebuild it')}",
            plan.library,
        )
    return Status(BUILT, f"built at {plan.library}", plan.library)


_registered: dict[str, Path] = {}


def _register(path: Path) -> None:
    import jax

    if _registered:
        # once per process: the FFI targets cannot be registered twice
        if _registered["path"] != path:
            raise RuntimeError(
                f"another library of the kernels ({_registered['path']}) is already "
                "loaded in this process; restart it to use the new one"
            )
        return
    library = ctypes.cdll.LoadLibrary(str(path))
    for name in TARGETS:
        capsule = jax.ffi.pycapsule(getattr(library, name))
        jax.ffi.register_ffi_target(name, capsule, platform="cpu")
    _registered["path"] = path


@functools.cache
def load() -> Status:
    """Loads the cached library if it is built and intact (once per process): its
    status, `BUILT` when the kernels can be used."""
    status = inspect()
    if status.state != BUILT:
        return status
    assert status.path is not None
    try:
        _register(status.path)
    except Exception as error:  # a library that verifies but does not load
        return Status(
            FAILED,
            f"failed to load {status.path} ({type(error).__name__}: {error}); "
            + HOW_TO_BUILD.replace("once", "to rebuild it"),
            status.path,
        )
    return status


def native_kernels() -> NativeKernels:
    """Whether hopkur's compiled CPU kernels for edge couplings are built and usable
    (`EdgeCoupling(method="native")`, and `"auto"` on CPU), and if not, why.

    Nothing is compiled here: the kernels are built once per machine by
    `hopkur kernels build` (or `make kernels`); until then `method="auto"` uses the
    JAX formulations. A cached library is loaded only when its size and sha256 match
    the record of its build.

    **Returns:**

    A named tuple `(available, detail)`: `(True, "built at PATH")`, or `False` and
    the reason — `"not built: ..."`, `"no C++ compiler found ..."`, `"damaged: ..."`
    (a library that does not match its build record; never loaded), `"failed to load
    ..."`, or `"disabled by HOPKUR_NATIVE=0"`. Each says what to do.
    """
    status = load()
    return NativeKernels(status.state == BUILT, status.detail)


_warned: list[str] = []


def warn_unusable_once(status: Status) -> None:
    """Warns once per process that `method="auto"` cannot use a damaged or unloadable
    library (a library that was never built is no reason to warn)."""
    if status.state in (DAMAGED, FAILED) and not _warned:
        _warned.append(status.detail)
        warnings.warn(
            "hopkur's compiled kernels are not used, EdgeCoupling(method='auto') "
            f"falls back to its JAX formulations: {status.detail}",
            RuntimeWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def _lock(folder: Path):
    # One build at a time per cache folder (parallel test workers, several shells).
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (each build still replaces atomically)
        yield
        return
    with open(folder / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, data: bytes) -> None:
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


def _compile(command: tuple[str, ...], output: str) -> None:
    try:
        result = subprocess.run(
            [*command, str(SOURCE), "-o", output],
            capture_output=True,
            text=True,
            timeout=_COMPILE_TIMEOUT,
        )
    except FileNotFoundError:
        raise BuildError(f"the C++ compiler {command[0]!r} was not found") from None
    except subprocess.TimeoutExpired:
        raise BuildError(
            f"compiling {SOURCE.name} took over {_COMPILE_TIMEOUT} s"
        ) from None
    if result.returncode != 0:
        raise BuildError(
            f"compiling {SOURCE.name} failed ({' '.join(command)}):\n"
            + result.stderr[-4000:]
        )


def build(*, force: bool = False) -> tuple[Status, float | None]:
    """Compiles the kernels into the cache unless an intact library is there already
    (`force`: compile anyway). A damaged library is replaced. Returns the new status
    (verified, not loaded) and the compile time in seconds (`None` if nothing was
    compiled). Raises
    `BuildError` without a compiler or when compiling fails, and `OSError` when the
    cache folder cannot be written."""
    plan = _plan()
    if plan is None:
        raise BuildError(inspect().detail)
    folder = plan.library.parent
    folder.mkdir(parents=True, exist_ok=True)
    seconds = None
    with _lock(folder):
        intact = plan.library.exists() and _damage(plan) is None
        if force or not intact:
            # Compile to a private name; then the library, then its record, each by
            # an atomic rename. A reader sees no record, or one that matches.
            with contextlib.suppress(FileNotFoundError):
                plan.record.unlink()
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
            os.close(fd)
            try:
                start = time.perf_counter()
                _compile(plan.command, tmp)
                seconds = time.perf_counter() - start
                record = {
                    "version": _RECORD_VERSION,
                    "library": plan.library.name,
                    "size": os.path.getsize(tmp),
                    "sha256": _sha256(Path(tmp)),
                    "command": " ".join(plan.command),
                    "source_sha256": _sha256(SOURCE),
                    "compile_seconds": round(seconds, 2),
                }
                os.replace(tmp, plan.library)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            _atomic_write(plan.record, (json.dumps(record, indent=2) + "\n").encode())
    load.cache_clear()
    return inspect(), seconds
