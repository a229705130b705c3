"""Type aliases used across hopkur (jaxtyping), following diffrax's conventions."""

from typing import Any, TYPE_CHECKING

from jaxtyping import Array, ArrayLike, Float, Int, PyTree, Shaped


if TYPE_CHECKING:
    RealScalarLike = bool | int | float | Array | Any
else:
    RealScalarLike = Shaped[ArrayLike, ""]

Args = PyTree[Any]
Scalar = Float[Array, ""]
Edges = Int[Array, "e 2"]

__all__ = ["Args", "Edges", "RealScalarLike", "Scalar"]
