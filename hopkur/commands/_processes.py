"""`--processes N`: one command run as N local processes on JAX's distributed runtime.

The command's own process is the *parent*: it checks the settings and the output
folder, then starts N *children* (`python -m hopkur.cli <command> ...` with the same
settings), each told its place by `hopkur.distributed`'s environment variables
(`HOPKUR_COORDINATOR_ADDRESS` = a free local port, `HOPKUR_NUM_PROCESSES`,
`HOPKUR_PROCESS_ID`, `HOPKUR_LOCAL_DEVICE_COUNT`). Only child 0 opens the output folder
and writes to it; its standard error (progress, summary) is the parent's; the others'
is kept and shown only if they fail. The first child to fail stops the others.

A process started with `HOPKUR_PROCESS_ID` already set is a child (of this parent, or
of a cluster's launcher that sets the variables itself).
"""

import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time

from ._errors import UsageError
from ._settings import flag_name


# Seconds a child waits for the coordinator and its peers (`initialize(timeout=...)`).
CHILD_TIMEOUT = 120


def is_child() -> bool:
    """Whether this process is one of several started by a launcher."""
    return bool(os.environ.get("HOPKUR_PROCESS_ID", "").strip())


def process_id() -> int:
    """This process's index among the children (0 when not a child)."""
    text = os.environ.get("HOPKUR_PROCESS_ID", "").strip()
    return int(text) if text.isdigit() else 0


def initialize(processes: int, devices: int) -> None:
    """In a child: starts the runtime from the environment (`devices` host devices
    per process unless the launcher set `HOPKUR_LOCAL_DEVICE_COUNT`)."""
    import hopkur.distributed as hd

    declared = os.environ.get("HOPKUR_NUM_PROCESSES", "").strip()
    if declared and declared != str(processes):
        raise UsageError(
            f"--processes {processes} but HOPKUR_NUM_PROCESSES is {declared}; they "
            "must agree"
        )
    count = None if os.environ.get("HOPKUR_LOCAL_DEVICE_COUNT") else devices
    hd.initialize(
        num_processes=processes, local_device_count=count, timeout=CHILD_TIMEOUT
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_flags(settings) -> list[str]:
    """Command-line flags that give a child exactly these settings."""
    flags = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None or value is False:
            continue
        flags.append(flag_name(f))
        if value is not True:
            flags.append(repr(value) if isinstance(value, float) else str(value))
    return flags


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    useful = [line for line in lines if not line.startswith(("[Gloo]", "I1", "W1"))]
    return (useful or lines or [""])[-1]


def launch(command: str, settings, args, *, processes: int, devices: int) -> int:
    """Runs `command` with `settings` as `processes` local children and returns the
    exit code: 0 when all succeed, else the first failing child's."""
    port = _free_port()
    base = dict(os.environ)
    base.update(
        HOPKUR_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
        HOPKUR_NUM_PROCESSES=str(processes),
        HOPKUR_LOCAL_DEVICE_COUNT=str(devices),
    )
    # A first try on one machine: CPU processes unless the user chose a platform
    # (N processes would otherwise all claim the same accelerators).
    base.setdefault("JAX_PLATFORMS", "cpu")
    flags = [command, *child_flags(settings), "--out", str(args.out)]
    if args.overwrite:
        flags.append("--overwrite")
    children: list[subprocess.Popen] = []
    logs: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hopkur-processes-") as tmp:
        try:
            for i in range(processes):
                env = dict(base, HOPKUR_PROCESS_ID=str(i))
                quiet = ["--quiet"] if (i or args.quiet) else []
                log = os.path.join(tmp, f"process-{i}.log")
                logs.append(log)
                stderr = None if i == 0 else open(log, "w")  # noqa: SIM115
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "hopkur.cli", *flags, *quiet],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                )
                if stderr is not None:
                    stderr.close()
            return _wait(command, children, logs)
        except KeyboardInterrupt:
            _stop(children)
            return 130
        finally:
            _stop(children)


def _stop(children) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait(command: str, children, logs) -> int:
    count = len(children)
    while True:
        codes = [child.poll() for child in children]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            i = failed[0]
            code = codes[i]
            assert code is not None
            _stop(children)
            detail = "" if i == 0 else _last_line(logs[i])
            print(
                f"hopkur {command}: error: process {i} of {count} failed (exit code "
                f"{code})" + (f": {detail}" if detail else ""),
                file=sys.stderr,
            )
            return code if code > 0 else 1
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.1)
