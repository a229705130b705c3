import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import hopkur.nn as nn


def _linear_layer(key, n_osc, dim, *, symmetric, omega, gamma, steps=10):
    ckey, lkey = jr.split(key)
    size = n_osc * dim
    coupling = nn.LinearCoupling(size, symmetric=symmetric, key=ckey)
    return nn.KuramotoLayer(
        coupling, size, dim, steps=steps, gamma=gamma, omega=omega, key=lkey
    )


def _group_norms(x, dim):
    return np.linalg.norm(np.asarray(x).reshape(*x.shape[:-1], -1, dim), axis=-1)


@pytest.mark.parametrize("omega", ["shared", "group"])
def test_norms_preserved(omega, getkey):
    layer = _linear_layer(getkey(), 6, 3, symmetric=False, omega=omega, gamma=1.0)
    x0 = jnp.asarray(np.random.default_rng(0).normal(size=(18,)))
    c = jnp.asarray(np.random.default_rng(1).normal(size=(18,)))
    result = eqx.filter_jit(lambda layer, x, c: layer(x, c, return_all=True))(
        layer, x0, c
    )
    assert result.xs is not None and result.xs.shape == (11, 18)
    assert result.energies.shape == (11,)
    np.testing.assert_allclose(_group_norms(result.xs, 3), 1.0, atol=1e-12)
    np.testing.assert_allclose(result.xs[-1], result.x)


def test_energy_nonincreasing_symmetric(getkey):
    layer = _linear_layer(
        getkey(), 8, 4, symmetric=True, omega="none", gamma=0.02, steps=200
    )
    rng = np.random.default_rng(2)
    x0 = jnp.asarray(rng.normal(size=(32,)))
    c = jnp.asarray(rng.normal(size=(32,)))
    energies = eqx.filter_jit(lambda layer, x, c: layer(x, c).energies)(layer, x0, c)
    diffs = np.diff(np.asarray(energies))
    assert np.all(diffs <= 1e-12), diffs.max()
    assert energies[-1] < energies[0] - 1e-3  # it actually moves


def test_energy_matches_formula(getkey):
    layer = _linear_layer(getkey(), 4, 2, symmetric=True, omega="none", gamma=0.1)
    rng = np.random.default_rng(3)
    x = nn.normalise_groups(jnp.asarray(rng.normal(size=(8,))), 2)
    c = jnp.asarray(rng.normal(size=(8,)))
    j = np.asarray(layer.coupling.matrix)
    xn, cn = np.asarray(x), np.asarray(c)
    expected = -0.5 * xn @ j @ xn - cn @ xn
    np.testing.assert_allclose(layer.energy(x, c), expected, rtol=1e-12)
    assert layer.coupling.is_symmetric()
    np.testing.assert_allclose(j, j.T)


def test_classical_kuramoto_step(getkey):
    # n = 2, scalar coupling J_ij = K_ij I_2, per-oscillator frequencies, c = 0.
    rng = np.random.default_rng(4)
    num, gamma = 5, 0.05
    k = rng.normal(size=(num, num))
    w = rng.normal(size=num)
    theta = rng.uniform(-np.pi, np.pi, size=num)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    layer = _linear_layer(getkey(), num, 2, symmetric=False, omega="group", gamma=gamma)
    layer = eqx.tree_at(
        lambda l: l.coupling.weight, layer, jnp.asarray(np.kron(k, np.eye(2)))
    )
    layer = eqx.tree_at(
        lambda l: l.raw_omega, layer, jnp.asarray(w[:, None, None] * rot)
    )
    x = jnp.asarray(np.stack([np.cos(theta), np.sin(theta)], -1).reshape(-1))
    step = eqx.filter_jit(lambda layer, x: layer.step(x, jnp.zeros_like(x)))
    new = np.asarray(step(layer, x)).reshape(num, 2)
    new_theta = np.arctan2(new[:, 1], new[:, 0])
    rate = w + np.sum(k * np.sin(theta[None, :] - theta[:, None]), axis=1)
    # Projected step then normalisation: exactly theta + arctan(gamma * rate) ...
    exact = theta + np.arctan(gamma * rate)
    wrap = lambda a: (a + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(wrap(new_theta - exact), 0.0, atol=1e-12)
    # ... which is the classical Euler step up to O(gamma^3).
    euler = theta + gamma * rate
    err = np.abs(wrap(new_theta - euler))
    assert np.all(err <= (gamma * np.abs(rate)) ** 3 / 3 + 1e-12)


def test_learnable_gamma(getkey):
    rng = np.random.default_rng(5)
    x0 = jnp.asarray(rng.normal(size=(12,)))
    c = jnp.asarray(rng.normal(size=(12,)))

    def loss(layer):
        return jnp.sum(layer(x0, c, steps=3).x * c)

    for learn in (True, False):
        ckey, lkey = jr.split(getkey())
        coupling = nn.LinearCoupling(12, key=ckey)
        layer = nn.KuramotoLayer(
            coupling, 12, 4, gamma=0.3, learn_gamma=learn, key=lkey
        )
        np.testing.assert_allclose(layer.gamma, 0.3, rtol=1e-12)
        # No weakly typed leaf: an optimiser update must not change the types (which
        # would recompile a jitted training step).
        leaves = jax.tree.leaves(eqx.filter(layer, eqx.is_array))
        assert not any(jax.typeof(leaf).weak_type for leaf in leaves)
        grad = eqx.filter_jit(eqx.filter_grad(loss))(layer)
        assert (abs(float(grad.raw_gamma)) > 0) == learn


def test_group_norm_stimulus(getkey):
    ckey, lkey = jr.split(getkey())
    coupling = nn.ConvCoupling(8, 3, key=ckey)
    layer = nn.KuramotoLayer(coupling, 8, 4, norm="group", key=lkey)
    c = jnp.asarray(np.random.default_rng(6).normal(2.0, 3.0, size=(5, 5, 8)))
    out = np.asarray(layer.normalise_stimulus(c)).reshape(5, 5, 2, 4)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 3)), 0.0, atol=1e-10)
    np.testing.assert_allclose(out.var(axis=(0, 1, 3)), 1.0, atol=1e-3)


def test_conv_coupling_matches_direct(getkey):
    conv = nn.ConvCoupling(4, 3, key=getkey())
    x = np.random.default_rng(7).normal(size=(5, 6, 4))
    out = np.asarray(conv(jnp.asarray(x)))
    w = np.asarray(conv.weight)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    i, j = 2, 3
    expected = np.einsum("oikl,kli->o", w, padded[i : i + 3, j : j + 3])
    np.testing.assert_allclose(out[i, j], expected, rtol=1e-10)


def test_attention_positions(getkey):
    att = nn.AttentionCoupling(8, 6, 2, key=getkey())
    x = jnp.asarray(np.random.default_rng(8).normal(size=(6, 8)))
    perm = np.array([3, 0, 5, 1, 4, 2])
    # Without positions, attention is permutation-equivariant: it cannot tell
    # positions apart; the learned positional embedding breaks this.
    no_pos = eqx.tree_at(lambda a: a.position, att, jnp.zeros_like(att.position))
    np.testing.assert_allclose(no_pos(x[perm]), no_pos(x)[perm], atol=1e-12)
    assert not np.allclose(att(x[perm]), att(x)[perm], atol=1e-6)
    mask = np.eye(6, dtype=bool)
    masked = nn.AttentionCoupling(8, 6, 2, mask=mask, key=getkey())
    # Attending only to itself, each token's output depends on itself only.
    y = np.asarray(x).copy()
    y[0] += 1.0
    np.testing.assert_allclose(masked(jnp.asarray(y))[1:], masked(x)[1:], atol=1e-12)


def test_relational_matches_sudoku_coupling(getkey):
    rel = nn.RelationalCoupling(nn.sudoku_relations(), 8, symmetric=False, key=getkey())
    fast = nn.SudokuCoupling(8, key=getkey())
    fast = eqx.tree_at(lambda f: f.weight, fast, rel.weight)
    x = jnp.asarray(np.random.default_rng(9).normal(size=(81, 8)))
    np.testing.assert_allclose(fast(x), rel(x), atol=1e-12)
    peers = nn.sudoku_peers()
    assert peers.sum(axis=1).tolist() == [21] * 81
    sym = nn.RelationalCoupling(nn.sudoku_relations(), 4, symmetric=True, key=getkey())
    assert sym.is_symmetric() and not rel.is_symmetric()


def test_readout_formula(getkey):
    readout = nn.Readout(8, 3, 2, key=getkey())
    readout = eqx.tree_at(lambda r: r.bias, readout, jnp.asarray([0.1, -0.2, 0.3]))
    x = np.random.default_rng(10).normal(size=(5, 8))
    m = np.asarray(readout(jnp.asarray(x)))
    u = np.asarray(readout.weight).reshape(3, 2, 8)
    expected = np.linalg.norm(np.einsum("kac,tc->tka", u, x), axis=-1) + [
        0.1,
        -0.2,
        0.3,
    ]
    np.testing.assert_allclose(m, expected, rtol=1e-6)


def _conv_block(cin, cout, key):
    k1, k2, k3, k4 = jr.split(key, 4)
    layer = nn.KuramotoLayer(
        nn.ConvCoupling(cin, 3, key=k1), cin, 4, steps=2, norm="group", key=k2
    )
    return nn.AKOrNBlock(layer, nn.Readout(cin, 6, 4, key=k3), cout, key=k4)


def test_akorn_stack_tokens(getkey):
    k1, k2, k3, k4 = jr.split(getkey(), 4)
    layer = nn.KuramotoLayer(
        nn.AttentionCoupling(8, 10, 2, key=k1), 8, 4, steps=2, key=k2
    )
    block = nn.AKOrNBlock(layer, nn.Readout(8, 5, 4, key=k3), 8, key=k4)
    tokens = jnp.asarray(np.random.default_rng(12).normal(size=(10, 8)))
    run = eqx.filter_jit(lambda net, c, key: net(c, key=key))
    m, energies = run(nn.AKOrN([block, block]), tokens, getkey())
    assert m.shape == (10, 5) and len(energies) == 2
    assert all(e.shape == (3,) and np.all(np.isfinite(e)) for e in energies)
    with pytest.raises(ValueError, match="produces 12 channels"):
        nn.AKOrN([_conv_block(8, 12, getkey()), _conv_block(8, 8, getkey())])


@pytest.mark.slow
def test_akorn_stack_images(getkey):
    net = nn.AKOrN([_conv_block(8, 12, getkey()), _conv_block(12, 8, getkey())])
    c = jnp.asarray(np.random.default_rng(11).normal(size=(6, 6, 8)))
    m, energies = eqx.filter_jit(lambda net, c, key: net(c, key=key))(net, c, getkey())
    assert m.shape == (6, 6, 6) and len(energies) == 2
    assert all(e.shape == (3,) and np.all(np.isfinite(e)) for e in energies)


def test_errors(getkey):
    with pytest.raises(ValueError, match="dividing `channels`"):
        nn.KuramotoLayer(nn.LinearCoupling(6, key=getkey()), 6, 4, key=getkey())
    # jaxtyping's runtime checks may reject the bad literal before the ValueError.
    with pytest.raises((ValueError, TypeError), match="omega"):
        nn.KuramotoLayer(
            nn.LinearCoupling(8, key=getkey()), 8, 4, omega="bad", key=getkey()
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        nn.ConvCoupling(4, 2, key=getkey())
    layer = _linear_layer(getkey(), 2, 4, symmetric=False, omega="none", gamma=1.0)
    with pytest.raises((ValueError, TypeError)):
        layer(jnp.zeros(8), jnp.zeros(4))


def test_vmap_matches_loop(getkey):
    layer = _linear_layer(getkey(), 3, 4, symmetric=True, omega="shared", gamma=0.5)
    rng = np.random.default_rng(13)
    xs = jnp.asarray(rng.normal(size=(3, 12)))
    cs = jnp.asarray(rng.normal(size=(3, 12)))
    batched = jax.vmap(lambda x, c: layer(x, c).x)(xs, cs)
    for i in range(3):
        np.testing.assert_allclose(batched[i], layer(xs[i], cs[i]).x, atol=1e-12)
