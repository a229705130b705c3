"""Batches sharded over several (host) devices equal the unsharded run.

The device count must be set before JAX is imported, so the check runs in a subprocess
with `XLA_FLAGS=--xla_force_host_platform_device_count=4`.
"""

import textwrap

from .helpers import run_on_host_devices


SCRIPT = textwrap.dedent(
    """
    import json

    import diffrax as dfx
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    import hopkur

    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) == 4, jax.devices()

    rng = np.random.default_rng(0)
    n, d, batch = 6, 2, 10  # 10 is not a multiple of 4: exercises the padding
    x = rng.standard_normal((batch, n, d))
    x0s = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))
    omega = hopkur.planar_rotations(jnp.asarray(rng.standard_normal(n)))
    strengths = jnp.asarray(rng.uniform(0.5, 3.0, batch))
    models = eqx.filter_vmap(
        lambda k: hopkur.Kuramoto(hopkur.MeanFieldCoupling(k), omega=omega)
    )(strengths)
    kwargs = dict(t1=5.0, solver=dfx.Bosh3())  # adaptive: step counts differ

    plain = hopkur.simulate_batch(models, x0s, batch_model=True, **kwargs)
    sharded = hopkur.simulate_batch(
        models, x0s, batch_model=True, devices=4, **kwargs
    )
    # Element by element: model k from initial state k.
    def single(k):
        model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(strengths[k]), omega=omega)
        return hopkur.simulate(model, x0s[k], **kwargs).ys

    diff_single = max(float(jnp.max(jnp.abs(single(k) - plain.ys[k]))) for k in (0, 7))
    # A shared (replicated) model: its element 3 is the batch's model 3.
    shared = hopkur.Kuramoto(hopkur.MeanFieldCoupling(strengths[3]), omega=omega)
    sharded_states = hopkur.simulate_batch(shared, x0s, devices="all", **kwargs)
    # The joint solve (one ODE, a shared step) on each device's share: with fixed
    # steps, the same as the joint solve of the whole batch on one device.
    fixed = dict(t1=2.0, dt0=0.05, stepsize_controller=dfx.ConstantStepSize())
    joint = dict(batch_model=True, joint=True, **fixed)
    joint_one = hopkur.simulate_batch(models, x0s, **joint)
    joint_four = hopkur.simulate_batch(models, x0s, devices=4, **joint)
    print(json.dumps({
        "diff_joint": float(jnp.max(jnp.abs(joint_one.ys - joint_four.ys))),
        "joint_shape": list(joint_four.ys.shape),
        "shape": list(sharded.ys.shape),
        "diff_models": float(jnp.max(jnp.abs(plain.ys - sharded.ys))),
        "diff_states": float(jnp.max(jnp.abs(plain.ys[3] - sharded_states.ys[3]))),
        "diff_single": diff_single,
        "distinct": float(jnp.max(jnp.abs(plain.ys[2] - sharded_states.ys[2]))),
        "steps_plain": np.asarray(plain.stats["num_steps"]).tolist(),
        "steps_sharded": np.asarray(sharded.stats["num_steps"]).tolist(),
        "norm_drift": float(
            jnp.max(jnp.abs(jnp.linalg.norm(sharded.ys, axis=-1) - 1))
        ),
    }))
    """
)


def test_sharded_batch_equals_unsharded():
    result = run_on_host_devices(SCRIPT, 4)
    assert result["shape"] == [10, 1, 6, 2]
    assert result["diff_models"] <= 1e-12
    # vmap over parameters and initial states equals solving each element alone (up
    # to floating-point reassociation in the batched arithmetic).
    assert result["diff_single"] <= 1e-10
    assert result["diff_states"] <= 1e-12
    assert result["distinct"] > 1e-3  # the shared model differs from model 2
    # Each element takes its own adaptive steps, identically in both runs.
    assert result["steps_plain"] == result["steps_sharded"]
    assert len(set(result["steps_plain"])) > 1
    assert result["norm_drift"] <= 1e-12
    assert result["joint_shape"] == [10, 1, 6, 2]
    assert result["diff_joint"] <= 1e-12
