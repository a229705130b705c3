"""Porting the official AKOrN Kuramoto layer (docs/how-to/porting.md, "From the
official AKOrN code"): `hopkur.nn.from_official_akorn` against a NumPy transcription of
the official forward pass (tests/official_akorn.py; PyTorch is not installed here) and
against states recorded from it (tests/data/official_akorn_states.npz, written by
tests/data/make_official_akorn_states.py)."""

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hopkur
import hopkur.nn

from .official_akorn import (
    attention,
    images_to_hopkur,
    klayer_forward,
    random_params,
)


RECORDED = Path(__file__).parent / "data" / "official_akorn_states.npz"
CASES = ("conv_gn", "attn_none", "conv_none_omega", "attn_gn_global_omega")


def _case(name):
    with np.load(RECORDED) as data:
        prefix = name + "/"
        items = {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}
    params = {k: v for k, v in items.items() if "." in k}
    return params, items


@eqx.filter_jit
def _run_batch(layer, x, stim):
    """hopkur's states (B, T + 1, ...), energies (B, T + 1) and overlaps <c', x_t>
    (B, T + 1), c' the normalised stimulus."""

    def one(x, stim):
        result = layer(x, stim, return_all=True)
        assert result.xs is not None
        c_prime = layer.normalise_stimulus(stim)
        axes = tuple(range(1, result.xs.ndim))
        overlap = jnp.sum(c_prime[None] * result.xs, axis=axes)
        return result.xs, result.energies, overlap

    return jax.vmap(one)(x, stim)


def _run_hopkur(layer, shift, x0, c, kind):
    x = jnp.asarray(images_to_hopkur(x0, kind))
    stim = jnp.asarray(images_to_hopkur(c, kind))
    return _run_batch(layer, x, stim + jnp.broadcast_to(shift, stim.shape))


def _check(layer, shift, x0, c, xs, es, kind, rtol=1e-5):
    states, energies, overlap = _run_hopkur(layer, shift, x0, c, kind)
    # The official xs are the states after each update: hopkur's xs[1:].
    np.testing.assert_allclose(
        np.asarray(states[:, 1:]),
        np.moveaxis(images_to_hopkur(xs, kind), 0, 1),
        rtol=rtol,
        atol=1e-7,
    )
    # Logged energies: a zero placeholder, then E'(x_t) = 2 E(x_t) + <c', x_t> of the
    # state each update starts from (t = 0..T-1; the last state's is not logged).
    assert np.all(es[0] == 0.0)
    np.testing.assert_allclose(
        np.asarray(2 * energies[:, :-1] + overlap[:, :-1]),
        es[1:].T,
        rtol=rtol,
        atol=1e-6,
    )


@pytest.mark.parametrize("name", CASES)
def test_recorded_official_states(name):
    params, items = _case(name)
    kind = "conv" if "connectivity.weight" in params else "attn"
    x0, c, xs, es = items["x0"], items["c"], items["xs"], items["es"]
    steps, _, _, height, width = xs.shape
    layer, shift = hopkur.nn.from_official_akorn(
        params,
        n=4,
        gamma=float(items["gamma"]),
        steps=steps,
        heads=int(items["heads"]),
        num_tokens=height * width,
    )
    _check(layer, shift, x0, c, xs, es, kind)
    # The recording is the transcription's output (the script and the reference agree).
    again, es_again = klayer_forward(
        params, x0, c, n=4, steps=steps, gamma=float(items["gamma"]), heads=2
    )
    np.testing.assert_allclose(again, xs, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(es_again, es, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_random_official_layers(seed):
    """Random options and parameters: the port reproduces the official update."""
    rng = np.random.default_rng(seed)
    kind = ("conv", "attn")[seed % 2]
    c_norm = ("gn", "none")[(seed // 2) % 2]
    omega = (None, "pairs", "global")[seed % 3]
    channels, n, heads, size = 8, (4, 4, 2, 4)[seed], 2, 4
    gamma = float(rng.uniform(0.3, 1.5))
    params = random_params(
        rng, channels=channels, n=n, kind=kind, ksize=3, c_norm=c_norm, omega=omega
    )
    x0 = rng.normal(size=(2, channels, size, size))
    c = rng.normal(size=(2, channels, size, size))
    xs, es = klayer_forward(params, x0, c, n=n, steps=3, gamma=gamma, heads=heads)
    layer, shift = hopkur.nn.from_official_akorn(
        params, n=n, gamma=gamma, steps=3, heads=heads, num_tokens=size * size
    )
    _check(layer, shift, x0, c, xs, es, kind)


def test_gamma_is_rescaled_without_omega():
    """use_omega=False: the official step is hopkur's with gamma / (1 + gamma); with
    hopkur's gamma set to the official one instead, the states differ."""
    params, items = _case("conv_gn")
    layer, shift = hopkur.nn.from_official_akorn(params, n=4, gamma=1.0, steps=3)
    assert float(layer.gamma) == pytest.approx(0.5)
    wrong = eqx.tree_at(lambda m: m.raw_gamma, layer, jnp.ones_like(layer.raw_gamma))
    good, bad = (
        _run_hopkur(m, shift, items["x0"], items["c"], "conv")[0]
        for m in (layer, wrong)
    )
    target = np.moveaxis(images_to_hopkur(items["xs"], "conv"), 0, 1)
    assert np.allclose(np.asarray(good[:, 1:]), target, rtol=1e-5, atol=1e-7)
    assert not np.allclose(np.asarray(bad[:, 1:]), target, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_interleaved_heads_are_a_permutation(seed):
    """The official attention (heads interleaved) equals hopkur's (heads blocked) on
    q, k, v permuted by `interleaved_head_order`; unpermuted, they differ."""
    rng = np.random.default_rng(seed)
    channels, heads, size = 12, 3, 3
    w_qkv = rng.normal(size=(3 * channels, channels, 1, 1)) / np.sqrt(channels)
    eye = np.eye(channels)[:, :, None, None]
    x = rng.normal(size=(1, channels, size, size))
    zeros = np.zeros(3 * channels)
    official = attention(x, w_qkv, zeros, eye, zeros[:channels], heads)[0]
    tokens = images_to_hopkur(x[0], "attn")
    q, k, v = (
        tokens @ w_qkv[i * channels : (i + 1) * channels, :, 0, 0].T for i in range(3)
    )
    order = hopkur.nn.interleaved_head_order(channels, heads)
    assert sorted(order.tolist()) == list(range(channels))
    blocked = hopkur.multi_head_attention(
        jnp.asarray(q[:, order]),
        jnp.asarray(k[:, order]),
        jnp.asarray(v[:, order]),
        heads,
    )
    # Blocked channel j is interleaved channel order[j].
    np.testing.assert_allclose(
        np.asarray(blocked), images_to_hopkur(official, "attn")[:, order], rtol=1e-10
    )
    unpermuted = hopkur.multi_head_attention(
        jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), heads
    )
    assert not np.allclose(np.asarray(unpermuted), images_to_hopkur(official, "attn"))


def test_refused_options():
    rng = np.random.default_rng(0)
    conv = random_params(rng, channels=8, n=4, kind="conv", c_norm="gn", omega=None)
    attn = random_params(rng, channels=8, n=4, kind="attn", c_norm="none", omega=None)
    singular = dict(attn)
    singular["connectivity.W_qkv.weight"] = attn["connectivity.W_qkv.weight"].copy()
    singular["connectivity.W_qkv.weight"][:8] = 0.0  # W_q = 0, b_q != 0
    cases = [
        (singular, {"heads": 2, "num_tokens": 4}, "singular"),
        (dict(attn, **{"connectivity.mat_q": np.zeros((16, 1, 2, 2))}), {}, "GTA"),
        ({**conv, "c_norm.scale": np.ones(8)}, {}, "sandb"),
        (conv, {"project": False}, "projects"),
        (attn, {}, "heads="),
        (conv, {"n": 3}, "divide"),
        (
            {k: v for k, v in conv.items() if k != "connectivity.weight"},
            {},
            "no coupling",
        ),
    ]
    for state, kwargs, match in cases:
        kwargs = {"n": 4, **kwargs}
        with pytest.raises(ValueError, match=match):
            hopkur.nn.from_official_akorn(state, **kwargs)
    odd = random_params(rng, channels=6, n=3, kind="conv", c_norm="none", omega="pairs")
    odd["omg.omg_param"] = odd["omg.omg_param"][:3]
    with pytest.raises(ValueError, match="even"):
        hopkur.nn.from_official_akorn(odd, n=3)


def test_prefix_of_a_model_state_dict():
    """A whole model's state dict: the layer's keys under `layers.0.0.`, the rest
    ignored."""
    params, items = _case("attn_none")
    model = {f"layers.0.0.{k}": v for k, v in params.items()}
    model["patchfy.1.weight"] = np.zeros((8, 3, 4, 4))
    layer, shift = hopkur.nn.from_official_akorn(
        model, n=4, steps=3, heads=2, num_tokens=16, prefix="layers.0.0."
    )
    _check(layer, shift, items["x0"], items["c"], items["xs"], items["es"], "attn")
