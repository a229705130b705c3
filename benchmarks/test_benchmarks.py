"""pytest-benchmark versions of the research-size comparisons (see `suite.py` for the
full suite with speed-ups, compile times and memory; run it with `hopkur bench`).

Each benchmark builds its inputs from a fixed seed, compiles outside the timed region,
and times a call that ends in `jax.block_until_ready`.
"""

import jax
import pytest

from . import problems


MODELS = {
    "kuramoto": problems.kuramoto,
    "hopfield_kuramoto": problems.hopfield_kuramoto,
}
WORKLOADS = {
    "vector_field": problems.vector_fields,
    "solve": problems.solves,
    "training_step": problems.training_steps,
    "training_step_joint": problems.joint_training_steps,
}


@pytest.mark.parametrize("implementation", ["baseline", "hopkur"])
@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("model", list(MODELS))
def test_research(benchmark, size, model, workload, implementation):
    problem = MODELS[model](size)
    base, fast = WORKLOADS[workload](problem)
    fn = jax.jit(base if implementation == "baseline" else fast)
    args = (problem.params, problem.graph, problem.y0)
    if workload.startswith("training_step"):
        args = (*args, problem.targets)
    compiled = fn.lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    benchmark.extra_info.update(
        device=str(jax.devices()[0]), n=size.n, dim=size.dim, k=size.k, batch=size.batch
    )
    benchmark(lambda: jax.block_until_ready(compiled(*args)))
