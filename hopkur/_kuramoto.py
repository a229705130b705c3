r"""Generalised Kuramoto oscillators on spheres (MODELS.md §2).

State: `x` of shape `(N, D)`, each row a unit vector $x_i \in S^{D-1}$, $D \ge 2$.

$$E_K(X) = -\sum_{(i,j)} \varphi_{ij}(x_i \cdot x_j) - \sum_i c_i \cdot x_i, \qquad
\dot x_i = \Omega_i x_i + P_{x_i}\Big(c_i + \sum_{j \sim i}
\varphi'_{ij}(x_i\cdot x_j)\, x_j\Big).$$

Positive coupling synchronises (the classical sign).

This module is longer than 500 lines: it holds the oscillator couplings (with the
phase lag that three of them take, MODELS.md §6) and the model that uses them. The
couplings (`AbstractOscillatorCoupling` and the four final ones) are the natural
module of their own; they stay here for now because the tests of the fast paths
patch `EdgeCoupling`'s evaluation hooks on this module
(`hopkur._kuramoto.edge_drive_dense_batched`), and moving `EdgeCoupling` means moving
those tests with it.
"""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from . import _native
from ._custom_types import Args, RealScalarLike, Scalar
from ._edge_graph import EdgeGraph
from ._interactions import AbstractInteraction, closed_form
from ._misc import (
    check_edges,
    check_finite,
    check_shape,
    float_array,
    is_concrete,
    tolerance,
)
from ._per_sample import per_sample
from ._sparse import (
    check_method,
    chunk_size,
    dense_edge_parts,
    DENSE_THRESHOLD,
    DENSE_THRESHOLD_LEARNED,
    edge_drive_dense,
    edge_drive_dense_batched,
    edge_energy_dense,
    METHODS,
)
from ._sphere import _normalise, antisymmetrise, project_tangent
from ._system import AbstractEnergySystem


def _true() -> Bool[Array, ""]:
    return jnp.array(True)


class AbstractOscillatorCoupling(eqx.Module):
    r"""Abstract base class for the oscillator-oscillator coupling of
    [`hopkur.Kuramoto`][].

    A coupling gives the *drive* $d_i = \sum_j J_{ij} x_j$ (for scalar interactions,
    $\sum_{j\sim i}\varphi'_{ij}(x_i\cdot x_j)\, x_j$) and the interaction energy. For a
    symmetric coupling the drive is minus the energy's gradient, $d = -\nabla E_{int}$.
    """

    @abc.abstractmethod
    def drive(self, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        """The drive $d_i$ on each oscillator (before projection onto the sphere)."""

    @abc.abstractmethod
    def energy(self, x: Float[Array, "n d"]) -> Scalar:
        """The interaction energy (without the external field)."""

    @abc.abstractmethod
    def _hoisted(self, x: Float[Array, "n d"]) -> "AbstractOscillatorCoupling":
        # This coupling with what its drive computes from the parameters alone computed
        # once, here, for a solve from states like `x` (see
        # `AbstractEnergySystem._hoisted`); `self` for a coupling with nothing to
        # hoist.
        ...

    @property
    @abc.abstractmethod
    def num_oscillators(self) -> int | None:
        """The number of oscillators, when the coupling fixes it (else `None`)."""

    @property
    @abc.abstractmethod
    def dim(self) -> int | None:
        """The oscillator dimension $D$, when the coupling fixes it (else `None`)."""

    @abc.abstractmethod
    def is_symmetric(self) -> Bool[Array, ""]:
        r"""Whether the drive is the negative gradient of `energy`
        ($J_{ij} = J_{ji}^\top$)."""

    @abc.abstractmethod
    def is_rotation_invariant(self, omega: Float[Array, "d d"]) -> Bool[Array, ""]:
        r"""Whether the energy is invariant under the common rotation $e^{t\Omega}$.

        True for every interaction of inner products; for blocks, whether each block
        commutes with $\Omega$.
        """

    @abc.abstractmethod
    def check_size(self, n: int) -> None:
        """Raises a `ValueError` if the coupling cannot act on `n` oscillators."""


def _check_num_oscillators(coupling: AbstractOscillatorCoupling, n: int) -> None:
    # `check_size` of a coupling that fixes at most the number of oscillators
    if coupling.num_oscillators is not None and coupling.num_oscillators != n:
        raise ValueError(
            f"`{type(coupling).__name__}` couples {coupling.num_oscillators} "
            f"oscillators; got a state or parameter with {n}."
        )


def _optional_float(x):
    return None if x is None else float_array(x)


def lag_rotation(
    phase_lag: Float[ArrayLike, ""],
    dim: int,
    generator: Float[ArrayLike, "d d"] | None = None,
    dtype: Any = None,
) -> Float[Array, "d d"]:
    r"""The rotation $R_\alpha$ that a phase lag $\alpha$ applies to a neighbour's
    state before it drives an oscillator (MODELS.md §6).

    $R_\alpha = e^{-\alpha A}$ with $A$ the generator, by default the rotation
    generator of the $(e_1, e_2)$ plane, $A = e_2 e_1^\top - e_1 e_2^\top$ (the
    $\begin{pmatrix}0 & -1\\ 1 & 0\end{pmatrix}$ of
    [`hopkur.planar_rotations`][], embedded): it turns $e_1$ towards $-e_2$ by
    $\alpha$ and leaves $e_3, \dots, e_D$ unchanged. At $D = 2$,
    $R_\alpha(\cos\theta, \sin\theta) = (\cos(\theta - \alpha),
    \sin(\theta - \alpha))$: the neighbour's phase lags by $\alpha$, which gives the
    Sakaguchi–Kuramoto model $\dot\theta_i = \omega_i + \sum_j K_{ij}
    \sin(\theta_j - \theta_i - \alpha)$.

    **Arguments:**

    - `phase_lag`: the lag $\alpha$ (radians), a scalar.
    - `dim`: the oscillator dimension $D \ge 2$.
    - `generator`: an optional $D\times D$ generator $A$, antisymmetrised on use (then
      $R_\alpha = \exp(-\alpha A)$, a rotation for any $A$). `None`: the $(e_1, e_2)$
      plane.
    - `dtype`: the floating dtype (default: that of `phase_lag`).

    **Returns:**

    The rotation matrix $R_\alpha$, shape `(D, D)`; the coupling uses
    $\tilde x_j = R_\alpha x_j$ in place of $x_j$.
    """
    alpha = jnp.asarray(phase_lag) if dtype is None else jnp.asarray(phase_lag, dtype)
    alpha = float_array(alpha)
    if generator is not None:
        a = antisymmetrise(jnp.asarray(generator, alpha.dtype))
        return jax.scipy.linalg.expm(-alpha * a)
    c, s = jnp.cos(alpha), jnp.sin(alpha)
    plane = jnp.stack([jnp.stack([c, s]), jnp.stack([-s, c])])
    rotation = jnp.eye(dim, dtype=alpha.dtype)
    return rotation.at[:2, :2].set(plane)


class _AbstractLagged(AbstractOscillatorCoupling):
    # The couplings that take a phase lag (dense, mean-field, edge); each has the
    # fields `phase_lag` and `lag_generator`, read by the functions below.
    pass


def _check_lag(call: str, phase_lag, generator) -> None:
    if phase_lag is not None:
        check_shape(call, "phase_lag", phase_lag, ())
        check_finite(call, "phase_lag", phase_lag)
    if generator is not None:
        if phase_lag is None:
            raise ValueError(
                f"`{call}(lag_generator=...)` needs a `phase_lag` (the angle of the "
                "rotation it generates); got phase_lag=None."
            )
        shape = jnp.shape(generator)
        if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 2:
            raise ValueError(
                f"`{call}(lag_generator=...)` must have shape (D, D) with D >= 2 "
                f"(antisymmetrised on use); got {shape}."
            )
        check_finite(call, "lag_generator", generator)


def _lagged(call: str, x: Float[Array, "n d"], phase_lag, generator):
    # the neighbour states as they drive: x_j, or R_alpha x_j with a lag
    if phase_lag is None:
        return x
    d = x.shape[-1]
    if generator is not None and generator.shape[0] != d:
        raise ValueError(
            f"`{call}(lag_generator=...)` has shape {generator.shape} for oscillators "
            f"of dimension D = {d}."
        )
    return x @ lag_rotation(phase_lag, d, generator, x.dtype).T


def _lag_free(phase_lag) -> Bool[Array, ""]:
    if phase_lag is None:
        return _true()
    return jnp.abs(phase_lag) <= tolerance(phase_lag)


def _lag_dim(generator) -> int | None:
    return None if generator is None else generator.shape[0]


_LAG_DOC = """- `phase_lag`: an optional phase lag $\\alpha$ (radians, a scalar): each
  neighbour's state is rotated by [`hopkur.lag_rotation`][] $R_\\alpha$ before it
  drives an oscillator, $d_i = \\sum_j K_{ij} R_\\alpha x_j$. At $D = 2$ this is the
  Sakaguchi–Kuramoto model $\\dot\\theta_i = \\omega_i + \\sum_j K_{ij}
  \\sin(\\theta_j - \\theta_i - \\alpha)$; for $D > 2$ the rotation turns the
  $(e_1, e_2)$ plane (or the plane(s) of `lag_generator`). With $\\alpha \\ne 0$ the
  drive is not a gradient: `is_symmetric()` is false, so is the model's
  `is_gradient_system`, and `energy` (still that of $\\alpha = 0$) can rise. `None`
  (default): no lag.
- `lag_generator`: an optional $D\\times D$ generator $A$ of the lag rotation,
  $R_\\alpha = e^{-\\alpha A}$ (antisymmetrised on use); `None`: the $(e_1, e_2)$
  plane.
"""


class DenseCoupling(_AbstractLagged):
    r"""Linear coupling with a dense matrix: $\varphi_{ij}(s) = K_{ij} s$, with
    $K = (W + W^\top)/2$ and its diagonal ignored (each pair once; self-coupling is
    constant on the sphere).

    $d = K X$, $E_{int} = -\tfrac12 \sum_{i \ne j} K_{ij}\, x_i\cdot x_j$: two matrix
    products, no Gram matrix. For the classical all-to-all model pass `K/N * ones` (or
    use [`hopkur.MeanFieldCoupling`][], which is $O(N D)$). With a phase lag,
    $d = K X R_\alpha^\top$.
    """

    weights: Float[Array, "n n"] = eqx.field(converter=float_array)
    phase_lag: Float[Array, ""] | None = eqx.field(
        default=None, converter=_optional_float
    )
    lag_generator: Float[Array, "d d"] | None = eqx.field(
        default=None, converter=_optional_float
    )

    def __check_init__(self):
        n = jnp.shape(self.weights)[0] if jnp.ndim(self.weights) else 0
        check_shape("DenseCoupling", "weights", self.weights, (n, n))
        check_finite("DenseCoupling", "weights", self.weights)
        _check_lag("DenseCoupling", self.phase_lag, self.lag_generator)

    @property
    def matrix(self) -> Float[Array, "n n"]:
        """The symmetrised coupling matrix $K$ with zero diagonal."""
        k = 0.5 * (self.weights + self.weights.T)
        return k - jnp.diag(jnp.diag(k))

    @property
    def num_oscillators(self):
        return self.weights.shape[0]

    @property
    def dim(self):
        return _lag_dim(self.lag_generator)

    def _hoisted(self, x):
        return self

    def is_symmetric(self):
        return _lag_free(self.phase_lag)

    def is_rotation_invariant(self, omega):
        del omega
        return _true()

    def check_size(self, n):
        _check_num_oscillators(self, n)

    def _product(self, y):
        # K y = (W y + W^T y) / 2 - diag(W) y, without forming K: no N x N temporary,
        # and a row-sharded W (`hopkur.distributed.shard_nodes`) stays sharded.
        w = self.weights
        both = 0.5 * (w @ y + w.T @ y)
        return both - jnp.diagonal(w)[:, None] * y

    def drive(self, x):
        return self._product(
            _lagged("DenseCoupling", x, self.phase_lag, self.lag_generator)
        )

    def energy(self, x):
        return -0.5 * jnp.sum(x * self._product(x))


DenseCoupling.__init__.__doc__ = """**Arguments:**

- `weights`: the coupling matrix $W$, shape `(N, N)`; symmetrised on use, diagonal
  ignored. Positive entries synchronise. Integer or boolean values are converted to
  the default floating dtype.
""" + _LAG_DOC.replace("\\\\", "\\")


class MeanFieldCoupling(_AbstractLagged):
    r"""All-to-all linear coupling of equal strength, $K_{ij} = K/N$ ($i \ne j$): the
    classical Kuramoto model, in $O(N D)$.

    $d_i = \frac{K}{N}\big(\sum_j x_j - x_i\big)$,
    $E_{int} = -\frac{K}{2N}\big(\|\sum_i x_i\|^2 - \sum_i \|x_i\|^2\big)$. With a
    phase lag, $d_i = \frac{K}{N} R_\alpha\big(\sum_j x_j - x_i\big)$.
    """

    strength: Float[Array, ""] = eqx.field(converter=float_array)
    phase_lag: Float[Array, ""] | None = eqx.field(
        default=None, converter=_optional_float
    )
    lag_generator: Float[Array, "d d"] | None = eqx.field(
        default=None, converter=_optional_float
    )

    def __check_init__(self):
        check_shape("MeanFieldCoupling", "strength", self.strength, ())
        check_finite("MeanFieldCoupling", "strength", self.strength)
        _check_lag("MeanFieldCoupling", self.phase_lag, self.lag_generator)

    @property
    def num_oscillators(self):
        return None

    @property
    def dim(self):
        return _lag_dim(self.lag_generator)

    def _hoisted(self, x):
        return self

    def is_symmetric(self):
        return _lag_free(self.phase_lag)

    def is_rotation_invariant(self, omega):
        del omega
        return _true()

    def check_size(self, n):
        del n

    def drive(self, x):
        n = x.shape[0]
        y = _lagged("MeanFieldCoupling", x, self.phase_lag, self.lag_generator)
        return (self.strength / n) * (jnp.sum(y, axis=0, keepdims=True) - y)

    def energy(self, x):
        n = x.shape[0]
        total = jnp.sum(x, axis=0)
        return -0.5 * (self.strength / n) * (jnp.sum(total * total) - jnp.sum(x * x))


MeanFieldCoupling.__init__.__doc__ = """**Arguments:**

- `strength`: the coupling strength $K$ (a scalar); each pair is coupled by $K/N$.
  Integer or boolean values are converted to the default floating dtype.
""" + _LAG_DOC.replace("\\\\", "\\")


class EdgeCoupling(_AbstractLagged):
    r"""Coupling over an undirected edge list with a scalar interaction per edge:
    $E_{int} = -\sum_{e=(i,j)} \varphi_e(x_i\cdot x_j)$,
    $d_i = \sum_{j \sim i} \varphi'_{ij}(x_i \cdot x_j)\, x_j$.

    Three evaluations, equal up to float rounding, chosen by `method`:

    - `"segment"`: gather the edges' endpoints and sum per node
      (`jax.ops.segment_sum`): $O(E D)$ work, but the per-node sums are scatter-adds,
      which run one edge at a time on CPU.
    - `"dense"`: scatter the per-edge parameters once into $N\times N$ matrices (zero
      off the graph), form the Gram matrix $G = XX^\top$ and compute
      $d = (\varphi'(G)\circ M) X$: $O(N^2 D)$ work in matrix products. Under `vmap`
      it runs sample by sample (in small chunks), so that no `(batch, N, N)` array is
      formed; its derivatives do the same.
    - `"native"`: compiled CPU kernels (C++, built once per machine by
      `hopkur kernels build`; see [`hopkur.native_kernels`][]) that sum over each
      node's own neighbour list (the graph's compressed rows, built once with the
      coupling), vectorised over the batch: $O(E D)$ work without scatter-adds or
      $N\times N$ arrays, with compiled tangent and transposed (reverse-mode)
      kernels. For the closed-form interactions (linear, relu, tanh, sigmoid, and
      their subclasses) and float32/float64 states. Batches come from `vmap` (a
      single state fills one lane of 8, so batches are where it pays). On other
      backends than CPU, and for second derivatives, it is evaluated as
      `"segment"`.
    - `"auto"` (default): `"native"` on CPU for the closed-form interactions when the
      kernels are built (nothing is compiled here); otherwise `"dense"` when the
      graph's density $2E/(N(N-1))$ is at least `hopkur._sparse.DENSE_THRESHOLD`
      (0.02) for the closed-form interactions, or `DENSE_THRESHOLD_LEARNED` (0.5)
      for learned ones (MLP, user functions, evaluated on all $N^2$ pairs in the
      dense form), and $N \le 8192$; `"segment"` otherwise. The crossovers were
      measured (see the benchmarks); [`hopkur.EdgeCoupling.evaluation_method`][]
      tells which is used.

    The energy $E_{int}$ is evaluated `"dense"` or `"segment"` by the same density
    rule (it needs no scatter-add); `"native"` concerns the drive.

    With a phase lag the neighbour's state is rotated before it enters,
    $d_i = \sum_{j\sim i}\varphi'_{ij}(x_i\cdot R_\alpha x_j)\, R_\alpha x_j$ (for the
    linear interaction, $\sum_j K_{ij} R_\alpha x_j$, as [`hopkur.DenseCoupling`][]);
    the two directions of an edge then differ, and the drive is evaluated
    `"segment"`-wise whatever `method` says (the compiled kernels and the dense form
    assume a symmetric pair term).
    """

    graph: EdgeGraph
    interaction: AbstractInteraction
    n: int | None = eqx.field(static=True)
    method: str = eqx.field(static=True)
    phase_lag: Float[Array, ""] | None
    lag_generator: Float[Array, "d d"] | None

    def __init__(
        self,
        edges: ArrayLike,
        interaction: AbstractInteraction,
        n: int | None = None,
        method: str = "auto",
        *,
        phase_lag: ArrayLike | None = None,
        lag_generator: ArrayLike | None = None,
    ):
        self.graph = EdgeGraph.of(edges, n)
        self.interaction = interaction
        self.n = n
        self.method = method
        self.phase_lag = _optional_float(phase_lag)
        self.lag_generator = _optional_float(lag_generator)

    @property
    def edges(self) -> Int[Array, "e 2"]:
        """The edge list `(E, 2)`."""
        return self.graph.edges

    def __check_init__(self):
        check_edges("EdgeCoupling", self.edges, self.n)
        check_method("EdgeCoupling", self.method, (*METHODS, "native"))
        if self.method == "native" and not _native.supports(
            self.interaction, jnp.float32
        ):
            raise ValueError(
                "`EdgeCoupling(method='native')` evaluates the closed-form "
                "interactions (LinearInteraction, ReluInteraction, TanhInteraction, "
                "SigmoidInteraction and their subclasses); got "
                f"{type(self.interaction).__name__}."
            )
        e = self.interaction.num_edges()
        if e is not None and e != self.edges.shape[0]:
            raise ValueError(
                f"`EdgeCoupling(interaction=...)` has per-edge parameters for {e} "
                f"edges; `edges` has {self.edges.shape[0]}."
            )
        _check_lag("EdgeCoupling", self.phase_lag, self.lag_generator)

    @property
    def num_oscillators(self):
        return self.n

    @property
    def dim(self):
        return _lag_dim(self.lag_generator)

    def is_symmetric(self):
        return _lag_free(self.phase_lag)

    def is_rotation_invariant(self, omega):
        del omega
        return _true()

    def check_size(self, n):
        _check_num_oscillators(self, n)
        if is_concrete(self.edges) and self.edges.size:
            # NumPy, not jnp: under `jit` a jnp reduction of a concrete array is traced.
            largest = int(np.max(np.asarray(self.edges)))
            if largest >= n:
                raise ValueError(
                    f"`EdgeCoupling(edges=...)` must index nodes in [0, {n}); got a "
                    f"node {largest}."
                )

    def evaluation_method(self, n: int, dtype: Any = None) -> str:
        """The evaluation of the drive for `n` oscillators: `"native"`, `"segment"` or
        `"dense"` (resolves `method="auto"`; see above; `"segment"` with a phase lag).

        **Arguments:**

        - `n`: the number of oscillators.
        - `dtype`: the states' dtype, if known (the compiled kernels take float32 and
          float64).

        **Returns:**

        `"native"`, `"segment"` or `"dense"`.
        """
        if self.phase_lag is not None:
            return "segment"
        if self.method == "native":
            return "native"
        if self.method == "auto" and _native.usable(
            dtype or jnp.float32, self.interaction
        ):
            return "native"
        return self._gram_method(n)

    def _gram_method(self, n: int) -> str:
        # "dense" or "segment" by the graph's density (the energy's evaluation, and the
        # drive's when the compiled kernels are not used)
        closed = closed_form(self.interaction) is not None
        threshold = DENSE_THRESHOLD if closed else DENSE_THRESHOLD_LEARNED
        method = "auto" if self.method == "native" else self.method
        return "dense" if self.graph.is_dense(method, n, threshold) else "segment"

    def _dense_args(self, x):
        args = (x, self.interaction, self.edges, self.graph.hoisted)
        return args, chunk_size(x.shape[0])

    def _hoisted(self, x):
        # For a solve: the graph's compressed rows for the kernels (if not known yet),
        # or, with the dense evaluation, the per-edge parameters scattered into their
        # N x N matrices once, here, instead of at every evaluation: same drive, energy
        # and derivatives (`prescattered`).
        n = x.shape[0]
        method = self.evaluation_method(n, x.dtype)
        parts = None
        if method == "dense":
            parts = dense_edge_parts(self.interaction, self.edges, n, x.dtype)
            parts = jax.tree.map(_without_gradient, parts)
        graph = self.graph.hoist(n, parts, rows=method == "native")
        return eqx.tree_at(lambda c: c.graph, self, graph)

    def drive(self, x):
        if self.phase_lag is not None:
            return self._lagged_drive(x)
        method = self.evaluation_method(x.shape[0], x.dtype)
        if method == "native":
            if not _native.supports(self.interaction, x.dtype):
                raise ValueError(
                    "`EdgeCoupling(method='native')` takes float32 or float64 states; "
                    f"got {x.dtype}."
                )
            _native.require("EdgeCoupling")
            form = closed_form(self.interaction)
            assert form is not None, "checked by `supports`; please report"
            return self.graph.kernel_drive(x, form)
        if method == "dense":
            args, batch_size = self._dense_args(x)
            return per_sample(
                edge_drive_dense,
                args,
                batch_size=batch_size,
                batched=edge_drive_dense_batched,
            )
        _, _, s = self.graph.overlaps(x)
        return self.graph.weighted_sum(self.interaction.derivative(s), x)

    def _lagged_drive(self, x):
        # both directions of every edge: R x_j drives x_i, R x_i drives x_j
        i, j = self.edges[:, 0], self.edges[:, 1]
        y = _lagged("EdgeCoupling", x, self.phase_lag, self.lag_generator)
        yi, yj = y[i], y[j]
        to_i = self.interaction.derivative(jnp.sum(x[i] * yj, axis=-1))
        to_j = self.interaction.derivative(jnp.sum(x[j] * yi, axis=-1))
        return self.graph.sum_over_edges(
            to_i[:, None] * yj, to_j[:, None] * yi, x.shape[0]
        )

    def energy(self, x):
        if self._gram_method(x.shape[0]) == "dense":
            args, batch_size = self._dense_args(x)
            return per_sample(edge_energy_dense, args, batch_size=batch_size)
        _, _, s = self.graph.overlaps(x)
        return -jnp.sum(self.interaction.potential(s))


def _without_gradient(p):
    return jax.lax.stop_gradient(p) if eqx.is_inexact_array(p) else p


EdgeCoupling.__init__.__doc__ = """**Arguments:**

- `edges`: integer array of shape `(E, 2)`, each undirected edge once, no self-loops.
- `interaction`: the interaction $\\varphi$, e.g. `hopkur.ReluInteraction(a, b)` with
  per-edge parameters of shape `(E,)` or scalars.
- `n`: the number of oscillators, if known (checks the edges' range at construction).
- `method`: `"auto"` (default), `"segment"` or `"dense"`: how the drive and energy are
  evaluated (same results up to float rounding; see above).
""" + _LAG_DOC.replace("$d_i = \\sum_j K_{ij} R_\\alpha x_j$", "see above")


class BlockCoupling(AbstractOscillatorCoupling):
    r"""AKOrN's block coupling: $d_i = \sum_j J_{ij} x_j$ with $D\times D$ blocks,
    $E_{int} = -\tfrac12 \sum_{ij} x_i^\top J_{ij} x_j$ (diagonal blocks included).

    Not symmetrised: the energy is a Lyapunov function only when $J_{ij} = J_{ji}^\top$
    (see [`hopkur.Kuramoto`][]).
    """

    blocks: Float[Array, "n n d d"] = eqx.field(converter=float_array)

    def __check_init__(self):
        shape = jnp.shape(self.blocks)
        n = shape[0] if shape else 0
        d = shape[-1] if shape else 0
        check_shape("BlockCoupling", "blocks", self.blocks, (n, n, d, d))
        if d < 2:
            raise ValueError(f"`BlockCoupling(blocks=...)` needs D >= 2; got D = {d}.")
        check_finite("BlockCoupling", "blocks", self.blocks)

    @property
    def num_oscillators(self):
        return self.blocks.shape[0]

    @property
    def dim(self):
        return self.blocks.shape[-1]

    def _hoisted(self, x):
        return self

    def check_size(self, n):
        _check_num_oscillators(self, n)

    def drive(self, x):
        return jnp.einsum("ijab,jb->ia", self.blocks, x)

    def energy(self, x):
        return -0.5 * jnp.sum(x * self.drive(x))

    def is_symmetric(self):
        transposed = jnp.transpose(self.blocks, (1, 0, 3, 2))
        return jnp.max(jnp.abs(self.blocks - transposed)) <= tolerance(self.blocks)

    def is_rotation_invariant(self, omega):
        commutator = jnp.einsum("ijab,bc->ijac", self.blocks, omega) - jnp.einsum(
            "ab,ijbc->ijac", omega, self.blocks
        )
        return jnp.max(jnp.abs(commutator)) <= tolerance(self.blocks, omega)


BlockCoupling.__init__.__doc__ = """**Arguments:**

- `blocks`: the coupling blocks $J_{ij}$, shape `(N, N, D, D)`. Integer or boolean
  values are converted to the default floating dtype.
"""


def _omega_times(
    omega: Float[Array, "*n d d"], x: Float[Array, "n d"]
) -> Float[Array, "n d"]:
    omega = antisymmetrise(omega)
    if omega.ndim == 2:
        return x @ omega.T
    return jnp.einsum("nij,nj->ni", omega, x)


def _check_state(call: str, x, n: int | None, d: int | None) -> None:
    shape = jnp.shape(x)
    if len(shape) != 2:
        raise ValueError(
            f"`{call}` needs an oscillator state of shape (N, D); got {shape}."
        )
    if shape[1] < 2:
        raise ValueError(
            f"`{call}` needs oscillators of dimension D >= 2; got D = {shape[1]}."
        )
    if (n is not None and shape[0] != n) or (d is not None and shape[1] != d):
        raise ValueError(
            f"`{call}` expected a state of shape ({n or 'N'}, {d or 'D'}); got {shape}."
        )


def kuramoto_vector_field(
    x: Float[Array, "n d"],
    coupling: AbstractOscillatorCoupling,
    field: Float[Array, "n d"] | None = None,
    omega: Float[Array, "*n d d"] | None = None,
) -> Float[Array, "n d"]:
    r"""Generalised Kuramoto dynamics on a product of spheres:
    $\dot x_i = \Omega_i x_i + P_{x_i}\big(c_i + d_i(X)\big)$, with $d$ the coupling's
    drive and $P_x v = v - \frac{x\cdot v}{x \cdot x} x$.

    **Arguments:**

    - `x`: the oscillator states, shape `(N, D)`, unit rows.
    - `coupling`: an [`hopkur.AbstractOscillatorCoupling`][] (dense, mean-field, edge or
      block).
    - `field`: the external field $c$, shape `(N, D)`, or `None` for zero.
    - `omega`: natural frequencies $\Omega$, shape `(D, D)` (shared) or `(N, D, D)`;
      antisymmetrised on use. `None` for zero.

    **Returns:**

    $\dot x$, shape `(N, D)`; each row is orthogonal to its row of `x` up to $\Omega x$,
    which is itself orthogonal, so $|x_i|$ is an exact invariant of the flow.
    """
    drive = coupling.drive(x)
    if field is not None:
        drive = drive + field
    dx = project_tangent(x, drive)
    if omega is not None:
        dx = dx + _omega_times(omega, x)
    return dx


def kuramoto_energy(
    x: Float[Array, "n d"],
    coupling: AbstractOscillatorCoupling,
    field: Float[Array, "n d"] | None = None,
) -> Scalar:
    r"""$E_K(X) = -\sum_{(i,j)} \varphi_{ij}(x_i\cdot x_j) - \sum_i c_i\cdot x_i$ (each
    undirected edge once; for blocks $-\tfrac12\sum_{ij} x_i^\top J_{ij} x_j - \sum_i
    c_i \cdot x_i$).

    A Lyapunov function of [`hopkur.kuramoto_vector_field`][] when the coupling is
    symmetric and either $\Omega = 0$, or all $\Omega_i$ equal a common $\Omega$ that
    leaves the coupling energy invariant (always, for interactions of inner products;
    for blocks when each block commutes with $\Omega$) and $\Omega c_i = 0$ for every
    $i$. Then $\frac{dE}{dt} = -\sum_i \|P_{x_i}\nabla_{x_i} E\|^2 \le 0$.

    **Arguments:**

    - `x`: the oscillator states, shape `(N, D)`.
    - `coupling`: the coupling.
    - `field`: the external field $c$, shape `(N, D)`, or `None`.

    **Returns:**

    The scalar energy.
    """
    energy = coupling.energy(x)
    if field is not None:
        energy = energy - jnp.sum(field * x)
    return energy


class Kuramoto(AbstractEnergySystem):
    r"""The generalised Kuramoto model on spheres (oscillatory neurons of AKOrN).

    $\dot x_i = \Omega_i x_i + P_{x_i}\big(c_i +
    \sum_{j\sim i}\varphi'_{ij}(x_i\cdot x_j) x_j\big)$ with energy
    $E = -\sum_{(i,j)}\varphi_{ij}(x_i \cdot x_j) - \sum_i c_i\cdot x_i$; see
    [`hopkur.kuramoto_vector_field`][] and [`hopkur.kuramoto_energy`][].

    **Lyapunov conditions** (`is_gradient_system`): the coupling is symmetric (always
    for dense, mean-field and edge couplings; $J_{ij} = J_{ji}^\top$ for blocks) and
    either `omega` is `None`, or all $\Omega_i$ are equal, the coupling is invariant
    under that rotation, and $\Omega c_i = 0$. With distinct per-oscillator frequencies
    the model is not a gradient system and `energy` is *not* guaranteed to decrease.

    With $D = 2$, $x_i = (\cos\theta_i, \sin\theta_i)$, linear coupling $K_{ij}$,
    $c = 0$ and $\Omega_i = \omega_i \begin{pmatrix}0 & -1\\ 1 & 0\end{pmatrix}$ this is
    exactly the classical
    $\dot\theta_i = \omega_i + \sum_j K_{ij}\sin(\theta_j - \theta_i)$.

    ??? cite "References"

        ```bibtex
        @inproceedings{kuramoto1975,
          title={Self-entrainment of a population of coupled non-linear oscillators},
          author={Kuramoto, Yoshiki},
          booktitle={International Symposium on Mathematical Problems in Theoretical
                     Physics},
          pages={420--422},
          year={1975}
        }
        @inproceedings{miyato2025akorn,
          title={Artificial Kuramoto Oscillatory Neurons},
          author={Miyato, Takeru and L{\"o}we, Sindy and Geiger, Andreas and
                  Welling, Max},
          booktitle={ICLR},
          year={2025}
        }
        ```
    """

    coupling: AbstractOscillatorCoupling
    field: Float[Array, "n d"] | None = None
    omega: Float[Array, "*n d d"] | None = None

    def __init__(
        self,
        coupling: AbstractOscillatorCoupling,
        field: ArrayLike | None = None,
        omega: ArrayLike | None = None,
    ):
        """**Arguments:**

        - `coupling`: [`hopkur.DenseCoupling`][], [`hopkur.MeanFieldCoupling`][],
          [`hopkur.EdgeCoupling`][] or [`hopkur.BlockCoupling`][].
        - `field`: the external field (AKOrN's conditional stimulus) $c$, shape
          `(N, D)`.
        - `omega`: natural frequencies, `(D, D)` shared or `(N, D, D)` per oscillator;
          antisymmetrised on use.

        Integer or boolean `field` and `omega` are converted to the default floating
        dtype.
        """
        self.coupling = coupling
        self.field = None if field is None else float_array(field)
        self.omega = None if omega is None else float_array(omega)

    def _hoisted(self, y):
        return eqx.tree_at(lambda m: m.coupling, self, self.coupling._hoisted(y))

    def __check_init__(self):
        if not isinstance(self.coupling, AbstractOscillatorCoupling):
            raise ValueError(
                "`Kuramoto(coupling=...)` must be a hopkur oscillator coupling "
                f"(DenseCoupling, MeanFieldCoupling, EdgeCoupling, BlockCoupling); got "
                f"{type(self.coupling).__name__}."
            )
        n, d = self.coupling.num_oscillators, self.coupling.dim
        if self.field is not None:
            shape = jnp.shape(self.field)
            if len(shape) != 2:
                raise ValueError(
                    f"`Kuramoto(field=...)` must have shape (N, D); got {shape}."
                )
            check_shape("Kuramoto", "field", self.field, (n, d))
            n, d = shape
            check_finite("Kuramoto", "field", self.field)
        if self.omega is not None:
            shape = jnp.shape(self.omega)
            if len(shape) not in (2, 3) or shape[-1] != shape[-2]:
                raise ValueError(
                    "`Kuramoto(omega=...)` must have shape (D, D) or (N, D, D) "
                    f"(square, to be antisymmetrised); got {shape}."
                )
            check_shape(
                "Kuramoto",
                "omega",
                self.omega,
                (*([n] if len(shape) == 3 else []), d, d),
            )
            d = shape[-1]
            if len(shape) == 3:
                n = shape[0]
            check_finite("Kuramoto", "omega", self.omega)
        if d is not None and d < 2:
            raise ValueError(
                f"`Kuramoto` needs oscillators of dimension D >= 2; got D = {d}."
            )
        if n is not None:
            self.coupling.check_size(n)

    @property
    def num_oscillators(self) -> int | None:
        """$N$, when the parameters fix it."""
        if self.coupling.num_oscillators is not None:
            return self.coupling.num_oscillators
        if self.field is not None:
            return self.field.shape[0]
        if self.omega is not None and self.omega.ndim == 3:
            return self.omega.shape[0]
        return None

    @property
    def dim(self) -> int | None:
        """$D$, when the parameters fix it."""
        for a in (self.field, self.omega):
            if a is not None:
                return a.shape[-1]
        return self.coupling.dim

    def vector_field(self, t: RealScalarLike, y: Float[Array, "n d"], args: Args):
        del t, args
        _check_state("Kuramoto.vector_field", y, self.num_oscillators, self.dim)
        return kuramoto_vector_field(y, self.coupling, self.field, self.omega)

    def energy(self, y: Float[Array, "n d"], args: Args) -> Scalar:
        del args
        _check_state("Kuramoto.energy", y, self.num_oscillators, self.dim)
        return kuramoto_energy(y, self.coupling, self.field)

    @property
    def is_gradient_system(self) -> Bool[Array, ""]:
        return self.coupling.is_symmetric() & self.rotation_is_harmless()

    def retract(self, y: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return _normalise(y)

    @property
    def retract_is_identity(self) -> bool:
        return False

    def rotation_is_harmless(self) -> Bool[Array, ""]:
        r"""Whether the rotation term $\Omega_i x_i$ leaves the energy unchanged:
        `omega` is `None`, or a single $\Omega$ (all $\Omega_i$ equal) under which the
        coupling is invariant and $\Omega c_i = 0$."""
        if self.omega is None:
            return _true()
        omega = antisymmetrise(self.omega)
        ok = _true()
        if omega.ndim == 3:
            ok = jnp.max(jnp.abs(omega - omega[:1])) <= tolerance(omega)
            omega = omega[0]
        ok = ok & self.coupling.is_rotation_invariant(omega)
        if self.field is not None:
            ok = ok & (
                jnp.max(jnp.abs(self.field @ omega.T)) <= tolerance(self.field, omega)
            )
        return ok


def with_phase_lag(
    coupling: Any,
    phase_lag: ArrayLike,
    *,
    lag_generator: ArrayLike | None = None,
) -> Any:
    r"""A copy of `coupling` (or of a [`hopkur.Kuramoto`][] model's coupling) with the
    phase lag $\alpha$: the neighbours' states are rotated by
    [`hopkur.lag_rotation`][] $R_\alpha$ before they drive an oscillator (at $D = 2$
    the Sakaguchi–Kuramoto model; see [`hopkur.MeanFieldCoupling`][]).

    The same as passing `phase_lag=` to the constructor, for a coupling that is
    already built; and the one place that says which couplings cannot take a lag.

    **Arguments:**

    - `coupling`: a [`hopkur.DenseCoupling`][], [`hopkur.MeanFieldCoupling`][] or
      [`hopkur.EdgeCoupling`][], or a [`hopkur.Kuramoto`][] model with one.
    - `phase_lag`: the lag $\alpha$ (radians), a finite scalar.
    - `lag_generator`: the generator $A$ of the rotation for $D > 2$ (see
      [`hopkur.lag_rotation`][]). (Keyword only argument.)

    **Returns:**

    The coupling, or the model, with the lag.

    **Raises:**

    `ValueError` for a coupling whose drive is not a sum of neighbour states, which a
    rotation of the neighbours could lag: [`hopkur.BlockCoupling`][] (its blocks
    already are arbitrary linear maps: fold the rotation into them,
    $J_{ij} R_\alpha$), [`hopkur.GroupedCoupling`][] (convolution, attention), the
    Hopfield–Kuramoto couplings; and for a `phase_lag` that is not a finite scalar.
    """
    call = "hopkur.with_phase_lag"
    if isinstance(coupling, Kuramoto):
        inner = with_phase_lag(
            coupling.coupling, phase_lag, lag_generator=lag_generator
        )
        return eqx.tree_at(lambda m: m.coupling, coupling, inner)
    if not isinstance(coupling, _AbstractLagged):
        hint = (
            " (fold the rotation into the blocks: J_ij R_alpha)"
            if isinstance(coupling, BlockCoupling)
            else ""
        )
        raise ValueError(
            f"`{call}(coupling=...)` must be a DenseCoupling, MeanFieldCoupling or "
            "EdgeCoupling (or a Kuramoto model with one): only a drive that sums "
            f"neighbour states can take a phase lag; a {type(coupling).__name__} "
            f"cannot{hint}."
        )
    alpha = float_array(phase_lag)
    check_shape(call, "phase_lag", alpha, ())
    check_finite(call, "phase_lag", alpha)
    generator = _optional_float(lag_generator)
    fields = (lambda c: c.phase_lag, lambda c: c.lag_generator)
    out = coupling
    for where, value in zip(fields, (alpha, generator)):
        out = eqx.tree_at(where, out, value, is_leaf=lambda v: v is None)
    _check_lag(type(out).__name__, alpha, generator)
    return out
