"""`hopkur bench`: runs the benchmark suite in `benchmarks/` and writes the results.

Writes `results.json` (every measurement, the machine, the load average per case) and
`results.md` (the Markdown tables) into the output folder, after each case, and
`COMPLETE` at the end. With `--update-readme` the tables also replace the block between
the markers in `benchmarks/README.md`. The suite lives in the source checkout (it is not
part of the installed package): run the command from the repository, or point
`--benchmarks-dir` at the folder.
"""

import argparse
import datetime
import importlib.util
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from ._common import (
    add_common_flags,
    apply_config,
    atomic_write_bytes,
    HelpFormatter,
    OutputDir,
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
)


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
    add_common_flags(parser, default_out="outputs/bench")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few repeats: a smoke run of every case in about a minute",
    )
    # Toy sizes, for the test of the runner (not a benchmark).
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        metavar="CASES",
        default=None,
        help=f"comma-separated cases to run (default: all): {', '.join(CASE_NAMES)}",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds for fast workloads (default: 5; 2 with --quick)",
    )
    parser.add_argument(
        "--slow-repeats",
        type=int,
        default=None,
        help="timed rounds for solves and training steps (default: 3; 1 with --quick)",
    )
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="also write the tables into benchmarks/README.md (between its markers)",
    )
    parser.add_argument(
        "--benchmarks-dir",
        metavar="DIR",
        default=None,
        help="the benchmarks folder (default: ./benchmarks, or the one next to the "
        "hopkur package)",
    )
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
    import jaxlib

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
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
    args = apply_config(args._parser, args)
    if getattr(args, "x64", False):
        raise UsageError(
            "--x64: the suite measures float32 (the precision of the research code); "
            "run without --x64"
        )
    names = CASE_NAMES
    if args.only is not None:
        names = tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = [n for n in names if n not in CASE_NAMES]
    if unknown or not names:
        raise UsageError(
            f"--only: unknown case(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(CASE_NAMES)}"
        )
    level = "tiny" if args.tiny else "quick" if args.quick else "full"
    small = level != "full"
    repeats = args.repeats if args.repeats is not None else (2 if small else 5)
    slow = args.slow_repeats if args.slow_repeats is not None else (1 if small else 3)
    if repeats < 1 or slow < 1:
        raise UsageError("--repeats and --slow-repeats must be at least 1")

    folder = _find_benchmarks(args.benchmarks_dir)
    out = OutputDir(args.out, overwrite=args.overwrite)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    suite = _import_suite(folder)
    command = (
        "hopkur bench" + {"full": "", "quick": " --quick", "tiny": " --tiny"}[level]
    )
    if args.only:
        command += f" --only {','.join(names)}"
    machine = machine_info(command)
    cfg = suite.Config(level=level, repeats=repeats, slow_repeats=slow, log=log)
    machine["load_start"] = suite.T.load_average()
    results, failures = {}, []
    for name in names:
        log(f"hopkur bench: {name}")
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
        atomic_write_bytes(out.file("results.md"), markdown.encode())
    if args.update_readme:
        update_readme(folder / "README.md", suite.render_markdown(results, machine))
        log(f"hopkur bench: updated {folder / 'README.md'}")
    out.complete()
    log(f"hopkur bench: results in {out.path}")
    return 1 if failures else 0
