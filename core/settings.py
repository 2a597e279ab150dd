"""Typed, validated settings: the frozen dataclasses that are both the code's settings and the config's sections.

A settings class is a frozen dataclass deriving from :class:`Settings`. Each field may carry
``metadata={"choices": ..., "min": ..., "max": ..., "pattern": ..., "help": ...}`` (use :func:`option`);
``__post_init__`` checks every field's type and bounds, then the class's cross-field :meth:`Settings.validate`,
and raises :class:`~core.errors.ConfigError` naming the field. Every float setting must be finite.

The same class serves the code that uses the settings (``core.search``, ``core.adversarial``) and the
experiment configuration that nests it as a section (``configs.experiment``): settings convert to and from
plain dicts (the JSON frozen in an experiment root) and list every leaf setting with its default and help
(:meth:`Settings.settings`). Built from a dict, a field's errors name it by its dotted path in the whole
configuration (``prover_actor.search.timeout_s``); built directly, by its class (``SearchSettings.timeout_s``).
Parsing ``key=value`` text belongs to the configuration layer (``configs.schema``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union

from core.errors import ConfigError

S = TypeVar("S", bound="Settings")

# The dotted path (``prover_actor.search.``) of the settings being built by :meth:`Settings.from_dict`.
_BUILDING_AT: contextvars.ContextVar[str | None] = contextvars.ContextVar("settings_path", default=None)


def option(
    default: Any,
    *,
    help: str = "",
    choices: Iterable[Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    pattern: str | None = None,
) -> Any:
    """A dataclass field with a default, a help text and optional choices, bounds or a pattern (strings:
    the whole value must match the regular expression)."""
    metadata = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "min": min,
        "max": max,
        "pattern": pattern,
    }
    if isinstance(default, Settings):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of every settings class: validated on creation, convertible to and from dicts."""

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            name = self._name(field.name)
            try:
                _check_type(name, value, hints[field.name])
                _check_bounds(name, value, field.metadata)
            except ConfigError as error:  # carry the bare field, so that a command line can name its flag
                raise ConfigError(str(error), field=field.name) from None
        self.validate()

    def validate(self) -> None:
        """Cross-field checks of a subclass (raise :class:`ConfigError` naming the fields by :meth:`_name`)."""

    @classmethod
    def _section(cls) -> str:
        """The prefix of a field's name in errors when the settings are built directly."""
        return f"{cls.__name__}."

    def _name(self, field: str) -> str:
        """How errors name ``field``: by its dotted path when built by :meth:`from_dict`, else by its class."""
        where = _BUILDING_AT.get()
        return f"{self._section() if where is None else where}{field}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Settings):
                out[field.name] = value.to_dict()
            elif isinstance(value, tuple):
                out[field.name] = list(value)
            else:
                out[field.name] = value
        return out

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any], *, where: str = "") -> S:
        """Build from a dict, rejecting unknown keys; missing keys take their defaults. ``where`` is the
        dotted path of these settings in the whole configuration (``prover_actor.search.``), errors name it."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where or cls.__name__} must be a mapping, got {type(data).__name__}")
        hints = field_types(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"unknown field(s) {', '.join(repr(u) for u in unknown)} in {where or cls.__name__}; "
                f"known: {', '.join(sorted(names))}"
            )
        values: dict[str, Any] = {}
        for name, value in data.items():
            hint = hints[name]
            if is_settings(hint):
                values[name] = hint.from_dict(value, where=f"{where}{name}." if where else f"{name}.")
            elif is_tuple_type(hint) and isinstance(value, list):
                values[name] = tuple(value)
            else:
                values[name] = value
        token = _BUILDING_AT.set(where or None)
        try:
            return cls(**values)
        finally:
            _BUILDING_AT.reset(token)

    def settings(self, defaults: Settings | None = None, prefix: str = "") -> list[Setting]:
        """Every leaf setting in field order: its dotted key, value, default and help text.

        The default of a setting is its value in ``defaults`` (by default this class built with no
        arguments, so a nested group's default is the one its parent field declares).
        """
        defaults = type(self)() if defaults is None else defaults
        out: list[Setting] = []
        for field in dataclasses.fields(self):
            value, default = getattr(self, field.name), getattr(defaults, field.name)
            key = f"{prefix}{field.name}"
            if isinstance(value, Settings):
                out.extend(value.settings(default, f"{key}."))
            else:
                out.append(Setting(key, value, default, field.metadata.get("help", "")))
        return out

    def group_help(self, prefix: str = "") -> dict[str, str]:
        """The help text of every group of settings (``prover_actor.search`` -> its help), by dotted key."""
        out: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Settings):
                out[f"{prefix}{field.name}"] = field.metadata.get("help", "")
                out.update(value.group_help(f"{prefix}{field.name}."))
        return out


@dataclasses.dataclass(frozen=True)
class Setting:
    """One leaf setting: where it is, what it holds, its default and what it means."""

    key: str
    value: Any
    default: Any
    help: str

    @property
    def section(self) -> str:
        """The dotted group the setting belongs to ('' for a top-level setting)."""
        return self.key.rpartition(".")[0]


def is_settings(hint: Any) -> bool:
    """Whether a field's declared type is a group of settings (a :class:`Settings` class)."""
    return isinstance(hint, type) and issubclass(hint, Settings)


def field_types(cls: type) -> dict[str, Any]:
    """The declared type of each field of a dataclass, by name."""
    return typing.get_type_hints(cls)


def is_tuple_type(hint: Any) -> bool:
    """Whether a declared type is a tuple (a list setting)."""
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
    if is_tuple_type(hint):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return (
            isinstance(value, tuple) and all(_type_matches(v, args[0]) for v in value)
            if args
            else isinstance(value, tuple)
        )
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if is_tuple_type(hint):
        return "a list"
    if hint is type(None):
        return "None"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _check_bounds(name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    pattern = metadata.get("pattern")
    if pattern is not None and isinstance(value, str) and re.fullmatch(pattern, value) is None:
        raise ConfigError(
            f"{name} = {value!r} does not match {pattern} (the value goes into a job script "
            "or a file name, where other characters are unsafe)"
        )
    low, high = metadata.get("min"), metadata.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value!r}")
        if high is not None and value > high:
            raise ConfigError(f"{name} must be <= {high}, got {value!r}")
