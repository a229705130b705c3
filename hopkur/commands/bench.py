"""`hopkur bench`: runs the benchmark suite in `benchmarks/` and writes the results.

Writes `results.json` (every measurement, the machine, the load average per case) and
`results.md` (the Markdown tables) into the output folder, after each case, and
`COMPLETE` at the end. With `--update-readme` the tables also replace the block between
the markers in `benchmarks/README.md`. The suite lives in the source checkout (it is not
part of the installed package): run the command from the repository, or point
`--benchmarks-dir` at the folder.
"""

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from ..experiments._io import atomic_write_bytes
from ._common import (
    add_common_flags,
    add_flags,
    HelpFormatter,
    resolve,
    RunFolder,
    setting,
    UsageError,
)


README_START = "<!-- hopkur-bench:start -->"
README_END = "<!-- hopkur-bench:end -->"
CASE_NAMES = (
    "research_kuramoto",
    "research_hopfield_kuramoto",
    "dense_limit",
    "mean_field_scale",
    "additive_scale",
    "crossover",
    "adjoints",
    "compile_time",
    "node_sharding",
    "arithmetic_limit",
)


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """The settings of `hopkur bench`."""

    quick: bool = setting(
        False,
        "small sizes and few repeats: a smoke run of every case in about a minute",
    )
    # Toy sizes, for the test of the runner (not a benchmark).
    tiny: bool = setting(False, argparse.SUPPRESS)
    only: str | None = setting(
        None,
        f"comma-separated cases to run (default: all): {', '.join(CASE_NAMES)}",
        metavar="CASES",
    )
    repeats: int | None = setting(
        None,
        "timed rounds for fast workloads (default: 5; 2 with --quick)",
        minimum=1,
        maximum=10_000,
    )
    slow_repeats: int | None = setting(
        None,
        "timed rounds for solves and training steps (default: 3; 1 with --quick)",
        minimum=1,
        maximum=10_000,
    )
    update_readme: bool = setting(
        False,
        "also write the tables into benchmarks/README.md (between its markers)",
    )
    benchmarks_dir: str | None = setting(
        None,
        "the benchmarks folder (default: ./benchmarks, or the one next to the "
        "hopkur package)",
        metavar="DIR",
    )
    x64: bool = setting(False, "not supported: the suite measures float32")

    def check(self) -> None:
        if self.x64:
            raise UsageError(
                "--x64: the suite measures float32 (the precision of the research "
                "code); run without --x64"
            )
        names = self.case_names()
        unknown = [n for n in names if n not in CASE_NAMES]
        if unknown or not names:
            raise UsageError(
                f"--only: unknown case(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(CASE_NAMES)}"
            )

    def case_names(self) -> tuple[str, ...]:
        if self.only is None:
            return CASE_NAMES
        return tuple(n.strip() for n in self.only.split(",") if n.strip())


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench",
        help="run the benchmark suite (hopkur vs naive per-edge baselines)",
        formatter_class=HelpFormatter,
        description=(
            "Runs the benchmark suite of benchmarks/: the research-size models against "
            "the naive per-edge scatter baseline, the dense and mean-field limits, the "
            "segment/dense crossover, the adjoints and compile times. Every time is a "
            "median over repeated runs after compilation; speed-ups are measured in "
            "the same rounds. Writes results.json and results.md to --out."
        ),
    )
    add_flags(parser, BenchSettings)
    add_common_flags(parser, default_out="outputs/bench")
    parser.set_defaults(run=run, _parser=parser)
    return parser


def _find_benchmarks(path: str | None) -> Path:
    if path is not None:
        candidates = [Path(path)]
    else:
        import hopkur

        candidates = [
            Path.cwd() / "benchmarks",
            Path(hopkur.__file__).resolve().parent.parent / "benchmarks",
        ]
    for candidate in candidates:
        if (candidate / "suite.py").is_file():
            return candidate.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise UsageError(
        f"no benchmark suite found (looked for suite.py in {where}); run from the "
        "repository root or pass --benchmarks-dir"
    )


def _import_suite(folder: Path):
    name = "hopkur_benchmarks"
    if name in sys.modules:
        return sys.modules[name].suite
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.suite")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(command: str) -> dict:
    """The machine and software the suite runs on."""
    import jax

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": importlib.metadata.version("jaxlib"),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.read("jax_enable_x64")),
        "command": command,
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def update_readme(readme: Path, markdown: str) -> None:
    """Replaces the text between `README_START` and `README_END` in `readme` (appends
    a marked section if the markers are missing)."""
    text = readme.read_text() if readme.exists() else ""
    block = f"{README_START}\n{markdown.rstrip()}\n{README_END}"
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## Latest results\n\n" + block + "\n"
    atomic_write_bytes(readme, text.encode())


def run(args: argparse.Namespace) -> int:
    out = RunFolder(args.out, "bench", overwrite=args.overwrite)
    settings = resolve(BenchSettings, args)
    names = settings.case_names()
    level = "tiny" if settings.tiny else "quick" if settings.quick else "full"
    small = level != "full"
    repeats = settings.repeats or (2 if small else 5)
    slow = settings.slow_repeats or (1 if small else 3)
    folder = _find_benchmarks(settings.benchmarks_dir)
    out.open()

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    suite = _import_suite(folder)
    command = (
        "hopkur bench" + {"full": "", "quick": " --quick", "tiny": " --tiny"}[level]
    )
    if settings.only:
        command += f" --only {','.join(names)}"
    machine = machine_info(command)
    machine["device"] = suite.backend()
    cfg = suite.Config(level=level, repeats=repeats, slow_repeats=slow, log=log)
    machine["load_start"] = suite.T.load_average()
    results, failures = {}, []
    for name in names:
        log(f"hopkur bench: {name} (on {machine['device']['device']})")
        start, load0 = time.perf_counter(), suite.T.load_average()
        try:
            result = suite.CASES[name](cfg)
        except Exception as e:  # one failing case must not lose the others' results
            failures.append(name)
            result = {
                "title": f"{name}: failed",
                "columns": [],
                "rows": [],
                "targets": [],
                "notes": [f"error: {type(e).__name__}: {e}"],
                "traceback": traceback.format_exc(),
            }
            log(f"hopkur bench: {name} failed: {type(e).__name__}: {e}")
        result["load"] = [load0, suite.T.load_average()]
        result["seconds"] = time.perf_counter() - start
        results[name] = result
        machine["load_end"] = suite.T.load_average()
        record = _jsonable({"machine": machine, "results": results})
        out.write_json("results.json", record)
        markdown = suite.render_markdown(results, machine)
        out.write_bytes("results.md", markdown.encode())
    if settings.update_readme:
        update_readme(folder / "README.md", suite.render_markdown(results, machine))
        log(f"hopkur bench: updated {folder / 'README.md'}")
    out.complete()
    out.close()
    log(f"hopkur bench: results in {out.path}")
    return 1 if failures else 0
