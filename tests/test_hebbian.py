"""HebbianHopfield: Hebb's rule in factored form, equal to the dense network, and the
all-to-all additive Hopfield–Kuramoto model at scale without an N x N array."""

import functools
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import hopkur
import hopkur.data


SEEDS = 16


def _patterns(key, p, n, signs=True):
    if signs:
        return jnp.where(jr.bernoulli(key, 0.5, (p, n)), 1.0, -1.0)
    return jr.normal(key, (p, n))


def _pair(key, p=5, n=12, lagrangian=hopkur.lagrangian_tanh, signs=True):
    pkey, bkey, skey = jr.split(key, 3)
    xi = _patterns(pkey, p, n, signs)
    bias = 0.1 * jr.normal(bkey, (n,))
    strength = 0.5 + jr.uniform(skey)
    hebb = hopkur.HebbianHopfield(xi, bias, lagrangian, strength)
    dense = hopkur.Hopfield(strength * hopkur.hebbian_weights(xi), bias, lagrangian)
    return hebb, dense


@pytest.mark.parametrize(
    "lagrangian", [hopkur.lagrangian_tanh, hopkur.lagrangian_identity]
)
@pytest.mark.parametrize("signs", [True, False])
def test_equals_dense_hebbian_network(lagrangian, signs):
    @jax.vmap
    def check(key):
        hebb, dense = _pair(key, lagrangian=lagrangian, signs=signs)
        y = 2 * jr.normal(jr.fold_in(key, 1), (hebb.num_units,))
        return (
            jnp.max(
                jnp.abs(
                    hebb.vector_field(0.0, y, None) - dense.vector_field(0.0, y, None)
                )
            ),
            jnp.abs(hebb.energy(y, None) - dense.energy(y, None)),
            jnp.max(jnp.abs(hebb.symmetric_weights - dense.symmetric_weights)),
        )

    errors = check(jr.split(jr.key(0), SEEDS))
    for e in errors:
        assert float(jnp.max(e)) < 1e-11


def test_lyapunov_and_metric_gradient():
    """dE/dt <= 0 and grad E = -H f (H = Hessian of the Lagrangian) at random states."""

    @jax.vmap
    def check(key):
        hebb, _ = _pair(key, p=7, n=20, signs=False)
        y = 3 * jr.normal(jr.fold_in(key, 2), (hebb.num_units,))
        f = hebb.vector_field(0.0, y, None)
        grad = jax.grad(hebb.energy)(y, None)
        hess = jax.hessian(hebb.lagrangian)(y)
        return hebb.energy_rate(0.0, y, None), jnp.max(jnp.abs(grad + hess @ f))

    rates, mismatch = check(jr.split(jr.key(1), SEEDS))
    assert bool(jnp.all(rates <= 1e-12))
    assert float(jnp.max(mismatch)) < 1e-10
    assert bool(
        hopkur.HebbianHopfield(
            jnp.ones((1, 3)), jnp.zeros(3), jnp.sum
        ).is_gradient_system
    )


def test_retrieves_stored_patterns():
    n, p = 200, 10
    xi = _patterns(jr.key(3), p, n)
    model = hopkur.HebbianHopfield(
        xi, jnp.zeros(n), functools.partial(_scaled_tanh, gain=4.0)
    )
    flips = jr.bernoulli(jr.key(4), 0.1, (n,))
    cue = jnp.where(flips, -xi[0], xi[0])
    sol = hopkur.simulate(model, cue, t1=20.0)
    assert sol.ys is not None
    final = jnp.sign(sol.ys[-1])
    assert float(jnp.mean(final == xi[0])) == 1.0


def _scaled_tanh(x, gain):
    return hopkur.lagrangian_tanh(gain * x) / gain


def test_energy_bounded_below():
    n, p = 30, 4
    xi = _patterns(jr.key(5), p, n)
    for strength in (0.5, 3.0, 20.0):
        hebb = hopkur.HebbianHopfield(
            xi, jnp.zeros(n), hopkur.lagrangian_identity, strength
        )
        dense = hopkur.Hopfield(
            strength * hopkur.hebbian_weights(xi),
            jnp.zeros(n),
            hopkur.lagrangian_identity,
        )
        # +-1 patterns: the bound is exact, so the answers agree.
        assert hebb.energy_bounded_below() is dense.energy_bounded_below()
    assert hopkur.HebbianHopfield(
        xi, jnp.zeros(n), hopkur.lagrangian_tanh
    ).energy_bounded_below()


def test_bad_input():
    with pytest.raises((ValueError, TypeError), match="patterns|shape"):
        hopkur.HebbianHopfield(jnp.ones(5), jnp.zeros(5), hopkur.lagrangian_tanh)
    with pytest.raises((ValueError, TypeError), match="bias|shape"):
        hopkur.HebbianHopfield(jnp.ones((2, 5)), jnp.zeros(4), hopkur.lagrangian_tanh)
    # (The test suite's runtime type checks raise TypeError before our ValueError.)
    with pytest.raises((ValueError, TypeError), match="lagrangian"):
        hopkur.HebbianHopfield(jnp.ones((2, 5)), jnp.zeros(5), "tanh")  # pyright: ignore
    with pytest.raises(ValueError, match="finite|NaN|nan"):
        hopkur.HebbianHopfield(
            jnp.full((2, 5), jnp.nan), jnp.zeros(5), hopkur.lagrangian_tanh
        )


# ------------------------------------------------------------------ coupled model


def _coupled(hopfield, coupling, key, d=3):
    n = hopfield.num_units
    kuramoto = hopkur.Kuramoto(hopkur.MeanFieldCoupling(jnp.asarray(0.7)))
    model = hopkur.HopfieldKuramoto(hopfield, kuramoto, coupling, 1.3, 0.8)
    y = (jr.normal(key, (n,)), hopkur.random_sphere((n,), d, key=jr.fold_in(key, 1)))
    return model, y


@pytest.mark.parametrize(
    "coupling",
    [
        hopkur.AdditiveCoupling(0.4),
        hopkur.MultiplicativeCoupling(0.4),
        hopkur.AdditiveCoupling(0.4, hopkur.ring_edges(12, 4)),
        hopkur.NetworkCoupling(hopkur.ring_edges(12, 2), np.linspace(-1.0, 1.0, 12)),
    ],
    ids=["additive", "multiplicative", "additive-graph", "network"],
)
def test_coupled_model_equals_dense_hopfield(coupling):
    for seed in range(4):
        key = jr.key(10 + seed)
        hebb, dense = _pair(key)
        m_hebb, y = _coupled(hebb, coupling, jr.fold_in(key, 3))
        m_dense, _ = _coupled(dense, coupling, jr.fold_in(key, 3))
        fh, fx = m_hebb.vector_field(0.0, y, None)
        gh, gx = m_dense.vector_field(0.0, y, None)
        assert jnp.allclose(fh, gh, atol=1e-11) and jnp.allclose(fx, gx, atol=1e-11)
        assert jnp.allclose(m_hebb.energy(y, None), m_dense.energy(y, None), atol=1e-11)
        assert float(m_hebb.energy_rate(0.0, y, None)) <= 1e-12


def test_additive_coupled_model_forms_no_n_by_n_array():
    """The whole all-to-all additive model with a Hebbian Hopfield part (vector field
    and energy) stays O(N (D + P)): no value of N x N elements at N = 3000."""
    n, p, d = 3000, 8, 4
    hebb = hopkur.HebbianHopfield(
        _patterns(jr.key(0), p, n), jnp.zeros(n), hopkur.lagrangian_tanh
    )
    model, y = _coupled(hebb, hopkur.AdditiveCoupling(0.3), jr.key(1), d)
    for fn in (
        lambda y_: model.vector_field(0.0, y_, None),
        lambda y_: model.energy(y_, None),
    ):
        text = jax.jit(fn).lower(y).as_text()
        shapes = re.findall(r"tensor<([0-9x]+)x(?:f|i|u)", text)
        sizes = [int(np.prod([int(v) for v in shape.split("x")])) for shape in shapes]
        assert sizes and max(sizes) < n * n / 10, max(sizes)


# ------------------------------------------------------------------ non-finite patterns

_NAN_PATTERNS = jnp.array([[1.0, -1.0, jnp.nan, 1.0], [1.0, 1.0, -1.0, 1.0]])


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda p: hopkur.hebbian_weights(p), "hebbian_weights(patterns"),
        (
            lambda p: hopkur.corrupt_patterns(p, 0.25, key=jr.key(0)),
            "corrupt_patterns(patterns",
        ),
        (lambda p: hopkur.pattern_overlaps(p, jnp.ones((1, 4))), "pattern_overlaps(s"),
        (
            lambda p: hopkur.pattern_overlaps(jnp.ones(4), p),
            "pattern_overlaps(patterns",
        ),
        (lambda p: hopkur.data.overlap(p[0], jnp.ones((1, 4))), "overlap(x"),
        (lambda p: hopkur.data.overlap(jnp.ones(4), p), "overlap(patterns"),
        (
            lambda p: hopkur.sign_retrieve(
                hopkur.hebbian_weights(jnp.ones((1, 4))), p, key=jr.key(0)
            ),
            "sign_retrieve(s0",
        ),
    ],
)
def test_non_finite_patterns_are_errors(call, name):
    """Concrete NaN or infinite patterns are a ValueError naming the argument."""
    with pytest.raises(ValueError, match=re.escape(name) + r".*must be finite"):
        call(_NAN_PATTERNS)
    with pytest.raises(ValueError, match="must be finite"):
        call(jnp.where(jnp.isnan(_NAN_PATTERNS), jnp.inf, _NAN_PATTERNS))


def test_non_finite_patterns_are_errors_under_jit():
    def corrupt(p):
        return hopkur.corrupt_patterns(p, 0.25, key=jr.key(0))

    def overlaps(p):
        return hopkur.pattern_overlaps(p, p)

    for jitted in (
        eqx.filter_jit(hopkur.hebbian_weights),
        eqx.filter_jit(corrupt),
        eqx.filter_jit(overlaps),
    ):
        jitted(jnp.ones((2, 4)))  # finite patterns pass
        with pytest.raises(eqx.EquinoxRuntimeError, match="must be finite"):
            jax.block_until_ready(jitted(_NAN_PATTERNS))


def test_corrupt_patterns_rejects_nan_fraction():
    with pytest.raises(ValueError, match="flip_fraction"):
        hopkur.corrupt_patterns(jnp.ones((2, 4)), float("nan"), key=jr.key(0))
    with pytest.raises(eqx.EquinoxRuntimeError, match="flip_fraction"):
        eqx.filter_jit(
            lambda f: hopkur.corrupt_patterns(jnp.ones(4), f, key=jr.key(0))
        )(jnp.array(jnp.nan))


def test_data_reexports_the_core_pattern_maths():
    import hopkur._patterns as core

    assert hopkur.data.hebbian_weights is core.hebbian_weights is hopkur.hebbian_weights
    assert hopkur.data.overlap is core.overlap
    assert hopkur.data.random_binary_patterns is core.random_binary_patterns
