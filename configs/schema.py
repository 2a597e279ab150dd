"""The experiment configuration's machinery on top of :mod:`core.settings`: text overrides and rendering.

Config classes are frozen dataclasses deriving from :class:`Config`, a :class:`core.settings.Settings`
(validated on creation, errors naming the field; fields declared with :func:`option`, re-exported here). A
config nests settings classes of ``core`` (the search and generation settings) as its sections directly.
Configs accept ``dotted.key=value`` overrides parsed by the field's declared type, never by the value's
look. Every override is applied before the result is validated, so settings that depend on each other can
change together. :func:`render_settings` prints every setting with its value, default and help text.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar, Union

from core.errors import ConfigError
from core.settings import Setting, Settings, field_types, is_settings, option
from core.settings import is_tuple_type as _is_tuple

__all__ = ["Config", "Setting", "format_value", "option", "parse_value", "render_settings"]

C = TypeVar("C", bound="Config")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclasses.dataclass(frozen=True)
class Config(Settings):
    """Base of every config section of the experiment: settings that also take ``key=value`` overrides."""

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
            _assign(type(self), data, key.strip().split("."), text.strip())
        return type(self).from_dict(data)


def _assign(cls: type[Settings], data: dict[str, Any], path: list[str], text: str, prefix: str = "") -> None:
    """Set the leaf at ``path`` in ``data`` (a ``to_dict`` of ``cls``) to ``text`` parsed by its type."""
    names = {f.name for f in dataclasses.fields(cls)}
    head, dotted = path[0], f"{prefix}{path[0]}"
    if head not in names:
        raise ConfigError(
            f"unknown setting {prefix + '.'.join(path)!r}; known here: {', '.join(prefix + n for n in sorted(names))}"
        )
    hint = field_types(cls)[head]
    if len(path) > 1:
        if not is_settings(hint):
            raise ConfigError(f"setting {dotted!r} has no sub-settings")
        _assign(hint, data[head], path[1:], text, f"{dotted}.")
    elif is_settings(hint):
        raise ConfigError(f"setting {dotted!r} is a group; set one of its fields, e.g. {dotted}.<field>=...")
    else:
        data[head] = parse_value(dotted, text, hint)


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
