"""Several processes on JAX's runtime (`hopkur.distributed`) equal one process.

Two local processes with two host devices each (CPU collectives, gloo) run a sharded
`simulate_batch` and one data-parallel training step; a third process runs the same
program alone, without the runtime. Process counts and devices must be set before JAX
starts, so every run is a subprocess; the three start together.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import hopkur.distributed as hd
from hopkur import _distributed
from hopkur.cli import main


SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import hopkur.distributed as hd

    port, process, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if count > 1:
        hd.initialize(f"127.0.0.1:{port}", count, process, local_device_count=2,
                      timeout=60)

    import diffrax as dfx
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import hopkur
    from hopkur.experiments import training

    jax.config.update("jax_enable_x64", True)
    assert jax.process_count() == count
    assert jax.device_count() == 2 * count - (count == 1)

    rng = np.random.default_rng(0)
    n, d, batch = 6, 2, 7  # 7 does not divide over 4 devices: exercises the padding
    x = rng.standard_normal((batch + 1, n, d))
    x0s = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))
    omega = hopkur.planar_rotations(jnp.asarray(rng.standard_normal(n)))
    strengths = jnp.asarray(rng.uniform(0.5, 3.0, batch))
    models = eqx.filter_vmap(
        lambda k: hopkur.Kuramoto(hopkur.MeanFieldCoupling(k), omega=omega)
    )(strengths)
    mesh = hd.global_mesh() if count > 1 else None
    sol = hopkur.simulate_batch(
        models, x0s[:batch], batch_model=True, devices=mesh, t1=4.0,
        solver=dfx.Bosh3(),
    )
    ys = hd.gather_to_process_zero(sol.ys)
    steps = hd.gather_to_process_zero(sol.stats["num_steps"])

    # One data-parallel step of `hopkur.experiments.train`: the model replicated, the
    # batch of 8 sharded over every device of every process, the loss a mean over it
    # (of the energy and the squared speed: cheap to compile, unlike a solve).
    k = rng.standard_normal((n, n))
    model = hopkur.Kuramoto(hopkur.DenseCoupling(k + k.T), omega=omega)

    def loss(m, y0s):
        def one(y):
            return m.energy(y, None) + jnp.sum(m.vector_field(0.0, y, None) ** 2)

        return jnp.mean(jax.vmap(one)(y0s))

    batch_of = (lambda s: hd.shard_batch(x0s)) if count > 1 else (lambda s: x0s)
    start = hd.replicate(model) if count > 1 else model
    grads = eqx.filter_jit(eqx.filter_grad(loss))(start, batch_of(0))
    trained = training.train(start, loss, batch_of, optimiser=optax.sgd(0.1),
                             steps=1, progress=False)
    grad_k = hd.gather_to_process_zero(grads.coupling.weights)
    new_k = hd.gather_to_process_zero(trained.model.coupling.weights)
    if process == 0:
        print(json.dumps({
            "devices": jax.device_count(),
            "ys": np.asarray(ys).tolist(),
            "steps": np.asarray(steps).tolist(),
            "grad": np.asarray(grad_k).tolist(),
            "weights": np.asarray(new_k).tolist(),
            "loss": float(trained.losses[0]),
        }))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _results(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _env():
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    return env


@pytest.mark.slow  # 85-175 s on the shared 2-core machine (3 processes, ~30 s of CPU)
def test_two_processes_equal_one():
    import numpy as np

    port = _free_port()
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(port), str(process), str(count)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for process, count in ((0, 2), (1, 2), (0, 1))
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-3000:]
    # Process 1 writes nothing (but gloo's own lines, which start with "[Gloo]").
    assert _results(outputs[1][0]) == []
    two, one = _results(outputs[0][0])[-1], _results(outputs[2][0])[-1]
    assert (two["devices"], one["devices"]) == (4, 1)
    ys_two, ys_one = np.asarray(two["ys"]), np.asarray(one["ys"])
    assert ys_two.shape == ys_one.shape == (7, 1, 6, 2)
    # Each element is solved with its own adaptive steps, wherever it runs.
    assert two["steps"] == one["steps"] and len(set(one["steps"])) > 1
    assert np.max(np.abs(ys_two - ys_one)) <= 1e-12
    # The gradient of the mean over the sharded batch is averaged across processes:
    # equal to the single process's up to the order of the sums.
    grad_two, grad_one = np.asarray(two["grad"]), np.asarray(one["grad"])
    assert np.max(np.abs(grad_one)) > 1e-3
    assert np.max(np.abs(grad_two - grad_one)) <= 1e-12 * np.max(np.abs(grad_one))
    assert abs(two["loss"] - one["loss"]) <= 1e-12 * abs(one["loss"])
    weights_two, weights_one = np.asarray(two["weights"]), np.asarray(one["weights"])
    assert np.max(np.abs(weights_two - weights_one)) <= 1e-12


TINY = ["simulate", "--n", "8", "--batch", "6", "--t1", "2", "--saves", "5"]
TINY += ["--solver", "heun", "--dt", "0.1", "--no-figures", "--quiet"]


@pytest.mark.slow  # 70-105 s on the shared 2-core machine (~30 s of CPU)
def test_cli_processes_equal_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # Both as subprocesses (the parent starts its children with `sys.executable`),
    # at the same time, with JAX's default configuration (float32).
    cli = [sys.executable, "-m", "hopkur.cli", *TINY]
    runs = [
        subprocess.Popen(
            [*cli, *extra],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra in (
            ["--out", str(one)],
            ["--processes", "2", "--devices", "2", "--out", str(two)],
        )
    ]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
    a = json.loads((one / "metrics.json").read_text())
    b = json.loads((two / "metrics.json").read_text())
    assert (b["jax"]["processes"], b["jax"]["devices"]) == (2, 4)
    assert a["final_energy"] == b["final_energy"]
    assert a["order_parameter_final"] == b["order_parameter_final"]
    assert (two / "COMPLETE").exists()
    assert sorted(p.name for p in two.iterdir()) == sorted(
        p.name for p in one.iterdir()
    )


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(num_processes=0), "num_processes=...)` must be an integer >= 1; got 0"),
        (dict(num_processes=-2), "got -2"),
        (dict(num_processes=2, process_id=2), "must be in [0, 2) for 2 processes"),
        (dict(process_id=-1), "process_id=...)` must be an integer >= 0"),
        (dict(local_device_count=0), "local_device_count=...)` must be an integer"),
        (dict(timeout=0), "timeout=...)` must be a positive number"),
        (dict(coordinator_address="nohost"), "must be 'host:port'"),
        (dict(coordinator_address="h:99999"), "must be 'host:port'"),
    ],
)
def test_initialize_rejects_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        hd.initialize(**kwargs)
    assert words in str(info.value)


def test_initialize_reads_bad_environment(monkeypatch):
    monkeypatch.setenv("HOPKUR_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="HOPKUR_NUM_PROCESSES, must be an integer"):
        hd.initialize()
    monkeypatch.setenv("HOPKUR_NUM_PROCESSES", "0")
    with pytest.raises(ValueError, match=">= 1; got 0"):
        hd.initialize()


def test_unreachable_coordinator_is_a_timeout_not_a_hang():
    # Process 1 waits for a coordinator that is not there: a TimeoutError after
    # `timeout` seconds, before JAX's runtime (which would abort the process) starts.
    port = _free_port()
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        hd.initialize(f"127.0.0.1:{port}", 2, 1, timeout=1.5)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 5
    assert f"coordinator at 127.0.0.1:{port} within 1.5 s" in str(info.value)
    import jax

    assert not jax.distributed.is_initialized()


MESH_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import hopkur.distributed as hd

    hd.initialize(num_processes=1, local_device_count=2)
    mesh = hd.global_mesh("data")
    assert mesh.devices.size == 2 and mesh.axis_names == ("data",)
    good = hd.shard_batch({"x": np.zeros((4, 3)), "n": 5}, mesh)
    assert good["n"] == 5 and len(good["x"].sharding.device_set) == 2
    for bad in (np.zeros((3, 2)), np.float32(1.0)):
        try:
            hd.shard_batch([np.zeros((4,)), bad])
        except ValueError as e:
            print(e)
    try:
        hd.replicate(np.zeros(2), mesh="all")
    except ValueError as e:
        print(e)
    """
)


def test_fresh_processes_bad_input():
    # Two fresh processes at once (JAX's device count and runtime are set at start).
    # 1. Process 0 of 2 with no process 1: it says why and exits within the timeout.
    alone = (
        "import sys, time\n"
        "import hopkur.distributed as hd\n"
        "print('start', time.monotonic(), file=sys.stderr, flush=True)\n"
        f"hd.initialize('127.0.0.1:{_free_port()}', 2, 0, timeout=2)\n"
        "print('unreachable')\n"
    )
    waiting = subprocess.Popen(
        [sys.executable, "-c", alone],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # 2. A batch that does not divide over a mesh of 2 devices.
    mesh = subprocess.run(
        [sys.executable, "-c", MESH_SCRIPT],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out, err = waiting.communicate(timeout=120)
    # From the call (after the imports, which a loaded machine makes slow) to the exit.
    start = float(next(x for x in err.splitlines() if x.startswith("start")).split()[1])
    assert time.monotonic() - start < 15
    assert waiting.returncode == _distributed.TIMEOUT_EXIT_STATUS == 3, err[-2000:]
    assert "unreachable" not in out
    assert "process 0 of 2 waited 2 s at the coordinator" in err

    assert mesh.returncode == 0, mesh.stderr[-2000:]
    lines = mesh.stdout.strip().splitlines()
    assert "divides over the 2 devices" in lines[0]
    assert "shape (3, 2) (3 is not a multiple of 2)" in lines[0]
    assert "shape () (None is not a multiple of 2)" in lines[1]
    assert "`hopkur.distributed.replicate(mesh=...)` must be None or" in lines[2]


def test_cli_processes_below_one(tmp_path):
    assert main([*TINY, "--processes", "0", "--out", str(tmp_path / "a")]) == 2
    assert not (tmp_path / "a").exists()


def test_cli_processes_disagree_with_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HOPKUR_PROCESS_ID", "0")
    monkeypatch.setenv("HOPKUR_NUM_PROCESSES", "3")
    assert main([*TINY, "--processes", "2", "--out", str(tmp_path / "a")]) == 2
