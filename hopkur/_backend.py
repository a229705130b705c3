r"""Which evaluation paths a trace takes: CPU fast paths or accelerator paths (private).

Some of hopkur's fastest CPU formulations are tunings for a CPU's caches and its
compiled kernels, which would be slow or unavailable elsewhere:

- under `vmap`, the dense-masked edge drives run sample by sample (`hopkur._per_sample`,
  chunks of `hopkur._sparse.chunk_size(n)` samples: one at N = 896), optionally in row
  blocks, so that each sample's $N\times N$ intermediates stay in cache;
- `method="auto"` edge couplings use the compiled CPU kernels (`hopkur._native`) when
  they are built.

On any other backend (GPU, TPU) the *accelerator paths* are taken instead: the batch is
evaluated as batched array operations (plain `vmap`, $(B, N, N)$ intermediates, which an
accelerator's memory bandwidth and parallelism suit), and the compiled kernels are never
chosen. The choice is made when a function is traced, from `jax.default_backend()`, or
forced by the environment variable `HOPKUR_PATHS`:

- `HOPKUR_PATHS=auto` (or unset): by backend;
- `HOPKUR_PATHS=accelerator`: the accelerator paths, also on CPU (how the tests check
  that they equal the CPU paths);
- `HOPKUR_PATHS=cpu`: the CPU paths, also on an accelerator.

Set it before the first solve: compiled functions keep the paths they were traced with
(`jax.clear_caches()` forgets them).
"""

import os

import jax


VARIABLE = "HOPKUR_PATHS"
CHOICES = ("auto", "cpu", "accelerator")


def paths() -> str:
    """`"cpu"` or `"accelerator"`: the paths the next trace takes."""
    forced = os.environ.get(VARIABLE, "").strip().lower() or "auto"
    if forced not in CHOICES:
        raise ValueError(
            f"The environment variable {VARIABLE} must be one of "
            f"{', '.join(CHOICES)}; got {forced!r}."
        )
    if forced != "auto":
        return forced
    return "cpu" if jax.default_backend() == "cpu" else "accelerator"


def cpu_paths() -> bool:
    """Whether the CPU fast paths (sample-by-sample dense drives, compiled kernels)
    are taken."""
    return paths() == "cpu"
