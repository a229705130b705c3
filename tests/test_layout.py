"""The package's layout rules: abstract/final discipline (STYLE.md, as in equinox), the
size of library modules, and the core's imports."""

import abc
import importlib
import inspect
import pathlib
import pkgutil

import equinox as eqx
import pytest

import hopkur


ROOT = pathlib.Path(hopkur.__file__).parent

# Every package is checked (hopkur.nn's couplings subclass the core's abstract bases
# only), and nothing is allowed: the lists stay empty.
_SKIPPED_PACKAGES: tuple[str, ...] = ()
_KNOWN_SUBCLASSED: set[str] = set()
# Concrete methods of abstract bases that subclasses override (none: optional hooks
# such as `_hoisted` and `retract` are abstract, and every final class implements them).
_KNOWN_OVERRIDES: set[tuple[str, str]] = set()


def _modules():
    names = ["hopkur"]
    for info in pkgutil.walk_packages([str(ROOT)], "hopkur."):
        if not info.name.startswith(_SKIPPED_PACKAGES):
            names.append(info.name)
    return [importlib.import_module(name) for name in names]


def _classes():
    seen = {}
    for module in _modules():
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, eqx.Module)
                and obj.__module__.startswith("hopkur")
                and not obj.__module__.startswith(_SKIPPED_PACKAGES)
            ):
                seen[obj.__qualname__, obj.__module__] = obj
    return list(seen.values())


def _is_abstract(cls) -> bool:
    return cls.__name__.startswith(("Abstract", "_Abstract")) or bool(
        getattr(cls, "__abstractmethods__", ())
    )


def _concrete_members(cls):
    for name, value in vars(cls).items():
        if name.startswith("__") or name in ("_abc_impl",):
            continue
        function = value.fget if isinstance(value, property) else value
        if callable(function) and not getattr(function, "__isabstractmethod__", False):
            yield name


def test_no_concrete_class_is_subclassed():
    bad = []
    for cls in _classes():
        for base in cls.__mro__[1:]:
            if (
                issubclass(base, eqx.Module)
                and base.__module__.startswith("hopkur")
                and not _is_abstract(base)
                and base.__name__ not in _KNOWN_SUBCLASSED
            ):
                bad.append(f"{cls.__module__}.{cls.__qualname__}({base.__name__})")
    assert not bad, "concrete classes are subclassed: " + ", ".join(sorted(bad))


def test_no_concrete_method_of_an_abstract_base_is_overridden():
    bad = []
    for cls in _classes():
        for base in cls.__mro__[1:]:
            if not (base.__module__.startswith("hopkur") and _is_abstract(base)):
                continue
            for name in _concrete_members(base):
                if (base.__name__, name) in _KNOWN_OVERRIDES:
                    continue
                owner = next(c for c in cls.__mro__ if name in vars(c))
                if owner is not base:
                    bad.append(f"{owner.__qualname__}.{name} overrides {base.__name__}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_abstract_bases_are_abstract():
    # the fixes above rely on abstract methods: a subclass that forgets one fails
    assert "derivative" in hopkur.AbstractInteraction.__abstractmethods__
    assert "is_low_rank" in hopkur.AbstractHopfieldKuramotoCoupling.__abstractmethods__
    assert isinstance(hopkur.AbstractInteraction, abc.ABCMeta)
    hooks = {"_hoisted", "retract", "retract_is_identity"}
    assert hooks <= hopkur.AbstractEnergySystem.__abstractmethods__
    assert "_hoisted" in hopkur.AbstractHopfieldKuramotoCoupling.__abstractmethods__
    coupling = {"_hoisted", "num_oscillators", "dim", "is_symmetric", "check_size"}
    assert coupling <= hopkur.AbstractOscillatorCoupling.__abstractmethods__


# Library modules longer than about 500 lines state why at their top (issue 17, 4).
MAX_LINES = 520


@pytest.mark.parametrize(
    "path",
    sorted(ROOT.rglob("*.py")),
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_module_length(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) <= MAX_LINES:
        return
    head = "\n".join(lines[:40]).lower()
    assert "longer than" in head or "long because" in head, (
        f"{path.relative_to(ROOT)} has {len(lines)} lines and its docstring does not "
        "say why it is one module (write 'This module is long because ...' at its "
        "top)."
    )
