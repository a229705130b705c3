"""AKOrN networks (Miyato et al., 2025): Kuramoto layers with dense, convolutional,
relational or attention couplings, readouts, block stacks and Sudoku solvers."""

from ._blocks import AKOrN as AKOrN, AKOrNBlock as AKOrNBlock, Readout as Readout
from ._couplings import (
    AbstractKuramotoCoupling as AbstractKuramotoCoupling,
    AttentionCoupling as AttentionCoupling,
    ConvCoupling as ConvCoupling,
    LinearCoupling as LinearCoupling,
    RelationalCoupling as RelationalCoupling,
)
from ._layer import (
    KuramotoLayer as KuramotoLayer,
    KuramotoResult as KuramotoResult,
    normalise_groups as normalise_groups,
    random_oscillators as random_oscillators,
)
from ._sudoku import (
    sudoku_peers as sudoku_peers,
    sudoku_relations as sudoku_relations,
    SudokuAKOrN as SudokuAKOrN,
    SudokuCoupling as SudokuCoupling,
    SudokuTransformer as SudokuTransformer,
)
