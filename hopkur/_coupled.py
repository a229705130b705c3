r"""The coupled Hopfield–Kuramoto associative memory (MODELS.md §3).

Each unit $i$ has a threshold state $x^H_i$ and an oscillator $x_i \in S^{D-1}$. With
coefficients $c_{ij}$ on the edges of a coupling graph and scales
$\kappa_H, \kappa_K > 0$:

$$E(x^H, X) = \kappa_K E_K(X) + \kappa_H E_H(x^H) - \sum_{(i,j)} c_{ij}\,
(x_i\cdot x_j)\, g_i g_j,$$

$$\dot x^H = W_s g - x^H + b + \kappa_H^{-1} v, \quad
v_i = \sum_j c_{ij}(x_i \cdot x_j) g_j,$$

$$\dot x_i = \Omega x_i + P_{x_i}\Big(c_i + d_i(X) + \kappa_K^{-1} u_i\Big),\quad
u_i = \sum_j c_{ij} g_i g_j x_j.$$
"""

import equinox as eqx
import jax
from jaxtyping import Array, Bool, Float

from ._custom_types import Args, RealScalarLike, Scalar
from ._hk_couplings import AbstractHopfieldKuramotoCoupling
from ._hopfield import AbstractHopfield, activation, energy_from_drive
from ._kuramoto import _check_state, _omega_times, Kuramoto, kuramoto_energy
from ._misc import check_edges, check_finite, check_shape, float_array, is_concrete
from ._sphere import _normalise, project_tangent
from ._system import AbstractEnergySystem


def coupled_vector_field(
    y: tuple[Float[Array, " n"], Float[Array, "n d"]],
    hopfield: AbstractHopfield,
    kuramoto: Kuramoto,
    coupling: AbstractHopfieldKuramotoCoupling,
    kappa_h: float | Float[Array, ""] = 1.0,
    kappa_k: float | Float[Array, ""] = 1.0,
) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
    r"""The coupled Hopfield–Kuramoto dynamics:
    $\dot x^H = W_s g - x^H + b + \kappa_H^{-1} v$ and
    $\dot x_i = \Omega x_i + P_{x_i}\big(c_i + d_i(X) + \kappa_K^{-1} u_i\big)$, with
    $v_i = \sum_j c_{ij}(x_i\cdot x_j) g_j$ and $u_i = \sum_j c_{ij} g_i g_j x_j$.

    **Arguments:**

    - `y`: the state `(x_h, x)`: threshold states `(N,)` and oscillators `(N, D)`.
    - `hopfield`: the threshold part, a [`hopkur.Hopfield`][] or
        [`hopkur.HebbianHopfield`][].
    - `kuramoto`: the oscillator part, a [`hopkur.Kuramoto`][].
    - `coupling`: the coupling, e.g. [`hopkur.AdditiveCoupling`][].
    - `kappa_h`, `kappa_k`: the scales $\kappa_H, \kappa_K > 0$.

    **Returns:**

    The tuple $(\dot x^H, \dot X)$.
    """
    x_h, x = y
    g = activation(hopfield.lagrangian, x_h)
    w_s = hopfield.symmetric_weights if coupling.needs_hopfield_weights else None
    v, u = coupling.drives(g, x, w_s)
    dx_h = hopfield.weights_times(g) - x_h + hopfield.bias + v / kappa_h
    drive = kuramoto.coupling.drive(x) + u / kappa_k
    if kuramoto.field is not None:
        drive = drive + kuramoto.field
    dx = project_tangent(x, drive)
    if kuramoto.omega is not None:
        dx = dx + _omega_times(kuramoto.omega, x)
    return dx_h, dx


def coupled_energy(
    y: tuple[Float[Array, " n"], Float[Array, "n d"]],
    hopfield: AbstractHopfield,
    kuramoto: Kuramoto,
    coupling: AbstractHopfieldKuramotoCoupling,
    kappa_h: float | Float[Array, ""] = 1.0,
    kappa_k: float | Float[Array, ""] = 1.0,
) -> Scalar:
    r"""$E = \kappa_K E_K(X) + \kappa_H E_H(x^H) - \sum_{(i,j)} c_{ij}
    (x_i\cdot x_j) g_i g_j$.

    A Lyapunov function of [`hopkur.coupled_vector_field`][] for all
    $\kappa_H, \kappa_K > 0$ whenever $E_K$ is one for the oscillator part alone (in
    particular a single shared $\Omega$ or none):
    $\nabla_{x^H} E = -\kappa_H H \dot x^H$ and
    $P\nabla_X E = -\kappa_K (\dot X - \Omega X)$.

    **Arguments:** as [`hopkur.coupled_vector_field`][].

    **Returns:**

    The scalar energy.
    """
    x_h, x = y
    lag, g = jax.value_and_grad(hopfield.lagrangian)(x_h)
    w_s = hopfield.symmetric_weights if coupling.needs_hopfield_weights else None
    e_h = energy_from_drive(x_h, g, lag, hopfield.weights_times(g), hopfield.bias)
    e_k = kuramoto_energy(x, kuramoto.coupling, kuramoto.field)
    return kappa_k * e_k + kappa_h * e_h - coupling.energy(g, x, w_s)


class HopfieldKuramoto(AbstractEnergySystem):
    r"""The coupled Hopfield–Kuramoto associative memory: threshold units whose
    effective weights are corrected by oscillators,
    $W_\text{eff} = W_s + \kappa_H^{-1} C\circ(XX^\top)$.

    State `y = (x_h, x)`: threshold states `(N,)` and oscillators `(N, D)`. See
    [`hopkur.coupled_vector_field`][] and [`hopkur.coupled_energy`][].

    **Lyapunov conditions** (`is_gradient_system`): those of the oscillator part alone
    (see [`hopkur.Kuramoto`][]); the coupling and $\kappa_H, \kappa_K > 0$ never break
    them. As for [`hopkur.Hopfield`][], a lower bound of the energy is not guaranteed.

    !!! warning

        A common $\Omega$, or a global rotation of the initial oscillators, cannot
        change anything the threshold units see ($x_i\cdot x_j$ is rotation invariant):
        as a trainable parameter it is dead. And starting all oscillators at the same
        point is an equilibrium of the oscillator part, where gradients with respect to
        oscillator parameters vanish: break the symmetry deliberately.
    """

    hopfield: AbstractHopfield
    kuramoto: Kuramoto
    coupling: AbstractHopfieldKuramotoCoupling
    kappa_h: Float[Array, ""] = eqx.field(converter=float_array, default=1.0)
    kappa_k: Float[Array, ""] = eqx.field(converter=float_array, default=1.0)

    def __check_init__(self):
        call = "HopfieldKuramoto"
        if not isinstance(self.hopfield, AbstractHopfield):
            raise ValueError(
                f"`{call}(hopfield=...)` must be a hopkur.Hopfield or "
                f"hopkur.HebbianHopfield; got "
                f"{type(self.hopfield).__name__}."
            )
        if not isinstance(self.kuramoto, Kuramoto):
            raise ValueError(
                f"`{call}(kuramoto=...)` must be a hopkur.Kuramoto; got "
                f"{type(self.kuramoto).__name__}."
            )
        if not isinstance(self.coupling, AbstractHopfieldKuramotoCoupling):
            raise ValueError(
                f"`{call}(coupling=...)` must be NetworkCoupling, AdditiveCoupling or "
                f"MultiplicativeCoupling; got {type(self.coupling).__name__}."
            )
        n = self.hopfield.num_units
        n_k = self.kuramoto.num_oscillators
        if n_k is not None and n_k != n:
            raise ValueError(
                f"`{call}`: the Hopfield part has {n} units but the Kuramoto part has "
                f"{n_k} oscillators; they must match."
            )
        self.kuramoto.coupling.check_size(n)
        edges = getattr(self.coupling, "edges", None)
        if edges is not None:
            check_edges(call, edges, n)
        for name in ("kappa_h", "kappa_k"):
            value = getattr(self, name)
            check_shape(call, name, value, ())
            check_finite(call, name, value)
            if is_concrete(value) and not float(value) > 0:
                raise ValueError(
                    f"`{call}({name}=...)` must be positive; got {float(value)}."
                )

    @property
    def num_units(self) -> int:
        """The number of units $N$."""
        return self.hopfield.num_units

    def _hoisted(self, y):
        x = y[1]
        kuramoto = self.kuramoto._hoisted(x)
        coupling = self.coupling._hoisted(x)
        return eqx.tree_at(
            lambda m: (m.kuramoto, m.coupling), self, (kuramoto, coupling)
        )

    def vector_field(
        self,
        t: RealScalarLike,
        y: tuple[Float[Array, " n"], Float[Array, "n d"]],
        args: Args,
    ):
        del t, args
        self._check_state(y)
        return coupled_vector_field(
            y, self.hopfield, self.kuramoto, self.coupling, self.kappa_h, self.kappa_k
        )

    def energy(
        self, y: tuple[Float[Array, " n"], Float[Array, "n d"]], args: Args
    ) -> Scalar:
        del args
        self._check_state(y)
        return coupled_energy(
            y, self.hopfield, self.kuramoto, self.coupling, self.kappa_h, self.kappa_k
        )

    @property
    def is_gradient_system(self) -> Bool[Array, ""]:
        return self.kuramoto.is_gradient_system

    def retract(self, y):
        return y[0], _normalise(y[1])

    @property
    def retract_is_identity(self) -> bool:
        return False

    def effective_weights(self, x: Float[Array, "n d"]) -> Float[Array, "n n"]:
        r"""$W_\text{eff} = W_s + \kappa_H^{-1} C\circ(XX^\top)$, the weights the
        threshold units see for oscillator states `x` (dense $N\times N$: for analysis;
        the dynamics never form it).

        **Arguments:**

        - `x`: oscillator states, shape `(N, D)`.

        **Returns:**

        The `(N, N)` effective weight matrix.
        """
        w_s = self.hopfield.symmetric_weights
        return w_s + self.coupling.coefficients(w_s) * (x @ x.T) / self.kappa_h

    def _check_state(self, y):
        if not isinstance(y, tuple | list) or len(y) != 2:
            raise ValueError(
                "`HopfieldKuramoto` needs a state `(x_h, x)`: threshold states (N,) "
                "and oscillators (N, D)."
            )
        check_shape("HopfieldKuramoto.vector_field", "x_h", y[0], (self.num_units,))
        _check_state(
            "HopfieldKuramoto.vector_field", y[1], self.num_units, self.kuramoto.dim
        )
