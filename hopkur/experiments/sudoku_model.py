r"""Sudoku solvers: a recurrent AKOrN and a weight-tied transformer baseline (AKOrN's
Sudoku experiment, MODELS.md §5), built from `hopkur.nn` and the core.

Both map a puzzle (an integer array of shape `(81,)`, `0` for blanks) to per-cell
logits over the digits 1-9 after each of `blocks` recurrent iterations (the weights of
all iterations are shared, so inference may run more iterations than training), and a
scalar energy used by energy-based voting.
"""

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

# Imported under private names, so that the documentation generator finds these
# objects under their public paths (`hopkur.AttentionCoupling`, `hopkur.nn.Readout`),
# not as members of this module.
from .. import _feature_couplings as _fc, nn as _nn
from .._misc import tolerance
from ..nn._blocks import affine


def sudoku_relations(*, include_self: bool = True) -> Bool[np.ndarray, "r 81 81"]:
    """The Sudoku constraint graph as relation matrices over the 81 cells.

    **Arguments:**

    - `include_self`: whether to add the identity as a first relation. (Keyword only
        argument.)

    **Returns:**

    A boolean array `(r, 81, 81)`: [self,] same row, same column, same box, each
    without the diagonal (so a cell is never its own peer).
    """
    cells = np.arange(81)
    row, col = cells // 9, cells % 9
    box = (row // 3) * 3 + col // 3
    off = ~np.eye(81, dtype=bool)
    rel = [
        (row[:, None] == row[None, :]) & off,
        (col[:, None] == col[None, :]) & off,
        (box[:, None] == box[None, :]) & off,
    ]
    if include_self:
        rel = [np.eye(81, dtype=bool)] + rel
    return np.stack(rel)


def sudoku_peers() -> Bool[np.ndarray, "81 81"]:
    """`peers[i, j]`: cells `i` and `j` share a row, column or box, or `i == j`."""
    return np.any(sudoku_relations(include_self=True), axis=0)


class SudokuCoupling(_fc.AbstractFeatureCoupling):
    r"""The row/column/box-structured coupling of the 81 Sudoku cells.

    $[Jx]_i = W_0 x_i + W_1 \sum_{j \in \mathrm{row}(i)\setminus i} x_j
    + W_2 \sum_{j \in \mathrm{col}(i)\setminus i} x_j
    + W_3 \sum_{j \in \mathrm{box}(i)\setminus i} x_j$: the same map as
    [`hopkur.nn.RelationalCoupling`][] with
    [`hopkur.experiments.sudoku_model.sudoku_relations`][], computed with unit sums in
    $O(81\,C)$ instead of $O(81^2 C)$ before the channel maps. Symmetric when every
    $W_r$ is (the relations are).
    """

    weight: Float[Array, "4 c c"]

    def __init__(self, channels: int, *, scale: float = 1.0, dtype=None, key):
        """**Arguments:**

        - `channels`: the number of channels $C$.
        - `scale`: initial weights have standard deviation `scale / sqrt(8 C)`.
            (Keyword only argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        kwargs = {} if dtype is None else {"dtype": dtype}
        std = scale / math.sqrt(8 * channels)
        self.weight = std * jr.normal(key, (4, channels, channels), **kwargs)

    def gather(self, x: Float[Array, "81 c"]) -> Float[Array, "81 rc"]:
        """`[x_i, row peers sum, column peers sum, box peers sum]` per cell."""
        c = x.shape[-1]
        g = x.reshape(9, 9, c)
        row = jnp.broadcast_to(jnp.sum(g, axis=1, keepdims=True), g.shape)
        col = jnp.broadcast_to(jnp.sum(g, axis=0, keepdims=True), g.shape)
        b = g.reshape(3, 3, 3, 3, c)
        box = jnp.broadcast_to(jnp.sum(b, axis=(1, 3), keepdims=True), b.shape)
        parts = [g, row - g, col - g, box.reshape(9, 9, c) - g]
        return jnp.concatenate(parts, axis=-1).reshape(81, 4 * c)

    def __call__(self, x: Float[Array, "81 c"]) -> Float[Array, "81 c"]:
        if x.ndim != 2 or x.shape != (81, self.weight.shape[-1]):
            raise ValueError(
                f"`SudokuCoupling` expects a state of shape (81, "
                f"{self.weight.shape[-1]}); got {x.shape}."
            )
        maps = jnp.swapaxes(self.weight, -1, -2).reshape(-1, x.shape[-1])
        return self.gather(x) @ maps

    def is_symmetric(self):
        w = self.weight
        return jnp.max(jnp.abs(w - jnp.swapaxes(w, -1, -2))) <= tolerance(w)

    def is_rotation_invariant(self, omega):
        return _fc.blocks_commute(self.weight, omega)


def _check_puzzle(call: str, puzzle) -> None:
    if puzzle.shape != (81,):
        raise ValueError(f"`{call}(puzzle)` must have shape (81,); got {puzzle.shape}.")


class SudokuAKOrN(eqx.Module):
    r"""A recurrent AKOrN Sudoku solver.

    Each cell is a token with $C$ channels of oscillators of dimension $n$. The
    stimulus of iteration $\ell$ is $c_\ell = e(\text{given digit}) + f(m_{\ell-1})$
    (with $f(m_0) = 0$), where $e$ is a learned embedding of the digit (0 for blank)
    and $f$ a per-cell MLP of the previous readout. Each iteration runs the
    [`hopkur.nn.KuramotoLayer`][] for $T$ steps with either a structured coupling
    ([`hopkur.experiments.sudoku_model.SudokuCoupling`][] over the row, column and box
    peers and the cell itself) or attention ([`hopkur.AttentionCoupling`][]), carrying
    the
    oscillators over from the previous iteration, then reads out
    $m_\ell = \mathrm{readout}(x)$ ([`hopkur.nn.Readout`][]) and the logits
    $W m_\ell + b$. All iterations share their weights (an AKOrN block stack with tied
    weights). The energy of the final state (the layer energy under the last
    stimulus) is used for energy-based voting.
    """

    embed: Float[Array, "10 c"]
    layer: _nn.KuramotoLayer
    readout: _nn.Readout
    feedback_hidden: eqx.nn.Linear
    feedback_out: eqx.nn.Linear
    head: eqx.nn.Linear
    blocks: int = eqx.field(static=True)

    def __init__(
        self,
        channels: int = 64,
        dim: int = 4,
        *,
        steps: int = 4,
        blocks: int = 8,
        features: int | None = None,
        hidden: int | None = None,
        gamma: float = 0.5,
        coupling: str = "relational",
        num_heads: int = 4,
        structured: bool = True,
        omega: Literal["none", "shared", "group"] = "group",
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `channels`: channels $C$ per cell (a multiple of `dim`).
        - `dim`: oscillator dimension $n$.
        - `steps`: Kuramoto steps $T$ per iteration. (Keyword only argument.)
        - `blocks`: recurrent iterations $L$ (default at call time). (Keyword only
            argument.)
        - `features`: readout features per cell; defaults to `channels`. (Keyword
            only argument.)
        - `hidden`: width of the feedback MLP; defaults to `2 * channels`. (Keyword
            only argument.)
        - `gamma`: the Kuramoto step size. (Keyword only argument.)
        - `coupling`: `"relational"` (row/column/box structure) or `"attention"`
            (self-attention over the 81 cells with positional embeddings).
            (Keyword only argument.)
        - `num_heads`: attention heads (for `coupling="attention"`). (Keyword only
            argument.)
        - `structured`: for `coupling="attention"`, mask attention to the row,
            column and box peers (and the cell itself). (Keyword only argument.)
        - `omega`: `"none"`, `"shared"` or `"group"` (see
            [`hopkur.nn.KuramotoLayer`][]). (Keyword only argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        features = channels if features is None else features
        hidden = 2 * channels if hidden is None else hidden
        ekey, ckey, lkey, rkey, hkey, okey, headkey = jr.split(key, 7)
        kwargs = {} if dtype is None else {"dtype": dtype}
        if coupling == "relational":
            j = SudokuCoupling(channels, dtype=dtype, key=ckey)
        elif coupling == "attention":
            mask = sudoku_peers() if structured else None
            j = _fc.AttentionCoupling(
                channels, 81, num_heads, mask=mask, dtype=dtype, key=ckey
            )
        else:
            raise ValueError(
                "`SudokuAKOrN(coupling=...)` must be 'relational' or 'attention'; got "
                f"{coupling!r}."
            )
        self.embed = jr.normal(ekey, (10, channels), **kwargs)
        self.layer = _nn.KuramotoLayer(
            j,
            channels,
            dim,
            steps=steps,
            gamma=gamma,
            omega=omega,
            dtype=dtype,
            key=lkey,
        )
        self.readout = _nn.Readout(channels, features, dim, dtype=dtype, key=rkey)
        self.feedback_hidden = eqx.nn.Linear(features, hidden, key=hkey, dtype=dtype)
        self.feedback_out = eqx.nn.Linear(hidden, channels, key=okey, dtype=dtype)
        self.head = eqx.nn.Linear(features, 9, key=headkey, dtype=dtype)
        self.blocks = blocks

    def _feedback(self, m):
        h = jax.nn.gelu(
            affine(m, self.feedback_hidden.weight, self.feedback_hidden.bias)
        )
        return affine(h, self.feedback_out.weight, self.feedback_out.bias)

    def __call__(
        self,
        puzzle: Int[Array, " 81"],
        *,
        key: PRNGKeyArray,
        blocks: int | None = None,
        steps: int | None = None,
    ) -> tuple[Float[Array, "l 81 9"], Float[Array, ""]]:
        """**Arguments:**

        - `puzzle`: integer array `(81,)`, `0` for blanks.
        - `key`: a `jax.random.key` for the initial oscillators. (Keyword only
            argument.)
        - `blocks`: iterations $L$; defaults to the model's. (Keyword only argument.)
        - `steps`: Kuramoto steps per iteration; defaults to the layer's. (Keyword
            only argument.)

        **Returns:**

        `(logits, energy)`: logits after each iteration, shape `(L, 81, 9)`, and the
        final energy.
        """
        logits, energies = self.trace(puzzle, key=key, blocks=blocks, steps=steps)
        return logits, energies[-1, -1]

    def trace(
        self,
        puzzle: Int[Array, " 81"],
        *,
        key: PRNGKeyArray,
        blocks: int | None = None,
        steps: int | None = None,
    ) -> tuple[Float[Array, "l 81 9"], Float[Array, "l t1"]]:
        r"""The same run as `__call__`, returning every energy.

        **Arguments:** as for `__call__`.

        **Returns:**

        `(logits, energies)`: logits after each iteration, shape `(L, 81, 9)`, and
        the energies of iteration $\ell$'s states $x^{(0)}, \dots, x^{(T)}$ under its
        stimulus $c_\ell$, shape `(L, T + 1)`; `energies[-1, -1]` is the final
        energy `__call__` returns.
        """
        _check_puzzle("SudokuAKOrN", puzzle)
        blocks = self.blocks if blocks is None else blocks
        base = self.embed[puzzle]
        x0 = _nn.random_oscillators(
            base.shape, self.layer.dim, key=key, dtype=base.dtype
        )

        def body(carry, _):
            x, c = carry
            result = self.layer(x, c, steps=steps)
            m = self.readout(result.x)
            logits = affine(m, self.head.weight, self.head.bias)
            return (result.x, base + self._feedback(m)), (logits, result.energies)

        _, (logits, energies) = jax.lax.scan(body, (x0, base), None, length=blocks)
        return logits, energies


class SudokuTransformer(eqx.Module):
    r"""A weight-tied transformer Sudoku baseline (no oscillators).

    Tokens are the 81 cells, $h_0 = e(\text{digit}) + p$ (learned digit and position
    embeddings); one pre-norm transformer layer (multi-head self-attention, optionally
    masked to the row/column/box peers, and a GELU MLP) is applied `blocks` times with
    shared weights, and a linear head gives logits after every iteration. The energy
    is identically zero (there is none), so voting does not apply.
    """

    embed: Float[Array, "10 c"]
    position: Float[Array, "81 c"]
    norm1: eqx.nn.LayerNorm
    qkv: eqx.nn.Linear
    proj: eqx.nn.Linear
    norm2: eqx.nn.LayerNorm
    mlp1: eqx.nn.Linear
    mlp2: eqx.nn.Linear
    norm_out: eqx.nn.LayerNorm
    head: eqx.nn.Linear
    mask: Bool[Array, "81 81"] | None
    blocks: int = eqx.field(static=True)
    num_heads: int = eqx.field(static=True)

    def __init__(
        self,
        channels: int = 64,
        *,
        blocks: int = 8,
        num_heads: int = 4,
        mlp_ratio: int = 2,
        structured: bool = True,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `channels`: the model width (divisible by `num_heads`).
        - `blocks`: the number of iterations of the shared layer. (Keyword only
            argument.)
        - `num_heads`: attention heads. (Keyword only argument.)
        - `mlp_ratio`: MLP width as a multiple of `channels`. (Keyword only
            argument.)
        - `structured`: mask attention to the row/column/box peers (the same graph as
            the AKOrN coupling). (Keyword only argument.)
        - `dtype`: the floating dtype. (Keyword only argument.)
        - `key`: a `jax.random.key`. (Keyword only argument.)
        """
        if channels % num_heads:
            raise ValueError(
                f"`SudokuTransformer(channels={channels}, num_heads={num_heads})` "
                "needs `channels` divisible by `num_heads`."
            )
        keys = jr.split(key, 7)
        kwargs = {} if dtype is None else {"dtype": dtype}
        self.embed = jr.normal(keys[0], (10, channels), **kwargs)
        self.position = 0.1 * jr.normal(keys[1], (81, channels), **kwargs)
        self.norm1 = eqx.nn.LayerNorm(channels, dtype=dtype)
        self.qkv = eqx.nn.Linear(channels, 3 * channels, key=keys[2], dtype=dtype)
        self.proj = eqx.nn.Linear(channels, channels, key=keys[3], dtype=dtype)
        self.norm2 = eqx.nn.LayerNorm(channels, dtype=dtype)
        width = mlp_ratio * channels
        self.mlp1 = eqx.nn.Linear(channels, width, key=keys[4], dtype=dtype)
        self.mlp2 = eqx.nn.Linear(width, channels, key=keys[5], dtype=dtype)
        self.norm_out = eqx.nn.LayerNorm(channels, dtype=dtype)
        self.head = eqx.nn.Linear(channels, 9, key=keys[6], dtype=dtype)
        self.mask = jnp.asarray(sudoku_peers()) if structured else None
        self.blocks = blocks
        self.num_heads = num_heads

    def _layer(self, h):
        a = jax.vmap(self.norm1)(h)
        qkv = affine(a, self.qkv.weight, self.qkv.bias)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        out = _fc.multi_head_attention(q, k, v, self.num_heads, self.mask)
        h = h + affine(out, self.proj.weight, self.proj.bias)
        b = jax.vmap(self.norm2)(h)
        b = jax.nn.gelu(affine(b, self.mlp1.weight, self.mlp1.bias))
        return h + affine(b, self.mlp2.weight, self.mlp2.bias)

    def __call__(
        self,
        puzzle: Int[Array, " 81"],
        *,
        key: PRNGKeyArray | None = None,
        blocks: int | None = None,
        steps: int | None = None,
    ) -> tuple[Float[Array, "l 81 9"], Float[Array, ""]]:
        """**Arguments:**

        - `puzzle`: integer array `(81,)`, `0` for blanks.
        - `key`: ignored (the model is deterministic). (Keyword only argument.)
        - `blocks`: iterations; defaults to the model's. (Keyword only argument.)
        - `steps`: ignored (for a common interface). (Keyword only argument.)

        **Returns:**

        `(logits, energy)`: logits after each iteration, shape `(L, 81, 9)`, and `0`.
        """
        del key, steps
        _check_puzzle("SudokuTransformer", puzzle)
        blocks = self.blocks if blocks is None else blocks
        h0 = self.embed[puzzle] + self.position

        def body(h, _):
            h = self._layer(h)
            out = jax.vmap(self.norm_out)(h)
            return h, affine(out, self.head.weight, self.head.bias)

        _, logits = jax.lax.scan(body, h0, None, length=blocks)
        return logits, jnp.zeros((), h0.dtype)
