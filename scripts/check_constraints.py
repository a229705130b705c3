"""Check that every package installed in this environment is pinned in constraints.txt.

`make venv` and `make docs-venv` install with `pip install -c constraints.txt`, so a
package that is installed at another version than its pin, or not pinned at all (a new
dependency added to pyproject.toml without a pin), means the file has fallen behind.
Run by CI (`make check-constraints`) after everything is installed. Pins of packages
that are not installed (for example the docs extra in a venv without it) are fine.

Usage: `python scripts/check_constraints.py [constraints.txt]`; exits with 1 on a
problem.
"""

import re
import sys
from importlib import metadata
from pathlib import Path


# Installed by `python -m venv` itself, not by pip from the constraints.
_SEEDED = {"setuptools", "wheel"}
_PROJECT = "hopkur"


def normalise(name: str) -> str:
    """A distribution name in PEP 503 normal form (`Foo_Bar` -> `foo-bar`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(text: str) -> dict[str, str]:
    """`name==version` lines of a constraints file, by normalised name."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"not an exact pin (name==version): {line!r}")
        pins[normalise(name.strip())] = version.strip()
    return pins


def problems(pins: dict[str, str], installed: dict[str, str]) -> list[str]:
    """What is installed but unpinned, or installed at another version."""
    out = []
    for name, version in sorted(installed.items()):
        if name in _SEEDED or name == _PROJECT:
            continue
        if name not in pins:
            out.append(f"{name}=={version} is installed but not pinned")
        elif pins[name] != version:
            out.append(f"{name}=={version} is installed; the pin is {pins[name]}")
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "constraints.txt")
    pins = read_pins(path.read_text())
    installed = {
        normalise(d.metadata["Name"]): d.version for d in metadata.distributions()
    }
    found = problems(pins, installed)
    for line in found:
        print(f"{path}: {line}")
    if found:
        print(
            f"{path} has fallen behind the environment: update the pins to the "
            "tested versions (see docs/development.md)."
        )
        return 1
    print(f"{path}: all {len(installed)} installed packages match their pins.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
