"""pytest-benchmark configuration: float32 (the precision measured), and the size of
the problems (`HOPKUR_BENCH_SIZE=research` for the research note's sizes; the default
`quick` sizes run in seconds).

Run with `pytest benchmarks -o addopts=""` (clearing `addopts` turns off the jaxtyping
hook of the test suite, which would add overhead).
"""

import os

import jax
import pytest


jax.config.update("jax_enable_x64", False)


@pytest.fixture(scope="session")
def size():
    from . import problems

    name = os.environ.get("HOPKUR_BENCH_SIZE", "quick")
    return {"quick": problems.QUICK, "research": problems.RESEARCH}[name]
