import functools as ft

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import hopkur


CLOSED_FORMS = [
    (hopkur.lagrangian_identity, lambda x: 0.5 * jnp.sum(x**2), lambda x: x),
    (hopkur.lagrangian_tanh, lambda x: jnp.sum(jnp.log(jnp.cosh(x))), jnp.tanh),
    (
        hopkur.lagrangian_sigmoid,
        lambda x: jnp.sum(jnp.log1p(jnp.exp(x))),
        jax.nn.sigmoid,
    ),
    (
        hopkur.lagrangian_relu,
        lambda x: 0.5 * jnp.sum(jnp.maximum(x, 0) ** 2),
        lambda x: jnp.maximum(x, 0),
    ),
    (
        ft.partial(hopkur.lagrangian_softmax, beta=1.7),
        lambda x: jnp.log(jnp.sum(jnp.exp(1.7 * x))) / 1.7,
        lambda x: jnp.exp(1.7 * x) / jnp.sum(jnp.exp(1.7 * x)),
    ),
]


@pytest.mark.parametrize("lagrangian,value,act", CLOSED_FORMS)
@pytest.mark.parametrize("seed", range(5))
def test_closed_forms(lagrangian, value, act, seed):
    x = 3 * jr.normal(jr.key(seed), (7,))
    assert jnp.allclose(lagrangian(x), value(x), rtol=1e-12, atol=1e-12)
    assert jnp.allclose(
        hopkur.activation(lagrangian, x), act(x), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("lagrangian,value,act", CLOSED_FORMS)
def test_stable_at_large_inputs(lagrangian, value, act):
    x = jnp.array([1e4, -1e4, 0.0, 5e3])
    val = lagrangian(x)
    grad = hopkur.activation(lagrangian, x)
    assert jnp.isfinite(val) and jnp.all(jnp.isfinite(grad))
    hess = jax.hessian(lagrangian)(x)
    assert jnp.all(jnp.isfinite(hess))


def test_large_input_values():
    x = jnp.array([1e4, -1e4])
    assert jnp.allclose(hopkur.lagrangian_tanh(x), 2e4 - 2 * jnp.log(2.0), rtol=1e-14)
    assert jnp.allclose(hopkur.lagrangian_sigmoid(x), 1e4, rtol=1e-14)
    assert jnp.allclose(
        hopkur.activation(hopkur.lagrangian_tanh, x), jnp.array([1.0, -1.0])
    )


@pytest.mark.parametrize("lagrangian,value,act", CLOSED_FORMS)
@pytest.mark.parametrize("seed", range(3))
def test_convex(lagrangian, value, act, seed):
    x = jr.normal(jr.key(seed), (6,))
    eig = jnp.linalg.eigvalsh(jax.hessian(lagrangian)(x))
    assert eig[0] >= -1e-12


def test_tanh_hessian_at_zero():
    h = jax.hessian(hopkur.lagrangian_tanh)(jnp.zeros(3))
    assert jnp.allclose(h, jnp.eye(3))
