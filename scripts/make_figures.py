"""Regenerates every figure of the documentation site.

Runs each script `scripts/figures/*.py` in its own Python process, from the repository
root, `--jobs` at a time (default 2; the longest first); each writes its PNGs into
`docs/figures/`. With `--fast`, passes `--fast` to every script (small runs, to check
that the scripts work; do not commit the figures they produce). Reports the time each
script took, the figures it wrote, and the total; exits with status 1 if any script
failed (after running the others).

    python scripts/make_figures.py            # all figures, full size (`make figures`)
    python scripts/make_figures.py --fast     # quick check
    python scripts/make_figures.py --only kuramoto_transition sphere_drift
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "figures"
FIGURES = ROOT / "docs" / "figures"


# Rough run times (s) on 2 cores, to start the longest scripts first.
_EXPECTED = {
    "sudoku_energy": 3300,
    "memory_editing": 600,
    "noisy_spheres": 300,
    "sakaguchi": 150,
    "object_discovery": 150,
    "hopfield_capacity": 120,
    "frequency_distributions": 90,
    "kuramoto_transition": 90,
    "sudoku_table": 90,
    "energy_trajectories": 40,
    "sphere_drift": 40,
}
# Figure-name prefixes of scripts whose figures are not named after them.
_PREFIXES: dict[str, str] = {}
_T0_WALL = time.time()
_T0_PERF = time.perf_counter()


def start_wall(perf_start: float) -> float:
    """The wall-clock time of a `time.perf_counter()` reading (for file times)."""
    return _T0_WALL + (perf_start - _T0_PERF) - 1.0


def _format(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make_figures.py",
        description="Runs every scripts/figures/*.py to regenerate docs/figures/*.png.",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="pass --fast to every script (small runs, for checking the scripts)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="scripts run at the same time (each JAX process alone keeps about 1.4 of "
        "2 cores busy; default: 2)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these scripts (file names without .py)",
    )
    args = parser.parse_args(argv)

    scripts = sorted(p for p in SCRIPTS.glob("*.py") if not p.name.startswith("_"))
    if args.only:
        names = {p.stem: p for p in scripts}
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            print(
                f"make_figures.py: error: no script named {', '.join(unknown)} in "
                f"{SCRIPTS.relative_to(ROOT)} (have: {', '.join(names) or 'none'})",
                file=sys.stderr,
            )
            return 2
        scripts = [names[name] for name in args.only]
    if not scripts:
        print(
            f"make_figures.py: no scripts in {SCRIPTS.relative_to(ROOT)}",
            file=sys.stderr,
        )
        return 2

    FIGURES.mkdir(parents=True, exist_ok=True)
    mode = " (--fast)" if args.fast else ""
    print(f"Regenerating figures with {len(scripts)} scripts{mode}", flush=True)
    results = []
    start_all = time.perf_counter()
    # Longest first (from the order below), so that short scripts fill the gaps.
    queue = sorted(scripts, key=lambda p: _EXPECTED.get(p.stem, 0), reverse=True)
    running: list[tuple[Path, subprocess.Popen, float]] = []
    jobs = max(1, args.jobs)
    while queue or running:
        while queue and len(running) < jobs:
            script = queue.pop(0)
            command = [sys.executable, str(script)] + (["--fast"] if args.fast else [])
            print(f"== started {script.relative_to(ROOT)}", flush=True)
            proc = subprocess.Popen(command, cwd=ROOT)
            running.append((script, proc, time.perf_counter()))
        time.sleep(0.5)
        for item in list(running):
            script, proc, start = item
            if proc.poll() is None:
                continue
            running.remove(item)
            elapsed = time.perf_counter() - start
            written = sorted(
                p.name
                for p in FIGURES.glob(f"{_PREFIXES.get(script.stem, script.stem)}*.png")
                if p.stat().st_mtime >= start_wall(start)
            )
            results.append((script.stem, proc.returncode, elapsed, written))
            status = (
                "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            )
            print(f"== {script.stem}: {status} in {_format(elapsed)}", flush=True)
    total = time.perf_counter() - start_all

    results.sort()
    print("\nscript                      time     status  figures written")
    for name, returncode, elapsed, written in results:
        status = "ok" if returncode == 0 else "FAILED"
        figures = ", ".join(written) or "-"
        print(f"{name:26s}  {_format(elapsed):>7s}  {status:6s}  {figures}")
    failed = [name for name, returncode, _, _ in results if returncode != 0]
    print(f"total: {_format(total)} ({total:.0f} s){mode}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
