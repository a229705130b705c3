"""Shared test helpers: tolerances and a catalogue of systems.

Each catalogue entry is a factory `key -> (system, y)` building a random instance of one
model family at a random size, so that every generic test runs over every family.
"""

import functools as ft
import json
import os
import subprocess
import sys
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import hopkur


DIMS = (2, 3, 4, 8)


def tree_allclose(x, y, *, rtol=1e-8, atol=1e-10):
    return eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol)


class _Rng:
    """Test parameters drawn with NumPy from a JAX key: building a test system then
    compiles nothing (eager JAX random calls at many shapes are slow)."""

    def __init__(self, key):
        data = np.asarray(jax.random.key_data(key)).ravel()
        self.rng = np.random.default_rng([int(v) for v in data])

    def normal(self, *shape):
        return jnp.asarray(self.rng.standard_normal(shape))

    def uniform(self, low, high, *shape):
        return jnp.asarray(self.rng.uniform(low, high, shape))

    def size(self, low=3, high=10):
        # A few sizes only, so that compiled functions are reused across seeds.
        return int(self.rng.choice([low, (low + high) // 2, high - 1]))

    def dim(self):
        return int(self.rng.choice(DIMS))

    def sphere(self, n, d):
        x = self.rng.standard_normal((n, d))
        return jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))

    def edges(self, n, p=0.5):
        """round(p * n (n - 1) / 2) random edges (a fixed count for a given n, so that
        systems built from different keys can be stacked and vmapped)."""
        i, j = np.triu_indices(n, k=1)
        m = max(1, round(p * i.size))
        keep = np.sort(self.rng.choice(i.size, m, replace=False))
        return jnp.asarray(np.stack([i[keep], j[keep]], axis=1), dtype=jnp.int32)


def constant_steps(t1, dt0) -> dict[str, Any]:
    """`simulate`'s arguments for a solve of t1 / dt0 fixed steps, with `max_steps` and
    the checkpoints of the (default) recursive-checkpoint adjoint matched to that
    count. The same solution and gradients as the defaults, whose checkpoint schedule
    is planned for 4096 steps: about a quarter less compile time for a gradient
    through the solve (6-7 s against 8-9 s measured on the 2-core machine). More steps
    than that raise, so the match is checked."""
    steps = round(t1 / dt0)
    return dict(
        t1=t1,
        dt0=dt0,
        stepsize_controller=dfx.ConstantStepSize(),
        max_steps=steps,
        adjoint=dfx.RecursiveCheckpointAdjoint(checkpoints=steps),
    )


def random_edges(key, n, p=0.5):
    """A random undirected graph (each edge once, i < j), at least one edge."""
    return _Rng(key).edges(n, p)


# ---------------------------------------------------------------- Hopfield


def make_hopfield(lagrangian):
    def make(key, n=None, d=None):
        r = _Rng(key)
        n = n or r.size()
        w = r.normal(n, n) / np.sqrt(n)
        model = hopkur.Hopfield(w, 0.3 * r.normal(n), lagrangian)
        return model, 2.0 * r.normal(n)

    make.__name__ = f"hopfield_{getattr(lagrangian, 'func', lagrangian).__name__}"
    return make


def make_layered(key, n=None, d=None):
    r = _Rng(key)
    sizes = [r.size(2, 7) for _ in range(3)] if n is None else [n, n + 1, n - 1]
    weights = [r.normal(sizes[i + 1], sizes[i]) for i in range(2)]
    biases = [0.2 * r.normal(s) for s in sizes]
    lags = (
        hopkur.lagrangian_tanh,
        hopkur.lagrangian_sigmoid,
        hopkur.lagrangian_identity,
    )
    model = hopkur.LayeredHopfield(weights, biases, lags)
    return model, tuple(r.normal(s) for s in sizes)


# ---------------------------------------------------------------- Kuramoto


def make_kuramoto_dense(key, n=None, d=None):
    r = _Rng(key)
    n, d = n or r.size(), d or r.dim()
    model = hopkur.Kuramoto(hopkur.DenseCoupling(r.normal(n, n)), field=r.normal(n, d))
    return model, r.sphere(n, d)


def make_kuramoto_mean_field(key, n=None, d=None):
    r = _Rng(key)
    n, d = n or r.size(), d or r.dim()
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(2.0 * r.normal()))
    return model, r.sphere(n, d)


def _function_potential(s, p):
    return p[0] * jnp.sin(2 * s) + p[1] * s**3


def _interaction(kind, r, e):
    a, b = r.normal(e), r.normal(e)
    if kind == "linear":
        return hopkur.LinearInteraction(a)
    if kind == "relu":
        return hopkur.ReluInteraction(a, b)
    if kind == "tanh":
        return hopkur.TanhInteraction(a, b)
    if kind == "sigmoid":
        return hopkur.SigmoidInteraction(a, b)
    if kind == "mlp":
        key = jr.key(int(r.rng.integers(2**31)))
        return hopkur.MLPInteraction(8, 2, scale=a, key=key, dtype=jnp.float64)
    if kind == "function":
        return hopkur.FunctionInteraction(_function_potential, (a, b))
    raise ValueError(kind)


INTERACTIONS = ("linear", "relu", "tanh", "sigmoid", "mlp", "function")


def make_kuramoto_edges(kind):
    def make(key, n=None, d=None):
        r = _Rng(key)
        n, d = n or r.size(), d or r.dim()
        edges = r.edges(n)
        coupling = hopkur.EdgeCoupling(
            edges, _interaction(kind, r, edges.shape[0]), n=n
        )
        model = hopkur.Kuramoto(coupling, field=r.normal(n, d))
        return model, r.sphere(n, d)

    make.__name__ = f"kuramoto_edges_{kind}"
    return make


def make_kuramoto_blocks(key, n=None, d=None):
    r = _Rng(key)
    n, d = n or r.size(2, 6), d or r.dim()
    j = r.normal(n, n, d, d) / n
    j = 0.5 * (j + jnp.transpose(j, (1, 0, 3, 2)))  # J_ij = J_ji^T
    return hopkur.Kuramoto(hopkur.BlockCoupling(j)), r.sphere(n, d)


def make_kuramoto_rotating(key, n=None, d=None):
    """A shared Omega with a field in its kernel: still a gradient system."""
    r = _Rng(key)
    n, d = n or r.size(), max(3, d or r.dim())
    omega = r.normal(d, d)
    # A rotation that fixes e_1 (zero first row and column), and a field along e_1.
    omega = omega.at[0, :].set(0.0).at[:, 0].set(0.0)
    field = jnp.zeros((n, d)).at[:, 0].set(r.normal(n))
    model = hopkur.Kuramoto(
        hopkur.DenseCoupling(r.normal(n, n)), field=field, omega=omega
    )
    return model, r.sphere(n, d)


def make_kuramoto_per_oscillator_omega(key, n=None, d=None):
    """Distinct Omega_i: not a gradient system."""
    r = _Rng(key)
    n, d = n or r.size(), d or r.dim()
    model = hopkur.Kuramoto(
        hopkur.DenseCoupling(0.3 * r.normal(n, n)), omega=3 * r.normal(n, d, d)
    )
    return model, r.sphere(n, d)


# ---------------------------------------------------------------- coupled


def make_coupled(kind, all_to_all):
    def make(key, n=None, d=None):
        r = _Rng(key)
        n, d = n or r.size(), d or r.dim()
        w = r.normal(n, n) / np.sqrt(n)
        hopfield = hopkur.Hopfield(w, 0.2 * r.normal(n), hopkur.lagrangian_tanh)
        edges = r.edges(n)
        kuramoto = hopkur.Kuramoto(
            hopkur.EdgeCoupling(edges, _interaction("relu", r, edges.shape[0])),
            field=0.5 * r.normal(n, d),
        )
        cedges = None if all_to_all else r.edges(n, 0.6)
        alpha = r.normal()
        if kind == "additive":
            coupling = hopkur.AdditiveCoupling(alpha, cedges)
        elif kind == "multiplicative":
            coupling = hopkur.MultiplicativeCoupling(alpha, cedges)
        else:
            assert cedges is not None
            coupling = hopkur.NetworkCoupling(cedges, r.normal(cedges.shape[0]))
        kh, kk = r.uniform(0.3, 3.0, 2)
        model = hopkur.HopfieldKuramoto(hopfield, kuramoto, coupling, kh, kk)
        return model, (r.normal(n), r.sphere(n, d))

    make.__name__ = f"coupled_{kind}_{'all' if all_to_all else 'edges'}"
    return make


hopfield_systems = tuple(
    make_hopfield(lag)
    for lag in (
        hopkur.lagrangian_identity,
        hopkur.lagrangian_tanh,
        hopkur.lagrangian_sigmoid,
        hopkur.lagrangian_relu,
        ft.partial(hopkur.lagrangian_softmax, beta=2.0),
    )
) + (make_layered,)

kuramoto_systems = (
    make_kuramoto_dense,
    make_kuramoto_mean_field,
    *(make_kuramoto_edges(kind) for kind in INTERACTIONS),
    make_kuramoto_blocks,
    make_kuramoto_rotating,
)

make_kuramoto_edges_relu = kuramoto_systems[3]
make_coupled_additive_all = make_coupled("additive", True)
coupled_systems = (
    make_coupled_additive_all,
    make_coupled("additive", False),
    make_coupled("multiplicative", True),
    make_coupled("multiplicative", False),
    make_coupled("network", False),
)

gradient_systems = hopfield_systems + kuramoto_systems + coupled_systems
non_gradient_systems = (make_kuramoto_per_oscillator_omega,)
all_systems = gradient_systems + non_gradient_systems
oscillator_systems = kuramoto_systems + coupled_systems + non_gradient_systems


def ids(factories):
    return [f.__name__ for f in factories]


def oscillator_part(system, y):
    """The oscillator states of `y`, or None."""
    if isinstance(system, hopkur.Kuramoto):
        return y
    if isinstance(system, hopkur.HopfieldKuramoto):
        return y[1]
    return None


def omega_term(kuramoto, x):
    if kuramoto.omega is None:
        return jnp.zeros_like(x)
    return hopkur._kuramoto._omega_times(kuramoto.omega, x)


def gradient_identity_residual(system, y):
    """The residual of each model's gradient-flow identity (zero when it holds):

    - Hopfield: grad E + H f = 0, H the Hessian of the Lagrangian;
    - Kuramoto: P grad E + (f - Omega x) = 0;
    - coupled: grad_h E + kappa_h H f_h = 0 and
      P grad_X E + kappa_k (f_X - Omega X) = 0.
    """
    f = system.vector_field(0.0, y, None)
    grad = jax.grad(system.energy)(y, None)
    if isinstance(system, hopkur.Hopfield):
        h = jax.hessian(system.lagrangian)(y)
        return grad + h @ f
    if isinstance(system, hopkur.LayeredHopfield):
        return tuple(
            gl + jax.hessian(lag)(yl) @ fl
            for gl, lag, yl, fl in zip(grad, system.lagrangians, y, f)
        )
    if isinstance(system, hopkur.Kuramoto):
        return hopkur.project_tangent(y, grad) + (f - omega_term(system, y))
    if isinstance(system, hopkur.HopfieldKuramoto):
        h = jax.hessian(system.hopfield.lagrangian)(y[0])
        res_h = grad[0] + system.kappa_h * (h @ f[0])
        res_x = hopkur.project_tangent(y[1], grad[1]) + system.kappa_k * (
            f[1] - omega_term(system.kuramoto, y[1])
        )
        return res_h, res_x
    raise NotImplementedError(type(system))


def stack(trees):
    """Stacks systems or states of equal structure along a new leading axis."""
    arrays = [eqx.filter(t, eqx.is_array) for t in trees]
    static = eqx.filter(trees[0], eqx.is_array, inverse=True)
    return eqx.combine(jax.tree.map(lambda *a: jnp.stack(a), *arrays), static)


def family_batch(make_system, seeds, n, d):
    """`len(seeds)` random instances of one family at a fixed size, stacked."""
    built = [make_system(jr.key(seed), n, d) for seed in seeds]
    return stack([b[0] for b in built]), stack([b[1] for b in built])


def run_on_host_devices(script: str, count: int = 4) -> dict:
    """Runs `script` with Python in a child process whose CPU shows `count` host
    devices (the count is fixed when JAX starts, so it cannot change in this one) and
    returns the JSON object its last line of output prints."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
