"""Random binary patterns for associative-memory experiments: re-exports of the core's
pattern maths (`hopkur._patterns`), where they are implemented and documented.

`corrupt` is a deprecated alias of [`hopkur.corrupt_patterns`][] (the same rule and the
same random draws; its second argument was called `fraction`).
"""

import warnings

from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._custom_types import RealScalarLike
from .._patterns import (
    corrupt_patterns,
    hebbian_weights as hebbian_weights,
    overlap as overlap,
    random_binary_patterns as random_binary_patterns,
)


def _corrupt(
    patterns: Real[ArrayLike, "*batch n"],
    fraction: RealScalarLike,
    *,
    key: PRNGKeyArray,
) -> Float[Array, "*batch n"]:
    # `hopkur.data.corrupt`, deprecated: `hopkur.corrupt_patterns` under its old
    # argument name.
    return corrupt_patterns(patterns, fraction, key=key)


def deprecated(name: str, module: str, *, stacklevel: int):
    """The deprecated `module.name` (only `corrupt`), with its warning; the
    `__getattr__` of `hopkur.data` and of this module."""
    if name == "corrupt":
        warnings.warn(
            "`hopkur.data.corrupt` is deprecated; use `hopkur.corrupt_patterns` (the "
            "same rule and random draws; `fraction` is called `flip_fraction`).",
            DeprecationWarning,
            stacklevel=stacklevel + 1,
        )
        return _corrupt
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def __getattr__(name: str):
    return deprecated(name, __name__, stacklevel=2)
