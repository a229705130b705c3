"""`hopkur kernels build | status`: the compiled CPU kernels of edge couplings.

`build` compiles them once per machine into hopkur's cache (`$HOPKUR_CACHE`, default
`~/.cache/hopkur`), with the record of the build (size and sha256) beside the library;
an intact library is kept (`--force` compiles anyway), a damaged one is replaced.
`status` says whether they are built and usable, and why not. Neither writes an output
folder. `EdgeCoupling(method="auto")` uses the kernels once built; nothing is ever
compiled as a side effect of running a model.
"""

import argparse

from ._common import HelpFormatter, UsageError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "kernels",
        help="build or inspect the compiled CPU kernels of edge couplings",
        formatter_class=HelpFormatter,
        description=(
            "Builds (once per machine) or inspects hopkur's compiled CPU kernels for "
            "edge couplings (EdgeCoupling and the Hopfield-Kuramoto edge couplings, "
            "method='native'; method='auto' uses them once built). They are compiled "
            "with the system's C++ compiler ($CXX, else c++/g++/clang++) and cached "
            "in $HOPKUR_CACHE/native (default ~/.cache/hopkur/native)."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="compile the kernels into the cache (skipped if already built)",
        formatter_class=HelpFormatter,
    )
    build.add_argument(
        "--force", action="store_true", help="compile even if an intact build exists"
    )
    actions.add_parser(
        "status",
        help="say whether the kernels are built and usable, and why not",
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(run=run, action=None, force=False)
    return parser


def run(args: argparse.Namespace) -> int:
    from .._native import _library

    if args.action == "build":
        try:
            status, seconds = _library.build(force=args.force)
        except _library.BuildError as error:
            raise UsageError(f"cannot build the kernels: {error}") from None
        except OSError as error:
            raise UsageError(
                f"cannot write the kernels' cache ({error.strerror or error}: "
                f"{error.filename or ''}); set $HOPKUR_CACHE to a writable folder"
            ) from None
        if status.state != _library.BUILT:  # e.g. HOPKUR_NATIVE=0
            raise UsageError(f"the kernels were built but are {status.detail}")
        if seconds is None:
            print(f"hopkur kernels: already {status.detail}")
        else:
            print(f"hopkur kernels: compiled in {seconds:.1f} s, {status.detail}")
        return 0
    if args.action == "status":
        status = _library.inspect()
        print(f"hopkur kernels: {status.detail}")
        return 0 if status.state == _library.BUILT else 1
    raise UsageError(
        "choose an action: `hopkur kernels build` or `hopkur kernels status`"
    )
