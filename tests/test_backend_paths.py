"""The accelerator paths (`hopkur._backend`) equal the CPU paths.

On CPU the dense-masked edge drives run sample by sample under `vmap` and `"auto"`
edge couplings use the compiled kernels; on any other backend the batch is evaluated
as batched array operations and the kernels are never chosen. `HOPKUR_PATHS=accelerator`
forces the accelerator paths on CPU, which is how these tests exercise them.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hopkur
from hopkur import _backend, _native, _sparse


def _traced(paths, monkeypatch, fun, *args):
    # Each path traced afresh: compiled functions keep the paths they were traced with.
    monkeypatch.setenv("HOPKUR_PATHS", paths)
    jax.clear_caches()
    assert _backend.paths() == paths
    jaxpr = str(jax.make_jaxpr(fun)(*args))
    return fun(*args), jaxpr


def _model(seed: int, n: int, d: int, density: float):
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(i.size) < density
    edges = jnp.asarray(np.stack([i[keep], j[keep]], axis=1))
    e = edges.shape[0]
    interaction = hopkur.TanhInteraction(
        jnp.asarray(rng.uniform(0.5, 1.5, e)), jnp.asarray(rng.uniform(-1, 1, e))
    )
    coupling = hopkur.EdgeCoupling(edges, interaction, n=n)
    omega = hopkur.planar_rotations(jnp.asarray(rng.standard_normal(n)))
    model = hopkur.Kuramoto(coupling, omega=omega if d == 2 else None)
    return model, e


def _states(seed: int, batch: int, n: int, d: int):
    x = np.random.default_rng(seed + 100).standard_normal((batch, n, d))
    return jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))


@pytest.mark.parametrize("seed", [0, 1])
def test_vector_field_and_gradient_paths_agree(seed, monkeypatch):
    # N = 300 nodes: `chunk_size(300) == 2`, so the CPU path goes sample by sample.
    n, d, batch = 300, 3, 3
    assert _sparse.chunk_size(n) < batch
    model, e = _model(seed, n, d, density=0.05)
    xs = _states(seed, batch, n, d)

    def loss(m, xs):
        v = jax.vmap(lambda x: m.vector_field(0.0, x, None))(xs)
        energy = jax.vmap(lambda x: m.energy(x, None))(xs)
        return jnp.sum(v * xs[::-1]) + jnp.sum(energy), v

    fun = eqx.filter_jit(eqx.filter_value_and_grad(loss, has_aux=True))
    (cpu_loss, cpu_v), cpu_grad = (out := _traced("cpu", monkeypatch, fun, model, xs))[
        0
    ]
    cpu_jaxpr = out[1]
    (acc_loss, acc_v), acc_grad = (
        out := _traced("accelerator", monkeypatch, fun, model, xs)
    )[0]
    acc_jaxpr = out[1]
    # The CPU path: sample by sample or the compiled kernels; the accelerator path:
    # neither (batched array operations only).
    assert "hopkur_per_sample" in cpu_jaxpr or "hopkur_edge" in cpu_jaxpr
    assert "hopkur_per_sample" not in acc_jaxpr and "hopkur_edge" not in acc_jaxpr
    scale = float(jnp.max(jnp.abs(cpu_v)))
    assert scale > 1e-3
    assert float(jnp.max(jnp.abs(cpu_v - acc_v))) <= 1e-12 * scale
    assert abs(float(cpu_loss - acc_loss)) <= 1e-12 * abs(float(cpu_loss))
    g_cpu = cpu_grad.coupling.interaction.a
    g_acc = acc_grad.coupling.interaction.a
    assert g_cpu.shape == (e,)
    assert float(jnp.max(jnp.abs(g_cpu - g_acc))) <= 1e-11 * float(
        jnp.max(jnp.abs(g_cpu))
    )


def test_dense_drive_is_batched_on_the_accelerator_path(monkeypatch):
    # The primitive itself: a plain call (vectorised by `vmap`) on the accelerator path.
    n, batch = 600, 4  # `chunk_size(600) == 1`
    x = _states(3, batch, n, 2)
    model, _ = _model(3, n, 2, density=0.1)
    coupling = model.coupling
    assert isinstance(coupling, hopkur.EdgeCoupling)
    parts = _sparse.dense_edge_parts(coupling.interaction, coupling.edges, n, x.dtype)
    args = lambda x: (x, *parts)

    def drive(x):
        return _sparse.per_sample(
            _sparse.masked_gram_drive,
            args(x),
            batch_size=_sparse.chunk_size(n),
            batched=_sparse.masked_gram_drive_batched,
        )

    cpu, cpu_jaxpr = _traced("cpu", monkeypatch, jax.vmap(drive), x)
    acc, acc_jaxpr = _traced("accelerator", monkeypatch, jax.vmap(drive), x)
    assert "hopkur_per_sample" in cpu_jaxpr and "hopkur_per_sample" not in acc_jaxpr
    assert float(jnp.max(jnp.abs(cpu - acc))) <= 1e-11 * float(jnp.max(jnp.abs(cpu)))


def test_kernels_are_a_cpu_path_only(monkeypatch):
    monkeypatch.setenv("HOPKUR_PATHS", "accelerator")
    assert not _native.usable(jnp.float32)
    monkeypatch.setenv("HOPKUR_PATHS", "cpu")
    assert _native.usable(jnp.float32) == _native.available()


def test_bad_paths_variable(monkeypatch):
    monkeypatch.setenv("HOPKUR_PATHS", "gpu")
    with pytest.raises(ValueError, match="HOPKUR_PATHS must be one of auto, cpu, "):
        _backend.paths()
    monkeypatch.setenv("HOPKUR_PATHS", "")
    assert _backend.paths() == (
        "cpu" if jax.default_backend() == "cpu" else "accelerator"
    )
