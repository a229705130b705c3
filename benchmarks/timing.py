"""Measuring compiled JAX functions: compile time, run time and memory, honestly.

- Each function is traced, lowered and compiled ahead of time (`jax.jit(f).lower(...)
  .compile()`); that time is reported as *compile time* and never mixed with run times.
- Each compiled function runs once untimed (warm-up), then all the functions of one
  comparison are run in turn, `repeats` times (interleaved: baseline, hopkur, baseline,
  hopkur, ...), so that a change of machine load affects all of them alike. Each call
  is timed around `jax.block_until_ready`, after a pause of `SETTLE` seconds: a call
  that used much memory keeps releasing it after it returns, and on a pinned core that
  tail lands on the next call (measured: the research-size Kuramoto field took 57-104
  ms right after the 649-MiB per-edge baseline, 4.5 ms after a 50-ms pause).
- A *time* is the median over the repeats; a *speed-up* is the median over the repeats
  of the ratio of the two functions' times in the same round.
- *Memory* is XLA's own account of the compiled program
  (`compiled.memory_analysis()`): arguments + outputs + temporaries − aliased buffers,
  i.e. the peak of the buffers XLA allocates for one call. It does not count the Python
  process or JAX's runtime.
"""

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax


@dataclasses.dataclass
class Compiled:
    name: str
    call: Callable[[], Any]
    compile_s: float
    memory_bytes: int | None
    output: Any


def compile_call(name: str, fn: Callable, *args) -> Compiled:
    """Traces, lowers and compiles `fn(*args)` (timed), then runs it once (untimed)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    memory = None
    try:
        m = compiled.memory_analysis()
        if m is not None:
            memory = int(
                m.argument_size_in_bytes
                + m.output_size_in_bytes
                + m.temp_size_in_bytes
                - m.alias_size_in_bytes
            )
    except (AttributeError, NotImplementedError, RuntimeError):
        memory = None
    output = jax.block_until_ready(compiled(*args))
    return Compiled(name, lambda: compiled(*args), compile_s, memory, output)


# Seconds to wait before each timed call (see the module docstring).
SETTLE = 0.1


def run_interleaved(calls: Sequence[Compiled], repeats: int) -> dict[str, list[float]]:
    """Runs every call `repeats` times, in turn, each after a pause of `SETTLE` seconds;
    returns the times (s) per name."""
    times = {c.name: [] for c in calls}
    for _ in range(repeats):
        for c in calls:
            time.sleep(SETTLE)
            start = time.perf_counter()
            jax.block_until_ready(c.call())
            times[c.name].append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(slow: Sequence[float], fast: Sequence[float]) -> float:
    """The median over rounds of `slow / fast` (speed-ups measured in one round)."""
    return median([s / f for s, f in zip(slow, fast)])


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def time_once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start
