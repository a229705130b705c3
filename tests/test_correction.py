"""hopkur.experiments.OscillatorCorrection (formerly LowRankOscillatorCorrection):
effective weights, frozen network, gradients; the deprecated aliases; the core imports
no application dependency."""

import os
import subprocess
import sys

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hopkur
from hopkur.experiments import ContextEncoder, OscillatorCorrection

from .helpers import constant_steps


N, D, P = 12, 3, 5


def _hopfield(seed=0):
    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.standard_normal((N, N)) / np.sqrt(N))
    b = jnp.asarray(0.1 * rng.standard_normal(N))
    return hopkur.Hopfield(w, b, hopkur.lagrangian_tanh)


def _x_h(seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(N))


def _final_units(correction, y0):
    sol = hopkur.simulate(
        correction,
        y0,
        t1=1.0,
        stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-9),
    )
    assert sol.ys is not None
    return sol.ys[0][-1]


@eqx.filter_jit
def _loss_and_grad(correction, x_h, context):
    def loss(c):
        return jnp.sum(_final_units(c, c.initial_state(x_h, context))[-3:] ** 2)

    return eqx.filter_value_and_grad(loss)(correction)


def test_effective_weights_additive_all_to_all(getkey):
    hop = _hopfield()
    c = OscillatorCorrection(hop, D, alpha=0.7, kappa_h=2.0, key=getkey())
    x = c.initial_oscillators()
    w_s = 0.5 * (hop.weights + hop.weights.T)
    expected = w_s + (0.7 / 2.0) * (x @ x.T - jnp.eye(N))
    assert c.is_low_rank
    np.testing.assert_allclose(c.effective_weights(), expected, rtol=1e-12, atol=1e-12)
    # The correction has rank <= D.
    assert np.linalg.matrix_rank(np.asarray(expected - w_s + 0.35 * jnp.eye(N))) <= D


@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
def test_effective_weights_sparse_and_multiplicative(mode, getkey):
    hop = _hopfield()
    edges = np.asarray(hopkur.small_world_edges(getkey(), N, 4, 0.2))
    c = OscillatorCorrection(
        hop, D, mode=mode, edges=edges, alpha=0.3, kappa_h=0.5, key=getkey()
    )
    x = np.asarray(c.initial_oscillators())
    w_s = 0.5 * (np.asarray(hop.weights) + np.asarray(hop.weights).T)
    m = np.zeros((N, N))
    m[edges[:, 0], edges[:, 1]] = m[edges[:, 1], edges[:, 0]] = 1.0
    coef = 0.3 * m * (w_s if mode == "multiplicative" else 1.0)
    expected = w_s + coef * (x @ x.T) / 0.5
    assert not c.is_low_rank
    np.testing.assert_allclose(c.effective_weights(), expected, rtol=1e-12, atol=1e-12)


def test_threshold_dynamics_use_effective_weights(getkey):
    hop = _hopfield()
    c = OscillatorCorrection(hop, D, alpha=0.4, kappa_h=1.5, key=getkey())
    y = c.initial_state(_x_h())
    dx_h, _ = c.vector_field(0.0, y, None)
    g = jnp.tanh(y[0])
    expected = c.effective_weights() @ g - y[0] + hop.bias
    np.testing.assert_allclose(dx_h, expected, rtol=1e-12, atol=1e-12)


def test_parameter_count(getkey):
    c = OscillatorCorrection(_hopfield(), D, key=getkey())
    # initial oscillators, alpha and the mean-field coupling strength
    assert c.num_parameters == N * D + 2
    assert c.num_full_update_parameters == N * N
    encoder = ContextEncoder(P, N, D, rank=2, key=getkey())
    c = OscillatorCorrection(_hopfield(), D, encoder=encoder, key=getkey())
    assert c.num_parameters == N * D + 2 + (2 * P + 2 + N * D * 2)


def _with_encoder(key, alpha=0.2):
    ekey, ckey = jax.random.split(key)
    encoder = ContextEncoder(P, N, D, rank=2, key=ekey)
    return OscillatorCorrection(_hopfield(), D, alpha=alpha, encoder=encoder, key=ckey)


_CONTEXT = jnp.asarray(np.random.default_rng(3).uniform(size=P))


def test_gradients_at_initialisation_and_synchronised_start(getkey):
    c = _with_encoder(getkey())
    x_h = _x_h()
    _, grads = _loss_and_grad(c, x_h, _CONTEXT)
    # The frozen network gets no gradient; the oscillator side does.
    for leaf in jax.tree_util.tree_leaves(eqx.filter(grads.hopfield, eqx.is_array)):
        assert np.all(np.asarray(leaf) == 0)
    assert float(jnp.linalg.norm(grads.oscillators)) > 1e-3
    assert float(jnp.linalg.norm(grads.encoder.up)) > 1e-3  # pyright: ignore
    assert abs(float(grads.alpha)) > 1e-3

    # All oscillators at one point: an equilibrium where those gradients vanish.
    sync = eqx.tree_at(
        lambda m: (m.oscillators, m.encoder.up),  # pyright: ignore
        c,
        (jnp.tile(c.oscillators[:1], (N, 1)), jnp.zeros_like(c.encoder.up)),  # pyright: ignore
    )
    start = np.asarray(sync.initial_oscillators(_CONTEXT))
    assert np.allclose(start, start[:1])
    _, grads = _loss_and_grad(sync, x_h, _CONTEXT)
    assert float(jnp.linalg.norm(grads.oscillators)) < 1e-9


def test_frozen_network_not_updated_by_training(getkey):
    c = _with_encoder(getkey())
    x_h = _x_h()
    # Lion has weight decay: without the filter it would move every parameter.
    optim = optax.lion(1e-2, weight_decay=0.1)
    params, static = eqx.partition(c, c.trainable_filter())
    state = optim.init(params)
    for _ in range(3):
        _, grads = _loss_and_grad(eqx.combine(params, static), x_h, _CONTEXT)
        g_params, _ = eqx.partition(grads, c.trainable_filter())
        updates, state = optim.update(g_params, state, params)
        params = eqx.apply_updates(params, updates)
    trained = eqx.combine(params, static)
    assert bool(eqx.tree_equal(trained.hopfield, c.hopfield))
    np.testing.assert_array_equal(trained.hopfield.weights, c.hopfield.weights)
    assert not np.allclose(trained.oscillators, c.oscillators)
    assert not np.allclose(trained.encoder.up, c.encoder.up)  # pyright: ignore
    assert float(trained.alpha) != float(c.alpha)


def test_context_changes_oscillators(getkey):
    encoder = ContextEncoder(P, N, D, rank=3, key=getkey())
    c = OscillatorCorrection(_hopfield(), D, encoder=encoder, key=getkey())
    rng = np.random.default_rng(0)
    a = c.initial_oscillators(jnp.asarray(rng.uniform(size=P)))
    b = c.initial_oscillators(jnp.asarray(rng.uniform(size=P)))
    np.testing.assert_allclose(jnp.linalg.norm(a, axis=-1), 1.0, rtol=1e-12)
    assert not np.allclose(a, b)
    w_a = c.effective_weights(context=jnp.asarray(rng.uniform(size=P)))
    assert w_a.shape == (N, N)


def test_shared_omega_is_not_trained(getkey):
    omega = jnp.asarray(np.random.default_rng(0).standard_normal((D, D)))
    kuramoto = hopkur.Kuramoto(hopkur.MeanFieldCoupling(jnp.asarray(0.5)), omega=omega)
    c = OscillatorCorrection(_hopfield(), D, kuramoto=kuramoto, key=getkey())
    spec = c.trainable_filter()
    assert spec.kuramoto.omega is False
    assert spec.kuramoto.coupling.strength is True
    assert spec.oscillators is True and spec.alpha is True
    assert all(leaf is False for leaf in jax.tree_util.tree_leaves(spec.hopfield))


def test_energy_is_lyapunov(getkey):
    c = OscillatorCorrection(
        _hopfield(),
        D,
        kuramoto=hopkur.Kuramoto(hopkur.MeanFieldCoupling(jnp.asarray(0.3))),
        alpha=0.5,
        key=getkey(),
    )
    assert bool(c.is_gradient_system)
    rates = [c.energy_rate(0.0, c.initial_state(_x_h(seed)), None) for seed in range(3)]
    assert max(float(r) for r in rates) <= 1e-12


def test_errors(getkey):
    hop = _hopfield()
    with pytest.raises(ValueError, match="dim"):
        OscillatorCorrection(hop, 1, key=getkey())
    with pytest.raises((ValueError, TypeError), match="mode"):
        OscillatorCorrection(hop, D, mode="sideways", key=getkey())  # pyright: ignore
    with pytest.raises((ValueError, TypeError), match="hopfield"):
        OscillatorCorrection("W", D, key=getkey())  # pyright: ignore
    with pytest.raises((ValueError, TypeError)):
        OscillatorCorrection(
            hop,
            D,
            kuramoto=hopkur.Kuramoto(hopkur.DenseCoupling(jnp.eye(N + 1))),
            key=getkey(),
        )
    c = OscillatorCorrection(hop, D, key=getkey())
    with pytest.raises(ValueError, match="encoder"):
        c.initial_oscillators(jnp.zeros(P))
    with pytest.raises(ValueError, match="rank"):
        ContextEncoder(P, N, D, rank=0, key=getkey())


# ------------------------------------------------------------------ names and layers


def test_deprecated_aliases(getkey):
    with pytest.warns(
        DeprecationWarning, match="hopkur.experiments.OscillatorCorrection"
    ):
        old = hopkur.LowRankOscillatorCorrection
    assert old is OscillatorCorrection
    with pytest.warns(DeprecationWarning, match="hopkur.experiments.ContextEncoder"):
        assert hopkur.ContextEncoder is ContextEncoder
    with pytest.warns(DeprecationWarning):
        from hopkur import LowRankOscillatorCorrection  # noqa: F401
    # the alias is the class itself (not a subclass): instances are the same type
    c = old(_hopfield(), D, key=getkey())
    assert type(c) is OscillatorCorrection
    with pytest.raises(AttributeError):
        hopkur.NoSuchName  # pyright: ignore


def test_is_low_rank_in_one_configuration_of_four(getkey):
    edges = hopkur.ring_edges(N, 2)
    flags = {
        (mode, graph): OscillatorCorrection(
            _hopfield(), D, mode=mode, edges=edges if graph else None, key=getkey()
        ).is_low_rank
        for mode in ("additive", "multiplicative")
        for graph in (False, True)
    }
    assert flags == {
        ("additive", False): True,
        ("additive", True): False,
        ("multiplicative", False): False,
        ("multiplicative", True): False,
    }


def test_core_imports_no_application_dependency():
    """`import hopkur` loads neither matplotlib, scikit-learn nor tqdm, nor the
    applications layer (experiments, nn, commands)."""
    code = (
        "import sys, hopkur\n"
        "heavy = ('matplotlib', 'sklearn', 'tqdm')\n"
        "apps = ('hopkur.experiments', 'hopkur.nn', 'hopkur.commands', 'hopkur.data')\n"
        "print([m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith(apps)])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert out.stdout.strip() == "[]", out.stdout
    # `hopkur.data`, which the core no longer loads, is still reachable after a bare
    # `import hopkur` (it used to be loaded as a side effect)
    code = "import hopkur\nprint(hopkur.data.hebbian_weights is hopkur.hebbian_weights)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert out.stdout.strip() == "True", out.stdout


# ------------------------------------------------------- the research code's start


@pytest.mark.parametrize(
    "mode", ["additive", pytest.param("multiplicative", marks=pytest.mark.slow)]
)
def test_non_associative_edit_avoids_the_common_point_start(mode, getkey):
    """The research code's non-associative edit starts every oscillator at e_1. There
    XXᵀ is all ones and every oscillator force is radial (P_x x_j = 0), so the
    oscillators stay put: only α moves the readout, and the initial oscillators and the
    oscillator couplings get zero gradients. hopkur's distinct random start gives all
    three a gradient."""
    seed = int(jax.random.randint(getkey(), (), 0, 2**30))
    rng = np.random.default_rng(seed)
    edges = np.asarray(hopkur.ring_edges(N, 2))
    couplings = jnp.asarray(rng.standard_normal(edges.shape[0]))
    kuramoto = hopkur.Kuramoto(
        hopkur.EdgeCoupling(edges, hopkur.LinearInteraction(couplings), N, "segment")
    )
    c = OscillatorCorrection(
        _hopfield(seed), D, mode=mode, kuramoto=kuramoto, alpha=0.5, key=getkey()
    )
    x_h = _x_h(seed + 1)

    @eqx.filter_jit
    @eqx.filter_grad
    def grad(correction):
        sol = hopkur.simulate(
            correction, correction.initial_state(x_h), **constant_steps(1.0, 0.05)
        )
        assert sol.ys is not None
        return jnp.sum(sol.ys[0][-1, -3:] ** 2)

    def norms(correction):
        g = grad(correction)
        return (
            float(jnp.linalg.norm(g.oscillators)),
            float(jnp.linalg.norm(g.kuramoto.coupling.interaction.k)),
            abs(float(g.alpha)),
        )

    oscillators, coupling, alpha = norms(c)
    assert oscillators > 1e-6 and coupling > 1e-6 and alpha > 1e-6

    common = jnp.zeros_like(c.oscillators).at[:, 0].set(1.0)
    oscillators, coupling, alpha = norms(
        eqx.tree_at(lambda m: m.oscillators, c, common)
    )
    assert oscillators < 1e-10 and coupling < 1e-10
    assert alpha > 1e-6


def test_image_context(getkey):
    """`ImageContext`: the first P oscillators are the encoded context image, the others
    the (normalised) trained rows; no parameters, and the overwritten rows are not
    counted as trained."""
    from hopkur.data import encode_oscillators
    from hopkur.experiments import ImageContext

    c = OscillatorCorrection(_hopfield(), D, encoder=ImageContext(P), key=getkey())
    rng = np.random.default_rng(int(jax.random.randint(getkey(), (), 0, 2**30)))
    a, b = (jnp.asarray(rng.uniform(size=P)) for _ in range(2))
    x = c.initial_oscillators(a)
    np.testing.assert_allclose(x[:P], encode_oscillators(a, P, D), rtol=1e-12)
    np.testing.assert_allclose(x[P:], c.oscillators[P:], rtol=1e-12)
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1.0, rtol=1e-12)
    y = c.initial_oscillators(b)
    assert not np.allclose(x[:P], y[:P]) and np.array_equal(x[P:], y[P:])
    assert c.num_parameters == (N - P) * D + 2
    with pytest.raises(ValueError, match="context"):
        c.initial_oscillators(jnp.zeros(P + 1))
    with pytest.raises(ValueError, match="num_pixels"):
        OscillatorCorrection(_hopfield(), D, encoder=ImageContext(N), key=getkey())
