"""The `hopkur` command: runs the applications and writes results to an output folder.

Each subcommand lives in `hopkur/commands/<name>.py` and exposes
`add_parser(subparsers)` (registering its flags, with help for each) and
`run(args) -> int`. Conventions shared by all subcommands are in
`hopkur/commands/_common.py`: an output folder that is marked complete only at the end,
JSON written atomically, exit code 2 with one clear line for bad flags or files.

Exit codes: 0 success; 1 a run that finished but failed (non-finite results, an
unsolved puzzle) or an internal error; 2 bad input or an operating-system failure
(one line, no traceback); 130 interrupted (Ctrl-C). `HOPKUR_DEBUG=1` shows the
traceback instead of the one-line message.
"""

import argparse
import importlib
import os
import signal
import sys
import threading
import time

from .commands._errors import UsageError
from .commands._folder import os_error_text
from .experiments._io import InputFileError


# Seconds the main thread gets to handle Ctrl-C itself (raising KeyboardInterrupt,
# saving a checkpoint) before the watchdog ends the process: a long XLA computation
# does not return to Python, so without the watchdog Ctrl-C would wait for it.
INTERRUPT_GRACE = 3.0


# name -> module under hopkur.commands; modules are imported only when needed, so that
# `hopkur --help` is fast and a missing optional piece cannot break other commands.
COMMANDS = {
    "demo": "demo",
    "simulate": "simulate",
    "classify": "classify",
    "edit": "edit",
    "capacity": "capacity",
    "sudoku": "sudoku",
    "objects": "objects",
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


class Parser(argparse.ArgumentParser):
    """argparse's parser, with a bad flag reported as one line (exit code 2)."""

    def error(self, message: str):  # pyright: ignore[reportIncompatibleMethodOverride]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hopkur",
        description=(
            "Energy-based neural dynamics: Hopfield networks, Kuramoto oscillators on "
            "spheres and their coupling. Each subcommand writes JSON metrics, "
            "checkpoints and PNG figures to an output folder."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in _available().items():
        module.add_parser(sub)
    return parser


def _report(error: Exception) -> tuple[int, str]:
    """The exit code and the one line for an exception that ended a run."""
    if isinstance(error, OSError):
        return 2, f"error: {os_error_text(error)}"
    if isinstance(error, InputFileError):
        return 2, f"error: {_first_line(error)}"
    if isinstance(error, FloatingPointError):
        return 1, f"error: {_first_line(error)}"
    if _MAX_STEPS in str(error):
        return 1, (
            "error: a solve needed more steps than its solver budget (the maximum "
            "number of solver steps was reached); raise --max-steps where the command "
            "has it, or use a smaller system or a shorter time span"
        )
    return 1, (
        f"internal error: {type(error).__name__}: {_first_line(error)} (run with "
        "HOPKUR_DEBUG=1 for the traceback, and please report it)"
    )


# diffrax's message when a solve runs out of steps (inside an EquinoxRuntimeError).
_MAX_STEPS = "maximum number of solver steps was reached"

# The header line of an EquinoxRuntimeError, which carries no information.
_EQX_HEADER = "Above is the stack outside of JIT"


def _first_line(error: BaseException) -> str:
    """The first informative line of an exception's message (for an
    EquinoxRuntimeError, the raised message below its header)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if lines and lines[0].startswith(_EQX_HEADER):
        for line in lines[1:]:
            if line.startswith("equinox.EquinoxRuntimeError:"):
                return line.split(":", 1)[1].strip()
    return (lines or [type(error).__name__])[0]


def _debug() -> bool:
    return os.environ.get("HOPKUR_DEBUG", "") not in ("", "0")


def install_interrupt_watchdog(name: str = "hopkur") -> None:
    """Makes Ctrl-C end the process within `INTERRUPT_GRACE` seconds (exit 130) even
    while the main thread is inside a long compiled computation. The signal's own
    handler still runs first whenever Python regains control, so loops that save a
    checkpoint on `KeyboardInterrupt` do so; every file hopkur writes is replaced
    atomically, so ending the process between writes loses nothing written."""
    if threading.current_thread() is not threading.main_thread():
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd)

    def watch():
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if signal.SIGINT in data:
                time.sleep(INTERRUPT_GRACE)
                print(f"{name}: interrupted", file=sys.stderr, flush=True)
                os._exit(130)

    threading.Thread(target=watch, name="hopkur-interrupt", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """Runs the `hopkur` command line `argv` (default: `sys.argv[1:]`, with the Ctrl-C
    watchdog) and returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    name = f"hopkur {args.command}"
    if argv is None:
        install_interrupt_watchdog(name)
    try:
        return int(args.run(args) or 0)
    except UsageError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        if argv is None:
            # A compiled computation may still be running in XLA's threads; ending
            # the interpreter normally under it can crash, so end the process now
            # (every file hopkur writes is complete or untouched).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except Exception as e:
        if _debug():
            raise
        code, text = _report(e)
        print(f"{name}: {text}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
