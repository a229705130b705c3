"""The `hopkur` command: runs the applications and writes results to an output folder.

Each subcommand lives in `hopkur/commands/<name>.py` and exposes
`add_parser(subparsers)` (registering its flags, with help for each) and
`run(args) -> int`. Conventions shared by all subcommands are in
`hopkur/commands/_common.py`: an output folder that is marked complete only at the end,
JSON written atomically, exit code 2 with one clear line for bad flags or files.
"""

import argparse
import importlib
import sys

from .commands._common import UsageError


# name -> module under hopkur.commands; modules are imported only when needed, so that
# `hopkur --help` is fast and a missing optional piece cannot break other commands.
COMMANDS = {
    "demo": "demo",
    "simulate": "simulate",
    "classify": "classify",
    "edit": "edit",
    "capacity": "capacity",
    "sudoku": "sudoku",
    "bench": "bench",
    "kernels": "kernels",
}


def _available():
    found = {}
    for name, module in COMMANDS.items():
        try:
            found[name] = importlib.import_module(f"hopkur.commands.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"hopkur.commands.{module}":
                raise
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hopkur",
        description=(
            "Energy-based neural dynamics: Hopfield networks, Kuramoto oscillators on "
            "spheres and their coupling. Each subcommand writes JSON metrics, "
            "checkpoints and PNG figures to an output folder."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _available().items():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except UsageError as e:
        print(f"hopkur {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hopkur {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
