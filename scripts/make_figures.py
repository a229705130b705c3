"""Regenerates every figure of the documentation site.

Runs each script `scripts/figures/*.py` in its own Python process, from the repository
root, in alphabetical order; each writes its PNGs into `docs/figures/`. With `--fast`,
passes `--fast` to every script (small runs, to check that the scripts work; do not
commit the figures they produce). Reports the time each script took, the figures it
wrote, and the total; exits with status 1 if any script failed (after running the
others).

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


def _pngs() -> dict[Path, float]:
    return (
        {p: p.stat().st_mtime for p in FIGURES.glob("*.png")}
        if FIGURES.exists()
        else {}
    )


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
    for script in scripts:
        before = _pngs()
        command = [sys.executable, str(script)] + (["--fast"] if args.fast else [])
        print(f"\n== {script.relative_to(ROOT)}", flush=True)
        start = time.perf_counter()
        returncode = subprocess.run(command, cwd=ROOT).returncode
        elapsed = time.perf_counter() - start
        after = _pngs()
        written = sorted(p.name for p, t in after.items() if before.get(p) != t)
        results.append((script.stem, returncode, elapsed, written))
        status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
        print(f"== {script.stem}: {status} in {_format(elapsed)}", flush=True)
    total = time.perf_counter() - start_all

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
