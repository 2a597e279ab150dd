"""Typed, validated configuration objects: the machinery behind every config dataclass.

Config classes are frozen dataclasses deriving from :class:`Config`. Each field may carry
``metadata={"choices": ..., "min": ..., "max": ..., "help": ...}`` (use :func:`option`); ``__post_init__``
checks every field's type and bounds and raises :class:`~core.errors.ConfigError` naming the field.
Configs convert to and from plain dicts (the JSON frozen in an experiment root) and accept
``dotted.key=value`` overrides parsed by the field's declared type, never by the value's look. Every
override is applied before the result is validated, so settings that depend on each other can change
together; every float setting must be finite (NaN and infinity are refused at this level, for every
config). :meth:`Config.settings` lists every leaf setting with its value, its default and its help text.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Iterable, Mapping, TypeVar, Union

from core.errors import ConfigError

C = TypeVar("C", bound="Config")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def option(default: Any, *, help: str = "", choices: Iterable[Any] | None = None,
           min: float | None = None, max: float | None = None, pattern: str | None = None) -> Any:
    """A dataclass field with a default, a help text and optional choices, bounds or a pattern (strings:
    the whole value must match the regular expression)."""
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "min": min, "max": max,
                "pattern": pattern}
    if isinstance(default, Config):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config: validated on creation, convertible to and from dicts."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            name = f"{self._section()}{field.name}"
            _check_type(name, value, hints[field.name])
            _check_bounds(name, value, field.metadata)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks of a subclass (raise :class:`ConfigError` naming the fields)."""

    @classmethod
    def _section(cls) -> str:
        return f"{cls.__name__}."

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Config):
                out[field.name] = value.to_dict()
            elif isinstance(value, tuple):
                out[field.name] = list(value)
            else:
                out[field.name] = value
        return out

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], *, where: str = "") -> C:
        """Build from a dict, rejecting unknown keys; missing keys take their defaults."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where or cls.__name__} must be a mapping, got {type(data).__name__}")
        hints = _hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown field(s) {', '.join(repr(u) for u in unknown)} in {where or cls.__name__}; "
                              f"known: {', '.join(sorted(names))}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            hint = hints[name]
            if _is_config(hint):
                values[name] = hint.from_dict(value, where=f"{where}{name}." if where else f"{name}.")
            elif _is_tuple(hint) and isinstance(value, list):
                values[name] = tuple(value)
            else:
                values[name] = value
        cls._check_fields(values, where)
        return cls(**values)

    @classmethod
    def _check_fields(cls, values: Mapping[str, Any], where: str) -> None:
        """Type and bound checks of the leaf ``values``, the errors naming each by its dotted path."""
        hints = _hints(cls)
        for field in dataclasses.fields(cls):
            if field.name in values and not _is_config(hints[field.name]):
                name = f"{where}{field.name}" if where else f"{cls._section()}{field.name}"
                _check_type(name, values[field.name], hints[field.name])
                _check_bounds(name, values[field.name], field.metadata)

    def with_overrides(self: C, assignments: Iterable[str]) -> C:
        """A copy with ``dotted.key=value`` assignments applied (values parsed by the field's type).

        Every assignment is applied first and the result is validated once, so dependent settings can
        change together (``rewards.kind=band`` with ``rewards.attempts=4``); errors name the setting.
        """
        data = self.to_dict()
        for assignment in assignments:
            if "=" not in assignment:
                raise ConfigError(f"override {assignment!r} must read key=value (for example prover_actor.count=2)")
            key, text = assignment.split("=", 1)
            type(self)._assign(data, key.strip().split("."), text.strip())
        return type(self).from_dict(data)

    @classmethod
    def _assign(cls, data: dict[str, Any], path: list[str], text: str, prefix: str = "") -> None:
        """Set the leaf at ``path`` in ``data`` (a :meth:`to_dict` of this class) to ``text`` parsed by its type."""
        names = {f.name for f in dataclasses.fields(cls)}
        head, dotted = path[0], f"{prefix}{path[0]}"
        if head not in names:
            raise ConfigError(f"unknown setting {prefix + '.'.join(path)!r}; known here: "
                              f"{', '.join(prefix + n for n in sorted(names))}")
        hint = _hints(cls)[head]
        if len(path) > 1:
            if not _is_config(hint):
                raise ConfigError(f"setting {dotted!r} has no sub-settings")
            hint._assign(data[head], path[1:], text, f"{dotted}.")
        elif _is_config(hint):
            raise ConfigError(f"setting {dotted!r} is a group; set one of its fields, e.g. {dotted}.<field>=...")
        else:
            data[head] = parse_value(dotted, text, hint)

    def describe(self, prefix: str = "") -> list[str]:
        """``key = value`` lines, one per leaf setting."""
        return [f"{setting.key} = {setting.value!r}" for setting in self.settings(prefix=prefix)]

    def settings(self, defaults: Config | None = None, prefix: str = "") -> list[Setting]:
        """Every leaf setting in field order: its dotted key, value, default and help text.

        The default of a setting is its value in ``defaults`` (by default this class built with no
        arguments, so a nested group's default is the one its parent field declares).
        """
        defaults = type(self)() if defaults is None else defaults
        out: list[Setting] = []
        for field in dataclasses.fields(self):
            value, default = getattr(self, field.name), getattr(defaults, field.name)
            key = f"{prefix}{field.name}"
            if isinstance(value, Config):
                out.extend(value.settings(default, f"{key}."))
            else:
                out.append(Setting(key, value, default, field.metadata.get("help", "")))
        return out

    def group_help(self, prefix: str = "") -> dict[str, str]:
        """The help text of every group of settings (``prover_actor.search`` -> its help), by dotted key."""
        out: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Config):
                out[f"{prefix}{field.name}"] = field.metadata.get("help", "")
                out.update(value.group_help(f"{prefix}{field.name}."))
        return out


@dataclasses.dataclass(frozen=True)
class Setting:
    """One leaf setting of a config: where it is, what it holds, its default and what it means."""

    key: str
    value: Any
    default: Any
    help: str

    @property
    def section(self) -> str:
        """The dotted group the setting belongs to ('' for a top-level setting)."""
        return self.key.rpartition(".")[0]


def format_value(value: Any) -> str:
    """A setting's value as ``--set key=VALUE`` takes it (lists comma-separated, '' for an empty string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "''"
    if isinstance(value, str):
        return value or "''"
    return repr(value)


def render_settings(config: Config, title: str) -> str:
    """Every setting of ``config`` grouped by section: value, help text, and the default where it differs."""
    groups = config.group_help()
    sections: dict[str, list[Setting]] = {}
    for setting in config.settings():
        sections.setdefault(setting.section, []).append(setting)
    width = min(max(len(_assignment(s)) for group in sections.values() for s in group), 36)
    lines = [title]
    for section, group in sections.items():
        about = groups.get(section, "")
        lines += ["", f"[{section or 'experiment'}]" + (f"  {about}" if about else "")]
        for setting in group:
            notes = [setting.help] if setting.help else []
            if setting.value != setting.default:
                notes.append(f"(default: {format_value(setting.default)})")
            comment = f"# {' '.join(notes)}" if notes else ""
            lines.append(f"  {_assignment(setting):<{width}}  {comment}".rstrip())
    return "\n".join(lines)


def _assignment(setting: Setting) -> str:
    return f"{setting.key.rpartition('.')[2]} = {format_value(setting.value)}"


def parse_value(name: str, text: str, hint: Any, *, what: str | None = None) -> Any:
    """Parse ``text`` by the declared type ``hint``, never by its look: the one value parser of ``--set``
    overrides and of every command-line flag (:mod:`jobs._cli`).

    ``bool`` (true/false, yes/no, 1/0, on/off), ``int``, ``float`` (finite), ``str``, ``Literal[...]`` (one
    of its values), ``X | None`` (``none``, ``null`` or an empty text is ``None``) and comma-separated
    ``tuple[X, ...]`` / ``list[X]``. A text that does not fit raises :class:`ConfigError` naming ``what``
    (by default ``setting 'NAME'``; a command line passes its flag, ``--expansions``).
    """
    subject = what or name  # "NAME must be ...", as the schema's own checks say it
    what = what or f"setting {name!r}"
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if text.lower() in ("none", "null", ""):
            return None
        return parse_value(name, text, options[0], what=what)
    if hint is bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{what} takes true or false, not {text!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{what} takes an integer, not {text!r}") from None
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{what} takes a number, not {text!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{subject} must be a finite number, got {text}")
        return value
    if hint is str:
        return text
    if origin is typing.Literal:
        for choice in typing.get_args(hint):
            if text == str(choice):
                return choice
        raise ConfigError(f"{what} takes one of {', '.join(map(str, typing.get_args(hint)))}, not {text!r}")
    if _is_tuple(hint) or hint is list or origin is list:
        element = next((a for a in typing.get_args(hint) if a is not Ellipsis), str)
        values = [parse_value(name, part.strip(), element, what=what) for part in text.split(",") if part.strip()]
        return values if (hint is list or origin is list) else tuple(values)
    raise ConfigError(f"{what} cannot be set from the command line")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Config)


def _is_tuple(hint: Any) -> bool:
    return hint is tuple or typing.get_origin(hint) is tuple


def _check_type(name: str, value: Any, hint: Any) -> None:
    if not _type_matches(value, hint):
        raise ConfigError(f"{name} must be {_type_name(hint)}, got {value!r} ({type(value).__name__})")


def _type_matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_type_matches(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if _is_tuple(hint):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, tuple) and all(_type_matches(v, args[0]) for v in value) if args else isinstance(value, tuple)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if _is_tuple(hint):
        return "a list"
    if hint is type(None):
        return "None"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _check_bounds(name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    pattern = metadata.get("pattern")
    if pattern is not None and isinstance(value, str) and re.fullmatch(pattern, value) is None:
        raise ConfigError(f"{name} = {value!r} does not match {pattern} (the value goes into a job script "
                          "or a file name, where other characters are unsafe)")
    low, high = metadata.get("min"), metadata.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value!r}")
        if high is not None and value > high:
            raise ConfigError(f"{name} must be <= {high}, got {value!r}")
