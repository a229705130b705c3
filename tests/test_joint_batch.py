"""`hopkur.simulate_batch(..., joint=True)`: the batch as one ODE with a shared step.

With fixed steps the joint and the vmapped (per-sample) solves take the same steps, so
their states and their gradients with respect to the parameters must agree to rounding;
with adaptive steps a batch of identical samples must be solved exactly as one sample
is (the per-sample norm's maximum over equal samples is that sample's norm).
"""

from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hopkur

from .helpers import (
    constant_steps,
    make_coupled,
    make_hopfield,
    stack,
)


# The coupled model holds a Hopfield network, relu edge-coupled oscillators and the
# network coupling between them: one compilation covers all three vector fields.
COUPLED = make_coupled("network", False)
SYSTEMS = (COUPLED,)
FIXED = constant_steps(1.0, 0.1)


def _batch(make, key, size=3, n=5, d=3):
    keys = jax.random.split(key, size + 1)
    model, _ = make(keys[0], n, d)
    y0s = stack([make(k, n, d)[1] for k in keys[1:]])
    return model, y0s


def _loss(model, y0s, joint, batch_model=False, **options):
    sol = hopkur.simulate_batch(
        model, y0s, joint=joint, batch_model=batch_model, **options
    )
    total = jnp.zeros(())
    for leaf in jax.tree.leaves(sol.ys):
        finals = jnp.reshape(leaf[:, -1], (leaf.shape[0], -1))
        weights = jnp.arange(finals.shape[1], dtype=leaf.dtype)
        total = total + jnp.sum(finals**2 * weights[None, :])
    return total


@pytest.mark.parametrize("make", SYSTEMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("seed", range(3))
def test_joint_equals_vmapped_with_fixed_steps(make, seed):
    model, y0s = _batch(make, jax.random.key(seed))
    per_sample = hopkur.simulate_batch(model, y0s, **FIXED)
    joint = hopkur.simulate_batch(model, y0s, joint=True, **FIXED)
    assert jax.tree.structure(per_sample.ys) == jax.tree.structure(joint.ys)
    for a, b in zip(jax.tree.leaves(per_sample.ys), jax.tree.leaves(joint.ys)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(
        per_sample.stats["num_steps"], joint.stats["num_steps"]
    )
    grad_per_sample = eqx.filter_grad(_loss)(model, y0s, False, **FIXED)
    grad_joint = eqx.filter_grad(_loss)(model, y0s, True, **FIXED)
    leaves = jax.tree.leaves(grad_per_sample)
    assert leaves and max(float(jnp.max(jnp.abs(g))) for g in leaves) > 1e-3
    for a, b in zip(leaves, jax.tree.leaves(grad_joint)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    "make", [make_hopfield(hopkur.lagrangian_tanh)], ids=lambda f: f.__name__
)
def test_joint_with_one_model_per_sample_equals_vmapped(getkey, make):
    keys = jax.random.split(getkey(), 4)
    models = stack([make(k, 5, 3)[0] for k in keys])
    y0s = stack([make(k, 5, 3)[1] for k in keys])
    options: dict[str, Any] = dict(batch_model=True, **FIXED)
    per_sample = hopkur.simulate_batch(models, y0s, **options)
    joint = hopkur.simulate_batch(models, y0s, joint=True, **options)
    for a, b in zip(jax.tree.leaves(per_sample.ys), jax.tree.leaves(joint.ys)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    grads = [
        eqx.filter_grad(_loss)(models, y0s, j, batch_model=True, **FIXED)
        for j in (False, True)
    ]
    for a, b in zip(*map(jax.tree.leaves, grads)):
        assert a.shape[0] == 4  # one gradient per model
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("seed", range(3))
def test_joint_adaptive_identical_samples_step_as_one(seed):
    model, y0s = _batch(COUPLED, jax.random.key(seed), size=1)
    copies = jax.tree.map(lambda a: jnp.repeat(a, 4, axis=0), y0s)
    options: dict[str, Any] = dict(
        t1=3.0, stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-7)
    )
    alone = hopkur.simulate(model, jax.tree.map(lambda a: a[0], y0s), **options)
    joint = hopkur.simulate_batch(model, copies, joint=True, **options)
    steps = np.asarray(joint.stats["num_steps"])
    assert (steps == int(alone.stats["num_steps"])).all()
    for a, b in zip(jax.tree.leaves(alone.ys), jax.tree.leaves(joint.ys)):
        for k in range(4):
            np.testing.assert_allclose(b[k], a, rtol=1e-12, atol=1e-13)


def test_joint_adaptive_takes_the_hardest_samples_steps_and_stays_on_spheres():
    # Sample 0 is slow (weak coupling), sample 1 stiff (strong): the joint solve takes
    # at least the stiff sample's accuracy for both, and one step count for the batch.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 3))
    x0s = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))
    models = eqx.filter_vmap(lambda k: hopkur.Kuramoto(hopkur.MeanFieldCoupling(k)))(
        jnp.asarray([0.1, 30.0])
    )
    options: dict[str, Any] = dict(
        t1=20.0,
        batch_model=True,
        stepsize_controller=dfx.PIDController(rtol=1e-4, atol=1e-6),
    )
    per_sample = hopkur.simulate_batch(models, x0s, **options)
    joint = hopkur.simulate_batch(models, x0s, joint=True, **options)
    steps = np.asarray(per_sample.stats["num_steps"])
    assert steps[1] > steps[0]
    joint_steps = np.asarray(joint.stats["num_steps"])
    assert joint_steps[0] == joint_steps[1] >= steps[1] * 0.9
    exact = hopkur.simulate_batch(
        models,
        x0s,
        t1=20.0,
        batch_model=True,
        stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-12),
    )
    assert joint.ys is not None and per_sample.ys is not None and exact.ys is not None
    error = jnp.max(jnp.abs(joint.ys - exact.ys), axis=(1, 2, 3))
    error_alone = jnp.max(jnp.abs(per_sample.ys - exact.ys), axis=(1, 2, 3))
    assert float(error[0]) <= 2 * float(error_alone[0]) + 1e-9
    assert float(jnp.max(error)) < 1e-2
    drift = jnp.abs(jnp.linalg.norm(joint.ys, axis=-1) - 1)
    assert float(jnp.max(drift)) <= 1e-12


def test_joint_energy_is_the_sum_and_a_gradient_system(getkey):
    model, y0s = _batch(COUPLED, getkey())
    from hopkur._joint import BatchedSystem

    system = BatchedSystem(model)
    each = jax.jit(jax.vmap(lambda y: model.energy(y, None)))(y0s)
    assert len(set(np.asarray(each).tolist())) == 3
    total = jax.jit(lambda y: system.energy(y, None))(y0s)
    np.testing.assert_allclose(total, jnp.sum(each), rtol=1e-12)
    assert bool(system.is_gradient_system) == bool(model.is_gradient_system)


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(noise=0.1, dt0=0.1, key=jax.random.key(0)), "cannot take `noise`"),
        (
            dict(event=dfx.Event(lambda t, y, args, **kw: t > 0.5)),
            "cannot take `event`",
        ),
        (dict(saveat=dfx.SaveAt(dense=True)), "dense interpolation"),
        (
            dict(
                stepsize_controller=dfx.ClipStepSizeController(
                    dfx.PIDController(rtol=1e-3, atol=1e-6)
                )
            ),
            None,
        ),
    ],
)
def test_joint_bad_input(options, words):
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    x0s = jnp.ones((3, 4, 2)) / jnp.sqrt(2.0)
    if words is None:  # a wrapped PID controller is accepted
        sol = hopkur.simulate_batch(model, x0s, joint=True, **options)
        assert sol.ys is not None and sol.ys.shape == (3, 1, 4, 2)
        return
    with pytest.raises(ValueError, match=r"simulate_batch\(joint=True\)") as e:
        hopkur.simulate_batch(model, x0s, joint=True, **options)
    assert words in str(e.value)
