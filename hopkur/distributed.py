r"""Several processes on JAX's multi-controller runtime (`jax.distributed`).

hopkur has no distribution layer of its own: every process runs the same program,
JAX's runtime connects them, and a `jax.sharding.Mesh` over the devices of all
processes splits a batch among them. This module is the thin glue:

- [`hopkur.distributed.initialize`][] starts the runtime, from arguments or the
  environment, with a clear error (never a hang) when the coordinator cannot be
  reached;
- [`hopkur.distributed.global_mesh`][] is the one-dimensional mesh over every device of
  every process, to pass as `hopkur.simulate_batch(..., devices=mesh)`;
- [`hopkur.distributed.shard_batch`][] and [`hopkur.distributed.replicate`][] place a
  batch and the parameters on it, for a data-parallel training step (the gradient of a
  mean over a globally sharded batch is averaged across processes by XLA);
- [`hopkur.distributed.shard_nodes`][] splits one network (a model and its state)
  over the devices by node partition, for networks too large for one device;
- [`hopkur.distributed.gather_to_process_zero`][] brings results back to the host of
  process 0, which is the one to write them.

See [several processes](../how-to/distributed.md) for the same code on one machine
and on a cluster.
"""

from ._distributed import (
    gather_to_process_zero as gather_to_process_zero,
    global_mesh as global_mesh,
    initialize as initialize,
    replicate as replicate,
    shard_batch as shard_batch,
    shard_nodes as shard_nodes,
)
