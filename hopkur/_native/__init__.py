r"""Compiled CPU kernels for edge couplings (private): `EdgeCoupling(method="native")`
and the Hopfield–Kuramoto edge couplings.

- `_library`: building (`build`, only on request: `hopkur kernels build`, `make
  kernels`), verifying and loading the shared library, cached in
  `hopkur._cache.cache_dir()/native` beside the record of its build (size and sha256).
  Tracing a model never compiles anything.
- `_ffi`: the three JAX primitives over the library (drive, tangent, cotangent) and
  their autodiff, batching and reference (pure JAX) rules.
- `csrc/edge_kernels.cc`: the C++ source.

`usable` (for `method="auto"`) is true only when the library is built and intact; a
damaged or unloadable one makes it warn once and fall back to the JAX formulations.
`require` (for `method="native"`) raises an error that says how to build the kernels.
Set `HOPKUR_NATIVE=0` to never use them.
"""

import jax
import jax.numpy as jnp

from .. import _backend
from .._interactions import closed_form
from . import _library
from ._ffi import (
    edge_cotangent_p as edge_cotangent_p,
    edge_drive_p as edge_drive_p,
    edge_tangent_p as edge_tangent_p,
    linear_edge_drive as linear_edge_drive,
    MODES as MODES,
    native_edge_drive as native_edge_drive,
)
from ._library import (
    build as build,
    BuildError as BuildError,
    compiler as compiler,
    inspect as inspect,
    native_kernels as native_kernels,
    NativeKernels as NativeKernels,
)


def available() -> bool:
    """Whether the library is built, intact and loaded (loading it if needed)."""
    return _library.load().state == _library.BUILT


def _float_dtype(dtype) -> bool:
    return jnp.dtype(dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))


def supports(interaction, dtype) -> bool:
    """Whether the kernels evaluate this interaction (any, if `None`) at this
    dtype."""
    closed = interaction is None or closed_form(interaction) is not None
    return closed and _float_dtype(dtype)


def usable(dtype, interaction=None) -> bool:
    """Whether `method="auto"` evaluates with the kernels: on the CPU paths
    (`hopkur._backend`), when they are built and intact, for float32/float64 states
    (and a closed-form `interaction`, if given). Never builds; warns once if the cached
    library is damaged."""
    if not supports(interaction, dtype) or not _backend.cpu_paths():
        return False
    status = _library.load()
    _library.warn_unusable_once(status)
    return status.state == _library.BUILT


def require(call: str) -> None:
    """Raises a `RuntimeError` saying how to build the kernels, unless they are
    available (`method="native"`), or that they run on CPU only."""
    backend = jax.default_backend()
    if backend != "cpu":
        raise RuntimeError(
            f"`{call}(method='native')` uses hopkur's compiled CPU kernels, which do "
            f"not run on the {backend} backend; use method='auto' (which evaluates "
            "with batched array operations there), 'segment' or 'dense'."
        )
    status = _library.load()
    if status.state != _library.BUILT:
        raise RuntimeError(
            f"`{call}(method='native')` needs hopkur's compiled CPU kernels, which are "
            f"not available ({status.detail}). Or use method='auto' (the kernels when "
            "they are built, else the JAX formulations), 'segment' or 'dense'."
        )
