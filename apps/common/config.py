"""Commands' settings as frozen dataclasses, their flags derived from the fields.

Every command of every app has one config class: a frozen dataclass whose
fields are declared with `setting(...)`. The field declares its flag (name,
help, allowed values) once; `add_arguments` turns a config class into
`argparse` arguments, and `from_arguments` builds the config from the parsed
flags. Values are checked twice by the same `Check` objects: by argparse while
parsing (a bad flag exits with status 2 and one line naming the flag, the
value and what is allowed) and by the dataclass itself when library code
builds one, in which case the error names the field rather than a flag.

    @dataclasses.dataclass(frozen=True)
    class Train(Config):
        epochs: int = setting(6, "passes over the training data", check=at_least(1))
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from apps.common.errors import InputError

C = TypeVar("C", bound="Config")


class Check:
    """Converts a flag's text to a value and says what is allowed.

    Subclasses implement `convert` (text -> value, raising `ValueError` with
    a message) and `validate` (a value -> None, raising `ValueError`), and
    `allowed` describes the valid values in words.
    """

    allowed = "a value"

    def convert(self, text: str) -> Any:
        return text

    def validate(self, value: Any) -> None:
        return None

    def __call__(self, text: str) -> Any:
        """The argparse `type=`: an `ArgumentTypeError` names the value and what is allowed."""
        try:
            value = self.convert(text)
            self.validate(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{error}, got {text!r}") from None
        return value


@dataclasses.dataclass(frozen=True)
class Number(Check):
    """An int or float within bounds; NaN and infinities are never allowed."""

    kind: type = int
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is excluded
    below_maximum: bool = False  # the maximum itself is excluded

    @property
    def allowed(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        if self.minimum is not None and self.maximum is not None:
            left = "(" if self.above_minimum else "["
            right = ")" if self.below_maximum else "]"
            return f"{noun} in {left}{self.minimum:g}, {self.maximum:g}{right}"
        if self.minimum is not None:
            return f"{noun} {'>' if self.above_minimum else '≥'} {self.minimum:g}"
        if self.maximum is not None:
            return f"{noun} {'<' if self.below_maximum else '≤'} {self.maximum:g}"
        return noun

    def convert(self, text: str) -> int | float:
        try:
            return self.kind(text)
        except (TypeError, ValueError):
            raise ValueError(f"must be {self.allowed}") from None

    def validate(self, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {self.allowed}")
        if self.kind is int and not float(value).is_integer():
            raise ValueError(f"must be {self.allowed}")
        if not math.isfinite(value):
            raise ValueError(f"must be {self.allowed} (a finite value)")
        too_low = self.minimum is not None and (
            value <= self.minimum if self.above_minimum else value < self.minimum
        )
        too_high = self.maximum is not None and (
            value >= self.maximum if self.below_maximum else value > self.maximum
        )
        if too_low or too_high:
            raise ValueError(f"must be {self.allowed}")


def at_least(minimum: float, kind: type = int, maximum: float | None = None) -> Number:
    return Number(kind, minimum, maximum)


def positive(maximum: float | None = None) -> Number:
    """A float > 0."""
    return Number(float, 0.0, maximum, above_minimum=True)


def fraction(*, zero: bool = True, one: bool = False) -> Number:
    """A float in [0, 1) by default; `zero=False` excludes 0, `one=True` includes 1."""
    return Number(float, 0.0, 1.0, above_minimum=not zero, below_maximum=not one)


@dataclasses.dataclass(frozen=True)
class NumberList(Check):
    """Comma-separated numbers, each checked by `item`, as a tuple."""

    item: Number
    increasing: bool = False

    @property
    def allowed(self) -> str:
        order = " in increasing order" if self.increasing else ""
        return f"comma-separated values, each {self.item.allowed}{order}"

    def convert(self, text: str) -> tuple:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise ValueError(f"must be {self.allowed}")
        try:
            return tuple(self.item.convert(part) for part in parts)
        except ValueError:
            raise ValueError(f"must be {self.allowed}") from None

    def validate(self, value: Any) -> None:
        if not isinstance(value, tuple) or not value:
            raise ValueError(f"must be {self.allowed}")
        try:
            for item in value:
                self.item.validate(item)
        except ValueError:
            raise ValueError(f"must be {self.allowed}") from None
        if self.increasing and any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError(f"must be {self.allowed}")


@dataclasses.dataclass(frozen=True)
class Names(Check):
    """Comma-separated names (out of `known`, if given), as a tuple (empty allowed)."""

    known: tuple[str, ...] | None = None

    @property
    def allowed(self) -> str:
        if self.known is None:
            return "comma-separated names"
        return f"comma-separated names out of {', '.join(self.known)}"

    def convert(self, text: str) -> tuple[str, ...]:
        return tuple(name.strip() for name in text.split(",") if name.strip())

    def validate(self, value: Any) -> None:
        if not isinstance(value, tuple) or not all(isinstance(name, str) for name in value):
            raise ValueError(f"must be {self.allowed}")
        if self.known is not None and any(name not in self.known for name in value):
            raise ValueError(f"must be {self.allowed}")


@dataclasses.dataclass(frozen=True)
class ExistingPath(Check):
    """A path that exists (a file, a folder, or either) and can be read."""

    kind: str = "path"  # "file", "folder" or "path"

    @property
    def allowed(self) -> str:
        return {"file": "a readable file", "folder": "a readable folder"}.get(
            self.kind, "a readable file or folder"
        )

    def convert(self, text: str) -> Path:
        if not text.strip():
            raise ValueError(f"must be {self.allowed}")
        return Path(text)

    def validate(self, value: Any) -> None:
        path = Path(value)
        if not path.exists():
            raise ValueError(f"must be {self.allowed} (no such {self.kind})")
        if self.kind == "file" and not path.is_file():
            raise ValueError(f"must be {self.allowed} (it is a folder)")
        if self.kind == "folder" and not path.is_dir():
            raise ValueError(f"must be {self.allowed} (it is a file)")
        try:
            if path.is_dir():
                next(iter(path.iterdir()), None)
            else:
                with path.open("rb") as handle:
                    handle.read(1)
        except OSError as error:
            raise ValueError(f"must be {self.allowed} ({error.strerror})") from None


@dataclasses.dataclass(frozen=True)
class DataSource(Check):
    """A built-in data set's name (or `PREFIX:NAME`), or local files: `PATH` or `PATH,PATH`."""

    names: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    pairs: bool = False  # `PATH,PATH` names two line-aligned files

    @property
    def allowed(self) -> str:
        named = ", ".join(self.names + tuple(f"{prefix}:NAME" for prefix in self.prefixes))
        paths = "PATH or PATH,PATH" if self.pairs else "a readable file or folder"
        return f"one of {named}, or {paths}"

    def validate(self, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be {self.allowed}")
        if value in self.names:
            return
        prefix, _, name = value.partition(":")
        if prefix in self.prefixes:
            if not name:
                raise ValueError(f"must be {self.allowed} (nothing after {prefix}:)")
            return
        parts = value.split(",", 1) if self.pairs else [value]
        for part in parts:
            try:
                ExistingPath().validate(Path(part))
            except ValueError:
                raise ValueError(f"must be {self.allowed} ({part!r} cannot be read)") from None


@dataclasses.dataclass(frozen=True)
class Text(Check):
    """A string; `nonempty` refuses blank text."""

    nonempty: bool = False

    @property
    def allowed(self) -> str:
        return "non-blank text" if self.nonempty else "text"

    def validate(self, value: Any) -> None:
        if not isinstance(value, str) or (self.nonempty and not value.strip()):
            raise ValueError(f"must be {self.allowed}")


@dataclasses.dataclass(frozen=True)
class SearchRange:
    """The range `gru-suite tune` searches a setting over: `low` to `high`, evenly or on a log scale."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"a search range needs low < high (and low > 0 on a log scale), "
                             f"got {self.low} and {self.high}")


@dataclasses.dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line (see `setting`)."""

    help: str
    check: Check | None = None
    choices: tuple | None = None
    flag: str | None = None  # defaults to --field-name
    metavar: str | None = None
    group: str | None = None
    positional: bool = False
    nargs: str | None = None  # for positional fields: "*" or "+"
    show_default: bool = True  # False where the help itself says which choice is the default
    search: SearchRange | None = None  # what `gru-suite tune` tries (None: it keeps the value)


def setting(default: Any, help: str, **flag: Any) -> Any:
    """A config field with its flag (see `Flag` for the keywords)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("setting defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata={"flag": Flag(help, **flag)})


class ConfigError(InputError):
    """A value, or a combination of values, that a config does not allow.

    `fields` names the fields involved; the CLI shows them as flags.
    """

    def __init__(self, fields: Sequence[str], message: str):
        self.fields = tuple(fields)
        self.message = message
        super().__init__(f"{' and '.join(self.fields)}: {message}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every command's settings: checks each field on construction."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            flag = field.metadata.get("flag")
            value = getattr(self, field.name)
            if flag is None or value is None:
                continue
            if flag.choices is not None and value not in flag.choices:
                raise ConfigError(
                    [field.name], f"must be one of {', '.join(map(str, flag.choices))}, got {value!r}"
                )
            if flag.check is not None and not (flag.positional and flag.nargs):
                try:
                    flag.check.validate(value)
                except ValueError as error:
                    raise ConfigError([field.name], f"{error}, got {value!r}") from None
        self.check()

    def check(self) -> None:
        """Checks across fields; raise `ConfigError` naming the fields."""


def flag_fields(config_class: type[Config]) -> list[tuple[dataclasses.Field, Flag]]:
    return [
        (field, field.metadata["flag"])
        for field in dataclasses.fields(config_class)
        if "flag" in field.metadata
    ]


def search_fields(config_class: type[Config]) -> list[tuple[dataclasses.Field, SearchRange]]:
    """The fields of `config_class` that declare a `SearchRange`, in declaration order."""
    return [(field, flag.search) for field, flag in flag_fields(config_class) if flag.search is not None]


def flag_name(field: dataclasses.Field) -> str:
    """`--batch-size` for the field `batch_size` (or the flag or metavar it declares)."""
    flag = field.metadata["flag"]
    if flag.positional:
        return flag.metavar or field.name.upper()
    return flag.flag or "--" + field.name.replace("_", "-")


def _help(field: dataclasses.Field, flag: Flag) -> str:
    if flag.positional or field.type in ("bool", bool) or field.default is None or not flag.show_default:
        return flag.help
    default = field.default
    if isinstance(default, tuple):
        default = ",".join(f"{value:g}" if isinstance(value, float) else str(value) for value in default)
    elif isinstance(default, float):
        default = f"{default:g}"
    return f"{flag.help}; default {default}"


def add_arguments(parser: argparse.ArgumentParser, config_class: type[Config]) -> None:
    """Adds one argument per CLI field of `config_class` to `parser`."""
    groups: dict[str, Any] = {}
    for field, flag in flag_fields(config_class):
        target = parser
        if flag.group:
            if flag.group not in groups:
                groups[flag.group] = parser.add_argument_group(flag.group)
            target = groups[flag.group]
        options: dict[str, Any] = {"help": _help(field, flag), "dest": field.name}
        if flag.positional:
            options.pop("dest")
            options.update(metavar=flag.metavar or field.name.upper(), nargs=flag.nargs)
            if flag.check is not None:
                options["type"] = flag.check
            if flag.nargs in ("*", "?"):
                options["default"] = field.default
            target.add_argument(field.name, **options)
            continue
        name = flag_name(field)
        if field.type in ("bool", bool):
            if field.default:
                # A switch that is on by default: NAME keeps it, --no-NAME turns it off.
                target.add_argument(name, action=argparse.BooleanOptionalAction, default=True, **options)
            else:
                target.add_argument(name, action="store_true", **options)
            continue
        options["default"] = field.default
        if flag.choices is not None:
            options["choices"] = flag.choices
        if flag.check is not None:
            options["type"] = flag.check
        if flag.metavar:
            options["metavar"] = flag.metavar
        target.add_argument(name, **options)


def from_arguments(config_class: type[C], args: argparse.Namespace) -> C:
    """The config of `config_class` from parsed flags; errors name the flags."""
    values = {}
    fields = {}
    for field, flag in flag_fields(config_class):
        fields[field.name] = field
        value = getattr(args, field.name)
        if flag.positional and flag.nargs in ("*", "+"):
            value = tuple(value or ())
        values[field.name] = value
    try:
        return config_class(**values)
    except ConfigError as error:
        flags = " and ".join(flag_name(fields[name]) for name in error.fields)
        raise InputError(f"{flags}: {error.message}") from None


def to_arguments(config: Config) -> list[str]:
    """The command-line words that `from_arguments` turns back into `config` (the settings that
    differ from their defaults), to hand a config to another process."""
    words: list[str] = []
    positional: list[str] = []  # after "--", so a value that starts with "-" stays a value
    for field, flag in flag_fields(type(config)):
        value = getattr(config, field.name)
        if flag.positional:
            positional += [str(item) for item in value] if flag.nargs else [str(value)]
        elif value == field.default:
            continue
        elif field.type in ("bool", bool):
            words.append(flag_name(field) if value else "--no-" + flag_name(field)[2:])
        elif isinstance(value, tuple):
            words += [flag_name(field), ",".join(map(str, value))]
        else:
            words += [flag_name(field), str(value)]
    return words + (["--", *positional] if positional else [])


def arguments_configurer(config_class: type[Config]) -> Callable[[argparse.ArgumentParser], None]:
    return lambda parser: add_arguments(parser, config_class)
