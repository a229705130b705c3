"""AKOrN networks (Miyato et al., 2025): Kuramoto layers with dense, convolutional,
relational or attention couplings, readouts and block stacks.

The layer is built on the core: its update is [`hopkur.akorn_steps`][] on a
[`hopkur.Kuramoto`][] model, and its convolutional and attention couplings are the
core's [`hopkur.ConvCoupling`][] and [`hopkur.AttentionCoupling`][].
[`hopkur.nn.from_official_akorn`][] ports a layer of the official PyTorch code. The
Sudoku models live in `hopkur.experiments.sudoku_model`.
"""

import importlib
import warnings

from ._blocks import AKOrN as AKOrN, AKOrNBlock as AKOrNBlock, Readout as Readout
from ._couplings import (
    LinearCoupling as LinearCoupling,
    RelationalCoupling as RelationalCoupling,
)
from ._layer import (
    KuramotoLayer as KuramotoLayer,
    KuramotoResult as KuramotoResult,
    normalise_groups as normalise_groups,
    random_oscillators as random_oscillators,
)
from ._porting import (
    from_official_akorn as from_official_akorn,
    interleaved_head_order as interleaved_head_order,
)


# Names that moved: old name -> (module, new name). Still importable from here, with a
# DeprecationWarning.
_MOVED = {
    "AbstractKuramotoCoupling": ("hopkur", "AbstractFeatureCoupling"),
    "AttentionCoupling": ("hopkur", "AttentionCoupling"),
    "ConvCoupling": ("hopkur", "ConvCoupling"),
    "SudokuAKOrN": ("hopkur.experiments.sudoku_model", "SudokuAKOrN"),
    "SudokuCoupling": ("hopkur.experiments.sudoku_model", "SudokuCoupling"),
    "SudokuTransformer": ("hopkur.experiments.sudoku_model", "SudokuTransformer"),
    "sudoku_peers": ("hopkur.experiments.sudoku_model", "sudoku_peers"),
    "sudoku_relations": ("hopkur.experiments.sudoku_model", "sudoku_relations"),
}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module 'hopkur.nn' has no attribute {name!r}")
    module, new = _MOVED[name]
    warnings.warn(
        f"`hopkur.nn.{name}` is deprecated; use `{module}.{new}`.",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), new)
