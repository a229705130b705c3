"""The implementation of `hopkur.distributed` (see there): initialisation of JAX's
multi-controller runtime with timeouts that end in clear errors, the global mesh, and
the placement and gathering of batches."""

import math
import os
import socket
import sys
import threading
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree


# The environment variables `initialize` reads for the arguments left as `None`.
ENVIRONMENT = {
    "coordinator_address": "HOPKUR_COORDINATOR_ADDRESS",
    "num_processes": "HOPKUR_NUM_PROCESSES",
    "process_id": "HOPKUR_PROCESS_ID",
    "local_device_count": "HOPKUR_LOCAL_DEVICE_COUNT",
}

# The exit status of a process whose peers did not all join within the timeout.
TIMEOUT_EXIT_STATUS = 3

_CALL = "hopkur.distributed.initialize"


def _text_from_environment(name: str, value: str | None) -> str | None:
    if value is not None:
        return value
    return os.environ.get(ENVIRONMENT[name], "").strip() or None


def _int_from_environment(name: str, value: int | None) -> int | None:
    if value is not None:
        return value
    text = _text_from_environment(name, None)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"`{_CALL}({name}=...)`, read from {ENVIRONMENT[name]}, must be an "
            f"integer; got {text!r}."
        ) from None


def _check_count(name: str, value, low: int) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < low
    ):
        raise ValueError(
            f"`{_CALL}({name}=...)` must be an integer >= {low}; got {value!r}."
        )


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"`{_CALL}(coordinator_address=...)` must be 'host:port' with a port in "
            f"1..65535; got {address!r}."
        )
    return host.strip("[]"), int(port)


def _wait_for_coordinator(address: str, timeout: float, process_id: int) -> None:
    """Retries a TCP connection to the coordinator until it answers or `timeout`
    seconds pass (then a `TimeoutError`): JAX's own wait ends by aborting the
    process."""
    host, port = _split_address(address)
    deadline = time.monotonic() + timeout
    reason = "no answer"
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(left, 2))):
                return
        except OSError as e:
            reason = e.strerror or type(e).__name__
        if time.monotonic() + 0.2 >= deadline:
            raise TimeoutError(
                f"`{_CALL}`: process {process_id} could not reach the coordinator at "
                f"{address} within {timeout:g} s ({reason}). Start process 0 (which "
                "runs the coordinator) with the same address, check the host name and "
                "port, or raise `timeout`."
            )
        time.sleep(0.2)


def _check_port_free(address: str) -> None:
    host, port = _split_address(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError as e:
            raise OSError(
                f"`{_CALL}`: process 0 runs the coordinator on port {port} of {host}, "
                f"but the port cannot be used ({e.strerror}); choose another "
                "`coordinator_address`."
            ) from None


def _watchdog(timeout: float, process_id: int, num_processes: int, address: str):
    # JAX's runtime aborts the process when the others do not all join in time; say
    # why first, and exit with a status of our own.
    def expire():
        sys.stderr.write(
            f"{_CALL}: process {process_id} of {num_processes} waited {timeout:g} s at "
            f"the coordinator {address} and not every process joined; start all "
            f"{num_processes} processes with the same address, or raise `timeout`.\n"
        )
        sys.stderr.flush()
        os._exit(TIMEOUT_EXIT_STATUS)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    return timer


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_count: int | None = None,
    timeout: int | float = 300,
) -> None:
    r"""Starts JAX's multi-controller runtime (`jax.distributed.initialize`) for this
    process. Call it once, first, in every process, before any other JAX call.

    Arguments left as `None` are read from the environment:

    | argument | hopkur's variable | if unset |
    |---|---|---|
    | `coordinator_address` | `HOPKUR_COORDINATOR_ADDRESS` | `JAX_COORDINATOR_ADDRESS` |
    | `num_processes` | `HOPKUR_NUM_PROCESSES` | JAX's cluster detection |
    | `process_id` | `HOPKUR_PROCESS_ID` | JAX's cluster detection |
    | `local_device_count` | `HOPKUR_LOCAL_DEVICE_COUNT` | the backend's devices |

    Whatever is still unset after that is left to JAX's cluster detection, which
    reads SLURM (`SLURM_JOB_NODELIST`, `SLURM_NTASKS`,
    `SLURM_PROCID`, ...), Open MPI and Cloud TPU environments, so under `srun` no
    argument is needed. With one process (`num_processes=1`) no runtime is started:
    only `local_device_count` applies.

    Every process but process 0 first waits for the coordinator to accept connections,
    and raises a `TimeoutError` if it does not within `timeout` seconds (rather than
    letting JAX abort the process). Once connected, if not every process joins within
    `timeout`, the process writes why to standard error and exits with status
    3 (JAX's runtime would abort it).

    **Arguments:**

    - `coordinator_address`: `"host:port"` of process 0, which runs the coordinator
      service on that port; every process passes the same one.
    - `num_processes`: the number of processes, at least 1.
    - `process_id`: this process's index, in `0, ..., num_processes - 1`.
    - `local_device_count`: the number of CPU (host) devices of this process, as
      `XLA_FLAGS=--xla_force_host_platform_device_count=N` would set: a way to try
      several devices per process on a CPU-only machine. GPUs and TPUs keep their
      hardware devices. (Keyword only argument.)
    - `timeout`: seconds to wait for the coordinator and the other processes. (Keyword
      only argument.)

    **Returns:**

    Nothing; afterwards `jax.process_count()`, `jax.process_index()` and
    `jax.devices()` (all devices of all processes) describe the run.
    """
    coordinator_address = _text_from_environment(
        "coordinator_address", coordinator_address
    )
    num_processes = _int_from_environment("num_processes", num_processes)
    process_id = _int_from_environment("process_id", process_id)
    local_device_count = _int_from_environment("local_device_count", local_device_count)
    _check_count("num_processes", num_processes, 1)
    _check_count("process_id", process_id, 0)
    _check_count("local_device_count", local_device_count, 1)
    if not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
        raise ValueError(
            f"`{_CALL}(timeout=...)` must be a positive number of seconds; got "
            f"{timeout!r}."
        )
    if (
        num_processes is not None
        and process_id is not None
        and not process_id < num_processes
    ):
        raise ValueError(
            f"`{_CALL}(process_id=...)` must be in [0, {num_processes}) for "
            f"{num_processes} processes; got {process_id}."
        )
    if coordinator_address is not None:
        _split_address(coordinator_address)
    if jax.distributed.is_initialized():
        raise RuntimeError(f"`{_CALL}` was already called in this process.")

    if local_device_count is not None:
        try:
            jax.config.update("jax_num_cpu_devices", local_device_count)
        except RuntimeError:
            raise RuntimeError(
                f"`{_CALL}(local_device_count=...)` must come before any other JAX "
                "call: JAX has already started its devices in this process."
            ) from None
    if num_processes == 1:
        return
    timer = None
    if coordinator_address is not None and process_id is not None:
        if process_id == 0:
            _check_port_free(coordinator_address)
        else:
            _wait_for_coordinator(coordinator_address, timeout, process_id)
        if num_processes is not None:
            timer = _watchdog(timeout, process_id, num_processes, coordinator_address)
            timer.start()
    try:
        jax.distributed.initialize(
            coordinator_address,
            num_processes,
            process_id,
            # JAX's deadline comes after the watchdog's, which explains itself first.
            initialization_timeout=math.ceil(timeout) + (5 if timer else 0),
        )
    finally:
        if timer is not None:
            timer.cancel()


def global_mesh(axis_name: str = "batch") -> Mesh:
    """The one-dimensional mesh over every device of every process (`jax.devices()`),
    in process order: a batch placed on it is split among all processes.

    **Arguments:**

    - `axis_name`: the name of the mesh axis.

    **Returns:**

    A `jax.sharding.Mesh` with one axis of `jax.device_count()` devices.
    """
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), (axis_name,))


def _mesh_and_axis(call: str, mesh: Mesh | None) -> tuple[Mesh, str]:
    mesh = global_mesh() if mesh is None else mesh
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise ValueError(
            f"`{call}(mesh=...)` must be None or a one-dimensional "
            f"`jax.sharding.Mesh`; got {mesh!r}."
        )
    return mesh, str(mesh.axis_names[0])


def _is_array(x) -> bool:
    return isinstance(x, jax.Array | np.ndarray | np.generic)


def shard_batch(batch: PyTree, mesh: Mesh | None = None) -> PyTree:
    """Places the leading (batch) axis of every array of `batch` over the devices of
    `mesh`, each device holding an equal share. Every process passes the same whole
    batch (e.g. drawn from the same seed); each keeps only its devices' share.

    Under `jit`, a loss that is a mean over such a batch, with replicated parameters
    ([`hopkur.distributed.replicate`][]), has its gradient averaged across all
    devices and processes by XLA: this is a data-parallel training step.

    **Arguments:**

    - `batch`: a pytree whose array leaves share a leading batch axis.
    - `mesh`: a one-dimensional mesh; default [`hopkur.distributed.global_mesh`][].

    **Returns:**

    `batch` with its arrays as global `jax.Array`s sharded along the batch axis.
    """
    call = "hopkur.distributed.shard_batch"
    mesh, axis = _mesh_and_axis(call, mesh)
    count = mesh.devices.size
    arrays, static = eqx.partition(batch, _is_array)
    for leaf in jax.tree.leaves(arrays):
        size = np.shape(leaf)[0] if np.ndim(leaf) else None
        if size is None or size % count:
            raise ValueError(
                f"`{call}(batch=...)` must have a leading axis that divides over the "
                f"{count} devices of the mesh; got an array of shape "
                f"{tuple(np.shape(leaf))} ({size} is not a multiple of {count})."
            )
    spec = NamedSharding(mesh, PartitionSpec(axis))
    return eqx.combine(jax.device_put(arrays, spec), static)


def replicate(tree: PyTree, mesh: Mesh | None = None) -> PyTree:
    """Places a full copy of every array of `tree` (a model, parameters, an optimiser
    state) on every device of `mesh`.

    **Arguments:**

    - `tree`: any pytree; its non-array leaves are kept as they are.
    - `mesh`: a one-dimensional mesh; default [`hopkur.distributed.global_mesh`][].

    **Returns:**

    `tree` with its arrays replicated over the mesh.
    """
    mesh, _ = _mesh_and_axis("hopkur.distributed.replicate", mesh)
    arrays, static = eqx.partition(tree, _is_array)
    replicated = NamedSharding(mesh, PartitionSpec())
    return eqx.combine(jax.device_put(arrays, replicated), static)


def _edge_counts(arrays) -> set[int]:
    # The lengths of the edge lists of a model: integer arrays of shape (E, 2).
    return {
        int(np.shape(a)[0])
        for a in jax.tree.leaves(arrays)
        if np.ndim(a) == 2
        and np.shape(a)[1] == 2
        and jnp.issubdtype(jnp.result_type(a), jnp.integer)
    }


def shard_nodes(tree: PyTree, num_nodes: int, mesh: Mesh | None = None) -> PyTree:
    r"""Splits one network over the devices of `mesh` by node partition: each device
    holds a contiguous block of $N/\text{devices}$ nodes and what belongs to them.

    Every array leaf of `tree` (a model, a state, or both) whose leading axis is the
    node axis (length `num_nodes`: states `(N, D)`, biases, fields, frequencies, and
    the rows of dense `(N, N)` couplings and weights) or an edge axis (the length of
    an `(E, 2)` edge list of `tree`: the edge list and its per-edge parameters) is
    split along it; every other leaf is replicated. An edge list sorted by its first
    node, as hopkur's graph builders return them, is thereby split by its rows.

    Under `jit`, JAX's partitioner (GSPMD) then runs the vector field, the energy and
    whole solves on the pieces, with the collectives they need (the mean of a
    mean-field coupling is an all-reduce; a dense coupling's product gathers the state
    while its weights stay split), and the results equal the unsharded ones up to
    floating-point reassociation. Each device stores $1/\text{devices}$ of the
    node- and edge-indexed arrays, which is what lets a network larger than one
    device's memory run at all (benchmarks/README.md, "One network over several
    devices"). Couplings evaluated by the compiled CPU kernels (`method="auto"` with
    [`hopkur.native_kernels`][] built) cannot be partitioned and are gathered onto
    every device: build edge couplings with `method="segment"` or `method="dense"`
    to shard them.

    **Arguments:**

    - `tree`: a model, a state, or any pytree of them.
    - `num_nodes`: $N$, the number of nodes (oscillators, or units) of the network;
      it must be a multiple of the number of devices.
    - `mesh`: a one-dimensional mesh; default [`hopkur.distributed.global_mesh`][].

    **Returns:**

    `tree` with its node- and edge-indexed arrays split over the mesh and the others
    replicated.
    """
    call = "hopkur.distributed.shard_nodes"
    mesh, axis = _mesh_and_axis(call, mesh)
    count = mesh.devices.size
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(
            f"`{call}(num_nodes=...)` must be a positive integer; got {num_nodes!r}."
        )
    if num_nodes % count:
        raise ValueError(
            f"`{call}(num_nodes=...)` must be a multiple of the {count} devices of the "
            f"mesh, so that each holds as many nodes; got {num_nodes} nodes."
        )
    arrays, static = eqx.partition(tree, _is_array)
    edges = _edge_counts(arrays)
    for e in sorted(edges):
        if e % count:
            raise ValueError(
                f"`{call}(tree=...)` has an edge list of {e} edges, which does not "
                f"split over the {count} devices of the mesh; use a number of devices "
                f"that divides {e}, or `hopkur.distributed.replicate`."
            )
    split_sizes = {num_nodes} | edges
    split = NamedSharding(mesh, PartitionSpec(axis))
    whole = NamedSharding(mesh, PartitionSpec())

    def place(a):
        by_nodes = np.ndim(a) >= 1 and np.shape(a)[0] in split_sizes
        return jax.device_put(a, split if by_nodes else whole)

    return eqx.combine(jax.tree.map(place, arrays), static)


def _host_copy(a: jax.Array) -> np.ndarray:
    if a.is_fully_addressable or a.is_fully_replicated:
        return np.asarray(a)
    return np.asarray(multihost_utils.process_allgather(a, tiled=True))


def gather_to_process_zero(tree: PyTree) -> PyTree | None:
    """The arrays of `tree` (e.g. the `diffrax.Solution` of a sharded
    [`hopkur.simulate_batch`][]) as whole NumPy arrays on the host of process 0.

    Every process must call it (it is a collective when the arrays span processes);
    process 0 receives the tree, every other process `None`, so that only process 0
    writes results. With one process it is a plain copy to the host.

    **Arguments:**

    - `tree`: any pytree; its non-array leaves are kept as they are.

    **Returns:**

    On process 0, `tree` with every `jax.Array` replaced by a NumPy array holding all
    of its elements; on the others, `None`.
    """
    arrays, static = eqx.partition(tree, lambda x: isinstance(x, jax.Array))
    host: Any = jax.tree.map(_host_copy, arrays)
    if jax.process_index() != 0:
        return None
    return eqx.combine(host, static)
