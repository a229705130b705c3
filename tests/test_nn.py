import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import hopkur
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
    diffs = np.diff(np.asarray(energies, dtype=np.float64))
    assert np.all(diffs <= 1e-12), diffs.max()
    assert energies[-1] < energies[0] - 1e-3  # it actually moves


def test_energy_matches_formula(getkey):
    layer = _linear_layer(getkey(), 4, 2, symmetric=True, omega="none", gamma=0.1)
    rng = np.random.default_rng(3)
    x = nn.normalise_groups(jnp.asarray(rng.normal(size=(8,))), 2)
    c = jnp.asarray(rng.normal(size=(8,)))
    assert isinstance(layer.coupling, nn.LinearCoupling)
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
    coupling = hopkur.ConvCoupling(8, 3, key=ckey)
    layer = nn.KuramotoLayer(coupling, 8, 4, norm="group", key=lkey)
    c = jnp.asarray(np.random.default_rng(6).normal(2.0, 3.0, size=(5, 5, 8)))
    out = np.asarray(layer.normalise_stimulus(c)).reshape(5, 5, 2, 4)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 3)), 0.0, atol=1e-10)
    np.testing.assert_allclose(out.var(axis=(0, 1, 3)), 1.0, atol=1e-3)


def test_conv_coupling_matches_direct(getkey):
    conv = hopkur.ConvCoupling(4, 3, key=getkey())
    x = np.random.default_rng(7).normal(size=(5, 6, 4))
    out = np.asarray(conv(jnp.asarray(x)))
    w = np.asarray(conv.weight)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    i, j = 2, 3
    expected = np.einsum("oikl,kli->o", w, padded[i : i + 3, j : j + 3])
    np.testing.assert_allclose(out[i, j], expected, rtol=1e-10)


def test_attention_positions(getkey):
    att = hopkur.AttentionCoupling(8, 6, 2, key=getkey())
    x = jnp.asarray(np.random.default_rng(8).normal(size=(6, 8)))
    perm = np.array([3, 0, 5, 1, 4, 2])
    # Without positions, attention is permutation-equivariant: it cannot tell
    # positions apart; the learned positional embedding breaks this.
    no_pos = eqx.tree_at(lambda a: a.position, att, jnp.zeros_like(att.position))
    np.testing.assert_allclose(no_pos(x[perm]), no_pos(x)[perm], atol=1e-12)
    assert not np.allclose(att(x[perm]), att(x)[perm], atol=1e-6)
    mask = np.eye(6, dtype=bool)
    masked = hopkur.AttentionCoupling(8, 6, 2, mask=mask, key=getkey())
    # Attending only to itself, each token's output depends on itself only.
    y = np.asarray(x).copy()
    y[0] += 1.0
    np.testing.assert_allclose(masked(jnp.asarray(y))[1:], masked(x)[1:], atol=1e-12)


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
        hopkur.ConvCoupling(cin, 3, key=k1), cin, 4, steps=2, norm="group", key=k2
    )
    return nn.AKOrNBlock(layer, nn.Readout(cin, 6, 4, key=k3), cout, key=k4)


def test_akorn_stack_tokens(getkey):
    k1, k2, k3, k4 = jr.split(getkey(), 4)
    layer = nn.KuramotoLayer(
        hopkur.AttentionCoupling(8, 10, 2, key=k1), 8, 4, steps=2, key=k2
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
            nn.LinearCoupling(8, key=getkey()),
            8,
            4,
            omega="bad",  # pyright: ignore[reportArgumentType]  (the bad input)
            key=getkey(),
        )
    with pytest.raises(ValueError, match="odd"):
        hopkur.ConvCoupling(4, 2, key=getkey())
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


# ------------------------------------------------ the layer is the core's AKOrN step


def _omega_per_oscillator(layer, spatial):
    # The layer's per-group frequencies, repeated over the positions: (N, n, n).
    n = layer.dim
    omega = np.asarray(layer.omega)
    shape = (*spatial, layer.channels // n, n, n)
    return jnp.asarray(np.broadcast_to(omega, shape).reshape(-1, n, n))


def _blocks_of(linear_map, shape, n):
    # The D x D blocks J_ij of a linear map on states of `shape`, by differentiation:
    # an independent (dense) representation of the coupling.
    size = int(np.prod(shape))
    matrix = jax.jacfwd(lambda v: linear_map(v.reshape(shape)).reshape(-1))(
        jnp.zeros(size)
    )
    m = size // n
    return jnp.asarray(np.asarray(matrix).reshape(m, n, m, n).transpose(0, 2, 1, 3))


def _tie_case(kind, key):
    ckey, lkey = jr.split(key)
    if kind == "dense":
        spatial, channels = (3,), 8
        coupling = nn.LinearCoupling(24, key=ckey)
    elif kind == "conv":
        spatial, channels = (4, 5), 8
        coupling = hopkur.ConvCoupling(8, 3, key=ckey)
    elif kind == "relational":
        spatial, channels = (12,), 4
        rel = _ring_relations(12)
        coupling = nn.RelationalCoupling(rel, 4, key=ckey)
    else:
        spatial, channels = (6,), 8
        mask = np.eye(6, dtype=bool) | (np.random.default_rng(0).random((6, 6)) < 0.5)
        coupling = hopkur.AttentionCoupling(8, 6, 2, mask=mask, key=ckey)
    layer = nn.KuramotoLayer(
        coupling, channels, 4, steps=6, gamma=0.5, omega="group", norm="group", key=lkey
    )
    return layer, (*spatial, channels)


def _ring_relations(n):
    # A small relation structure: self, and the neighbours on a ring of n tokens.
    eye = np.eye(n, dtype=bool)
    return np.stack([eye, np.roll(eye, 1, axis=1) | np.roll(eye, -1, axis=1)])


@pytest.mark.parametrize("kind", ["dense", "conv", "attention", "relational"])
def test_layer_is_akorn_steps_on_the_core_model(kind, getkey):
    layer, shape = _tie_case(kind, getkey())
    rng = np.random.default_rng(14)
    x0 = jnp.asarray(rng.normal(size=shape))
    c = jnp.asarray(rng.normal(size=shape))
    n, spatial = layer.dim, shape[:-1]
    result = eqx.filter_jit(lambda layer, x, c: layer(x, c, return_all=True))(
        layer, x0, c
    )
    # The same model, built here from the core's public classes.
    if kind == "attention":
        oscillators = hopkur.GroupedCoupling(layer.coupling, shape, n)
    else:
        # Linear couplings: an independent dense block representation.
        oscillators = hopkur.BlockCoupling(_blocks_of(layer.coupling, shape, n))
    model = hopkur.Kuramoto(
        oscillators,
        field=layer.normalise_stimulus(c).reshape(-1, n),
        omega=_omega_per_oscillator(layer, spatial),
    )
    run = hopkur.akorn_steps(model, x0.reshape(-1, n), steps=6, gamma=layer.gamma)
    assert result.xs is not None
    np.testing.assert_allclose(result.xs.reshape(7, -1, n), run.ys, atol=1e-12)
    np.testing.assert_allclose(result.energies, run.energies, rtol=1e-12, atol=1e-12)
    # One step and the energy agree too.
    cn = layer.normalise_stimulus(c)
    step = layer.step(result.xs[2], cn).reshape(-1, n)
    np.testing.assert_allclose(step, run.ys[3], atol=1e-12)
    np.testing.assert_allclose(layer.energy(result.xs[2], cn), run.energies[2])
    # The layer's own core model is that model.
    assert layer.kuramoto(cn).num_oscillators == model.num_oscillators


@pytest.mark.parametrize("seed", range(4))
def test_conv_coupling_equals_lax_convolution(seed):
    # The shifted-matmul implementation is XLA's "same" cross-correlation, also
    # batched (vmap) and differentiated with respect to the kernel.
    key = jax.random.key(seed)
    ck, fk = jax.random.split(key)
    k = (1, 3, 5, 7)[seed]
    channels = 3 + seed
    conv = hopkur.ConvCoupling(channels, k, key=ck)
    f = jax.random.normal(fk, (3, 6 + seed, 5, channels))

    def reference(w, fi):
        pad = k // 2
        out = jax.lax.conv_general_dilated(
            fi.transpose(2, 0, 1)[None], w, (1, 1), ((pad, pad), (pad, pad))
        )
        return out[0].transpose(1, 2, 0)

    ours = jax.vmap(conv)(f)
    np.testing.assert_allclose(
        ours, jax.vmap(lambda fi: reference(conv.weight, fi))(f), atol=1e-12
    )
    g_ours = jax.grad(
        lambda w: jnp.sum(
            jnp.sin(jax.vmap(eqx.tree_at(lambda c: c.weight, conv, w))(f))
        )
    )(conv.weight)
    g_ref = jax.grad(
        lambda w: jnp.sum(jnp.sin(jax.vmap(lambda fi: reference(w, fi))(f)))
    )(conv.weight)
    np.testing.assert_allclose(g_ours, g_ref, atol=1e-10)


def _symmetric_conv(key, channels=8):
    conv = hopkur.ConvCoupling(channels, 3, key=key)
    w = conv.weight
    sym = 0.5 * (w + jnp.flip(jnp.swapaxes(w, 0, 1), axis=(2, 3)))
    return eqx.tree_at(lambda c: c.weight, conv, sym)


def test_conv_coupling_symmetry_and_gradient(getkey):
    conv = hopkur.ConvCoupling(8, 3, key=getkey())
    sym = _symmetric_conv(getkey())
    assert not bool(conv.is_symmetric()) and bool(sym.is_symmetric())
    grouped = hopkur.GroupedCoupling(sym, (4, 5, 8), 4)
    assert grouped.num_oscillators == 40 and grouped.dim == 4
    x = hopkur.random_sphere((40,), 4, key=getkey())
    # Symmetric, also at the borders: the drive is minus the energy's gradient.
    np.testing.assert_allclose(
        grouped.drive(x), -jax.grad(grouped.energy)(x), atol=1e-12
    )
    # Blocks that are multiples of the identity commute with any rotation.
    scalar = eqx.tree_at(
        lambda c: c.weight,
        conv,
        jnp.einsum("ijkl,ab->iajbkl", jnp.ones((2, 2, 3, 3)), jnp.eye(4)).reshape(
            8, 8, 3, 3
        ),
    )
    omega = jnp.asarray(np.random.default_rng(15).normal(size=(4, 4)))
    omega = omega - omega.T
    assert bool(scalar.is_rotation_invariant(omega))
    assert not bool(conv.is_rotation_invariant(omega))


@pytest.mark.parametrize("kind", ["conv", "attention"])
def test_feature_couplings_in_simulate(kind, getkey):
    if kind == "conv":
        coupling, shape = _symmetric_conv(getkey()), (4, 4, 8)
    else:
        coupling, shape = hopkur.AttentionCoupling(8, 5, 2, key=getkey()), (5, 8)
    grouped = hopkur.GroupedCoupling(coupling, shape, 4)
    model = hopkur.Kuramoto(grouped)
    x0 = hopkur.random_sphere((grouped.num_oscillators,), 4, key=getkey())
    ts = jnp.linspace(0.0, 3.0, 13)
    sol = hopkur.simulate(model, x0, t1=3.0, saveat=diffrax.SaveAt(ts=ts))
    assert sol.ys is not None
    np.testing.assert_allclose(np.linalg.norm(sol.ys, axis=-1), 1.0, atol=1e-10)
    assert not np.allclose(sol.ys[-1], x0, atol=1e-3)  # it moves
    energies = jax.vmap(model.energy, in_axes=(0, None))(sol.ys, None)
    if kind == "conv":
        # A fixed symmetric linear coupling: a gradient system, the energy decreases.
        assert bool(model.is_gradient_system)
        assert np.all(np.diff(np.asarray(energies)) <= 1e-8)
    else:
        # Attention is never claimed to be one.
        assert not bool(model.is_gradient_system)


def test_multi_head_attention_matches_a_loop_over_heads():
    rng = np.random.default_rng(16)
    q, k, v = (jnp.asarray(rng.normal(size=(5, 6))) for _ in range(3))
    mask = np.eye(5, dtype=bool) | (rng.random((5, 5)) < 0.5)
    out = hopkur.multi_head_attention(q, k, v, 2, jnp.asarray(mask))
    for h in range(2):
        part = slice(3 * h, 3 * h + 3)
        logits = np.asarray(q[:, part] @ k[:, part].T) / np.sqrt(3.0)
        logits = np.where(mask, logits, -np.inf)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(out[:, part], weights @ np.asarray(v[:, part]))


def test_moved_names_still_import_with_a_warning():
    from hopkur.experiments import sudoku_model

    with pytest.warns(DeprecationWarning, match="hopkur.ConvCoupling"):
        assert nn.ConvCoupling is hopkur.ConvCoupling
    with pytest.warns(DeprecationWarning, match="sudoku_model.SudokuAKOrN"):
        assert nn.SudokuAKOrN is sudoku_model.SudokuAKOrN
    with pytest.raises(AttributeError):
        nn.NoSuchName  # noqa: B018
