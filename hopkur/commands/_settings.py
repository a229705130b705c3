"""Typed, validated settings of the `hopkur` subcommands: one frozen dataclass per
command, and the one place where flags and TOML files map onto it.

A settings class lists its fields with `setting(default, help, ...)`, which records the
flag's help, its choices and its range. From the class, `add_flags` makes the argparse
flags and `resolve` builds the validated instance from

1. the field defaults,
2. the keys of a TOML file (`--config FILE`; keys are the field names, `-` or `_`),
3. the flags given on the command line,

in that order, with one error style (`UsageError`, exit code 2):

- TOML values must have the field's type: no coercion (`"no"` is not a boolean, `8.7`
  is not an integer, `1` is not `true`); an integer is accepted for a float.
- Every number is checked for finiteness and range, integers included (a seed of
  `10**20` is refused here rather than overflowing later). Each integer field has an
  upper bound (default `2**31 - 1`).
- A command's own consistency checks (`check()` on the class) run last.

On `--resume` the settings of the run are read back from its `config.json` and win;
a flag or TOML key that conflicts with them is refused, except for the fields marked
`on_resume="free"` (for example a time budget, which may be extended).
"""

import argparse
import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ._errors import UsageError


MAX_INT = 2**31 - 1

# Boolean run-control flags (not settings) that a `--config` file may also set.
CONTROL_KEYS = ("quiet",)

_SPEC = "hopkur_setting"


@dataclasses.dataclass(frozen=True)
class _Spec:
    help: str
    choices: tuple | None
    minimum: int | float | None
    maximum: int | float | None
    above: int | float | None
    below: int | float | None
    group: str | None
    flag: str | None
    metavar: str | None
    on_resume: str


def setting(
    default: Any,
    help: str,
    *,
    choices: Sequence | None = None,
    minimum: int | float | None = None,
    maximum: int | float | None = None,
    above: int | float | None = None,
    below: int | float | None = None,
    group: str | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    on_resume: Literal["same", "free"] = "same",
) -> Any:
    """A field of a settings dataclass.

    **Arguments:**

    - `default`: the default value.
    - `help`: the flag's help.
    - `choices`: the allowed values.
    - `minimum`, `maximum`: inclusive bounds; `above`, `below`: exclusive ones.
    - `group`: the argparse group the flag is listed in.
    - `flag`: the flag's name without `--` (default: the field name, `_` as `-`).
    - `metavar`: argparse's metavar.
    - `on_resume`: `"same"` (default): a `--resume` refuses a different value;
        `"free"`: a `--resume` may change it.
    """
    spec = _Spec(
        help,
        None if choices is None else tuple(choices),
        minimum,
        maximum,
        above,
        below,
        group,
        flag,
        metavar,
        on_resume,
    )
    return dataclasses.field(default=default, metadata={_SPEC: spec})


def _spec(f: dataclasses.Field) -> _Spec:
    spec = f.metadata.get(_SPEC)
    assert spec is not None, f"field {f.name} needs `setting(...)`; please report"
    return spec


def flag_name(f: dataclasses.Field) -> str:
    """`--name` of a settings field."""
    return "--" + (_spec(f).flag or f.name.replace("_", "-"))


def _base_type(f: dataclasses.Field, hints: dict) -> tuple[type, bool]:
    """`(type, optional)` of a field annotated `T` or `T | None`."""
    hint = hints[f.name]
    optional = False
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        parts = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(parts) < len(typing.get_args(hint))
        assert len(parts) == 1, f"unsupported type of {f.name}; please report"
        hint = parts[0]
    assert hint in (int, float, str, bool), f"unsupported type of {f.name}"
    return hint, optional


def fields(cls) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _default_text(value: Any) -> str:
    return "" if value is None or value is False else f" (default: {value})"


def add_flags(parser: argparse.ArgumentParser, cls) -> None:
    """Adds one flag per field of the settings class `cls` to `parser`. Flags not
    given are absent from the parsed namespace (so that `resolve` can tell them from
    defaults)."""
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for f in fields(cls):
        spec = _spec(f)
        target: Any = parser
        if spec.group is not None:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group)
            target = groups[spec.group]
        kind, _ = _base_type(f, hints)
        text = spec.help
        if "default" not in text and text != argparse.SUPPRESS:
            text += _default_text(f.default)
        options: dict[str, Any] = {
            "dest": f.name,
            "help": text if text == argparse.SUPPRESS else text.replace("%", "%%"),
            "default": argparse.SUPPRESS,
        }
        if kind is bool:
            options["action"] = "store_true"
        else:
            options["type"] = {int: _parse_int, float: _parse_float, str: str}[kind]
            if spec.choices is not None:
                options["choices"] = spec.choices
            if spec.metavar is not None:
                options["metavar"] = spec.metavar
        target.add_argument(flag_name(f), **options)


def _type_error(where: str, f, kind: type, optional: bool, value: Any) -> UsageError:
    name = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}
    expected = name[kind] + (" (or omitted)" if optional else "")
    return UsageError(f"{where}'{f.name}' must be {expected}; got {value!r}")


def _coerce_exact(where: str, f, kind: type, optional: bool, value: Any) -> Any:
    """A TOML or JSON value of the field's type, or a `UsageError` (no coercion)."""
    if value is None and optional:
        return None
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise _type_error(where, f, kind, optional, value)
    return value


def check_value(f: dataclasses.Field, value: Any, hints: dict) -> None:
    """Checks one field's value against its type's finiteness and its range."""
    spec = _spec(f)
    kind, optional = _base_type(f, hints)
    flag = flag_name(f)
    if value is None:
        if not optional:
            raise UsageError(f"{flag} needs a value")
        return
    if spec.choices is not None and value not in spec.choices:
        choices = ", ".join(map(str, spec.choices))
        raise UsageError(f"{flag} must be one of {choices}; got {value!r}")
    if kind in (int, float):
        if kind is float and not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number; got {value}")
        maximum = spec.maximum
        if kind is int and maximum is None:
            maximum = MAX_INT
        minimum = spec.minimum
        if kind is int and minimum is None and spec.above is None:
            minimum = -MAX_INT
        v = _number(value)
        if minimum is not None and value < minimum:
            raise UsageError(f"{flag} must be at least {_number(minimum)}; got {v}")
        if maximum is not None and value > maximum:
            raise UsageError(f"{flag} must be at most {_number(maximum)}; got {v}")
        if spec.above == 0 and not value > 0:
            raise UsageError(f"{flag} must be positive; got {v}")
        if spec.above is not None and not value > spec.above:
            raise UsageError(f"{flag} must be above {_number(spec.above)}; got {v}")
        if spec.below is not None and not value < spec.below:
            raise UsageError(f"{flag} must be below {_number(spec.below)}; got {v}")


def _number(value: int | float) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def validate(settings: Any) -> Any:
    """Checks every field of a settings instance, then its `check()` method."""
    hints = typing.get_type_hints(type(settings))
    for f in fields(type(settings)):
        check_value(f, getattr(settings, f.name), hints)
    check = getattr(settings, "check", None)
    if check is not None:
        check()
    return settings


def read_toml(path: str | Path) -> dict[str, Any]:
    """The table of a TOML file, with file problems as `UsageError`s."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--config {path}: is a folder, not a TOML file") from None
    except PermissionError:
        raise UsageError(f"--config {path}: permission denied") from None
    except UnicodeDecodeError:
        raise UsageError(f"--config {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--config {path}: not valid TOML ({e})") from None
    except OSError as e:
        raise UsageError(f"--config {path}: cannot read it ({e.strerror})") from None


def from_table(cls, table: dict[str, Any], where: str) -> dict[str, Any]:
    """Field values of a TOML/JSON table, type-checked exactly; unknown keys are
    errors. `where` prefixes the messages (e.g. `"--config run.toml: "`)."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in table.items():
        name = str(key).replace("-", "_")
        if name not in by_name:
            raise UsageError(f"{where}unknown key '{key}'")
        f = by_name[name]
        kind, optional = _base_type(f, hints)
        values[name] = _coerce_exact(where, f, kind, optional, value)
    return values


def explicit_flags(cls, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of `cls` given as flags on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}


def resolve(
    cls,
    args: argparse.Namespace,
    *,
    saved: dict[str, Any] | None = None,
    saved_where: str = "",
):
    """The validated settings of a command: defaults, then `--config`'s keys, then
    the explicit flags. With `saved` (the settings of a run being resumed), the saved
    values win and a conflicting flag or key is a `UsageError`, except for fields
    marked `on_resume="free"`.
    """
    given: dict[str, Any] = {}
    config = getattr(args, "config", None)
    if config:
        table = dict(read_toml(config))
        # Run-control flags that a TOML file may set too.
        for key in CONTROL_KEYS:
            if key in table and hasattr(args, key):
                value = table.pop(key)
                if not isinstance(value, bool):
                    raise UsageError(
                        f"--config {config}: '{key}' must be true/false; got {value!r}"
                    )
                setattr(args, key, getattr(args, key) or value)
        given.update(from_table(cls, table, f"--config {config}: "))
    given.update(explicit_flags(cls, args))
    if saved is None:
        return validate(cls(**given))
    values = from_table(cls, saved, saved_where)
    missing = [f.name for f in fields(cls) if f.name not in values]
    if missing:
        raise UsageError(f"{saved_where}missing settings {', '.join(missing)}")
    previous = validate(cls(**values))
    by_name = {f.name: f for f in fields(cls)}
    conflicts = []
    for name, value in given.items():
        # Settings with per-model defaults are saved unset (None); compare against
        # the value the run used.
        old = (
            previous.value(name)
            if hasattr(previous, "value")
            else getattr(previous, name)
        )
        if _spec(by_name[name]).on_resume == "free":
            values[name] = value
        elif value != old:
            conflicts.append(f"{flag_name(by_name[name])} {value} (the run has {old})")
    if conflicts:
        raise UsageError(
            "--resume: the run was started with other settings: "
            + "; ".join(conflicts)
            + "; drop these flags, or start again with --overwrite"
        )
    return validate(cls(**values))


def to_dict(settings: Any) -> dict[str, Any]:
    """The fields of a settings instance, for `config.json` and metrics."""
    return dataclasses.asdict(settings)
