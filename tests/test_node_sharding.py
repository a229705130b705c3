"""One network split over 4 (host) devices by node partition equals the unsharded
network: vector field, energy and a short solve, for dense, mean-field and edge
couplings and the coupled Hopfield–Kuramoto model; each device holds a quarter of the
node- and edge-indexed arrays.

The device count must be set before JAX is imported: the check runs in a subprocess.
"""

import textwrap

import jax.numpy as jnp
import pytest

import hopkur.distributed as hd

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
    import hopkur.distributed as hd

    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    n, d = 16, 3

    def sphere(n, d):
        x = rng.standard_normal((n, d))
        return jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))

    def symmetric(n):
        w = rng.standard_normal((n, n)) / np.sqrt(n)
        return jnp.asarray((w + w.T) / 2)

    edges = jnp.asarray(hopkur.ring_edges(n, 4))  # 32 edges, sorted by row
    e = edges.shape[0]
    relu = hopkur.ReluInteraction(
        jnp.asarray(rng.standard_normal(e)), jnp.asarray(rng.standard_normal(e))
    )
    models = {
        "dense": hopkur.Kuramoto(
            hopkur.DenseCoupling(symmetric(n)), field=0.3 * sphere(n, d)
        ),
        "mean_field": hopkur.Kuramoto(hopkur.MeanFieldCoupling(2.0)),
        "edges": hopkur.Kuramoto(hopkur.EdgeCoupling(edges, relu, method="segment")),
        "hopfield_kuramoto": hopkur.HopfieldKuramoto(
            hopkur.Hopfield(
                symmetric(n),
                jnp.asarray(0.1 * rng.standard_normal(n)),
                hopkur.lagrangian_tanh,
            ),
            hopkur.Kuramoto(hopkur.EdgeCoupling(edges, relu, method="segment")),
            hopkur.NetworkCoupling(
                edges, jnp.asarray(rng.standard_normal(e)), method="segment"
            ),
        ),
    }
    states = {
        "dense": sphere(n, d),
        "mean_field": sphere(n, d),
        "edges": sphere(n, d),
        "hopfield_kuramoto": (jnp.asarray(rng.standard_normal(n)), sphere(n, d)),
    }

    @eqx.filter_jit
    def evaluate(model, y):
        # Fixed steps: adaptive ones could accept a step differently on a rounding
        # difference, and the two solves would then differ by the local error.
        sol = hopkur.simulate(
            model, y, t1=1.0, dt0=0.05, stepsize_controller=dfx.ConstantStepSize()
        )
        return model.vector_field(0.0, y, None), model.energy(y, None), sol.ys

    result = {}
    for name, model in models.items():
        y = states[name]
        plain = evaluate(model, y)
        sharded_model = hd.shard_nodes(model, n)
        sharded_y = hd.shard_nodes(y, n)
        split = evaluate(sharded_model, sharded_y)
        diffs = [
            max(
                float(jnp.max(jnp.abs(a - b)))
                for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(s))
            )
            for p, s in zip(plain, split)
        ]
        # The largest share of a node- or edge-indexed array held by device 0.
        shares = []
        for leaf in jax.tree.leaves(eqx.filter(sharded_model, eqx.is_array)):
            if leaf.ndim and leaf.shape[0] in (n, e):
                local = leaf.addressable_shards[0].data
                shares.append(local.shape[0] / leaf.shape[0])
        state_share = [
            leaf.addressable_shards[0].data.shape[0] / n
            for leaf in jax.tree.leaves(sharded_y)
        ]
        result[name] = {
            "field": diffs[0],
            "energy": diffs[1],
            "solve": diffs[2],
            "scale": max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(plain[0])),
            "shares": shares,
            "state_share": state_share,
        }
    errors = []
    for tree, nodes in ((sphere(18, d), 18), ((edges[:30], sphere(n, d)), n)):
        try:
            hd.shard_nodes(tree, nodes)
            errors.append("no error")
        except ValueError as e:
            errors.append(str(e))
    result["errors"] = errors
    print(json.dumps(result))
    """
)


def test_sharded_network_equals_unsharded():
    result = run_on_host_devices(SCRIPT, 4)
    errors = result.pop("errors")
    assert "must be a multiple of the 4 devices" in errors[0]
    assert "got 18 nodes" in errors[0]
    assert "edge list of 30 edges" in errors[1]
    assert set(result) == {"dense", "mean_field", "edges", "hopfield_kuramoto"}
    for name, r in result.items():
        assert r["scale"] > 1e-2, name  # a field that is not trivially zero
        assert r["field"] <= 1e-12, (name, r)
        assert r["energy"] <= 1e-12, (name, r)
        assert r["solve"] <= 1e-10, (name, r)
        assert r["state_share"] and all(s == 0.25 for s in r["state_share"]), name
        if name != "mean_field":  # (its only parameter is a scalar)
            assert r["shares"] and all(s == 0.25 for s in r["shares"]), (name, r)


def test_shard_nodes_bad_input():
    mesh = hd.global_mesh()
    x = jnp.ones((6, 3)) / jnp.sqrt(3.0)
    with pytest.raises(ValueError, match=r"shard_nodes\(num_nodes=\.\.\.\)"):
        hd.shard_nodes(x, 0, mesh)
    placed = hd.shard_nodes(x, 6, mesh)
    assert jnp.array_equal(placed, x)
