"""Command-line plumbing shared by every job: strict, typed flags in front of ``fire``.

``fire`` alone guesses a value's type from its look (``--expansions 1e3`` becomes a float, ``--only 12``
an int, ``--only a,b`` a tuple) and lets some mistakes through. :func:`run_cli` therefore checks the
command line against the job function's signature FIRST: unknown flags, missing arguments and values
that do not fit the annotation are reported in one line and exit 2, before any work. Values are
converted by annotation, never by look:

- ``str``, ``int`` (digits only), ``float`` (finite), ``bool`` (``--flag``, ``--noflag``, ``--flag=false``);
- ``list[str]`` / ``tuple[str, ...]`` (and of ``int``/``float``): comma-separated, ``--only a,b``;
- ``Literal[...]``: one of the listed values; ``X | None``: as ``X``.

Flags are ``--name value`` or ``--name=value`` (``-`` and ``_`` are the same in names). ``--log-level
LEVEL`` (default INFO) sets the level of the logging configured here, on stderr; ``--help`` shows fire's
help. The checked values are handed to ``fire.Fire`` as Python literals, so fire cannot re-interpret
them. An :class:`~core.errors.AdvproverError` raised by the job prints its message, not a traceback, and
exits 2 for usage and configuration errors, 1 for the others. The function's return value (an int, or
``None`` for 0) is the exit status; a role's ``"finished"`` exits 0 and ``"interrupted"`` (a signal or a
stop request ended it before its bounds) exits 3.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import sys
import types
import typing
from typing import Any, Callable, Literal, NoReturn, Sequence

import fire

from core.errors import AdvproverError, ConfigError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_INT = re.compile(r"[+-]?\d+\Z")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def run_cli(function: Callable[..., Any], argv: Sequence[str] | None = None) -> NoReturn:
    """Check the command line against ``function``'s signature, run it through fire, exit with its status."""
    sys.exit(main(function, argv))


def main(function: Callable[..., Any], argv: Sequence[str] | None = None) -> int:
    """:func:`run_cli` without the exit: the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = getattr(function, "__name__", "job")
    if "--help" in argv or "-h" in argv:
        try:
            _fire(function, ["--", "--help"], name)
        except SystemExit as exit_:  # fire exits after showing help
            return int(exit_.code or 0)
        return EXIT_OK
    try:
        positional, flags, level = parse_command_line(function, argv)
    except UsageError as error:
        print(f"error: {error} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(level)
    command = [repr(v) for v in positional] + [f"--{k}={v!r}" for k, v in flags.items()]
    try:
        status = _fire(function, command, name)
    except (UsageError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except AdvproverError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exit_:  # fire's own usage errors (our checks should have caught them first)
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_USAGE
    if isinstance(status, str):  # a role's ending (jobs._role.Runtime.finish): finished, or interrupted
        return EXIT_OK if status == "finished" else EXIT_INTERRUPTED
    return EXIT_OK if status is None else int(status)


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _fire(function: Callable[..., Any], command: list[str], name: str) -> Any:
    outcome: list[Any] = []

    def job(*args: Any, **kwargs: Any) -> None:
        outcome.append(function(*args, **kwargs))  # returned, not printed by fire

    job.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    job.__doc__, job.__name__ = function.__doc__, name
    fire.Fire(job, command=command, name=name)
    return outcome[0] if outcome else None


# --- parsing --------------------------------------------------------------------------------------


def parse_command_line(function: Callable[..., Any], argv: Sequence[str]) -> tuple[list[Any], dict[str, Any], str]:
    """(positional values, flag values, log level), converted by ``function``'s annotations.

    Raises :class:`UsageError` naming the unknown flag, the missing argument or the bad value.
    """
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    parameters = {p.name: p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)}
    positional_names = [p.name for p in parameters.values() if p.kind != p.KEYWORD_ONLY]
    level = "INFO"
    given: dict[str, Any] = {}
    words: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if not item.startswith("--") or item == "--":
            if item.startswith("-") and not _looks_numeric(item):
                raise UsageError(f"unknown option {item!r}: flags are written --name")
            words.append(item)
            continue
        key, has_value, value = item[2:].partition("=")
        name = key.replace("-", "_")
        if name == "log_level" and "log_level" not in parameters:
            if not has_value:
                value, i = _next_value(items, i, "--log-level")
            level = value.upper()
            if level not in LOG_LEVELS:
                raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
            continue
        hint = hints.get(name)
        negated = (name.startswith("no") and name not in parameters and name[2:] in parameters
                   and _strip_optional(hints.get(name[2:])) is bool)
        if negated:
            name, hint = name[2:], bool
        if name not in parameters:
            raise UsageError(f"unknown flag --{key}; known flags: {_known(parameters)}")
        if name in given:
            raise UsageError(f"flag --{key} is given twice")
        if negated:
            if has_value:
                raise UsageError(f"--no{key[2:]} takes no value")
            given[name] = False
            continue
        if not has_value:
            if _strip_optional(hint) is bool and (i >= len(items) or items[i].lower() not in _TRUE | _FALSE):
                given[name] = True
                continue
            value, i = _next_value(items, i, f"--{key}")
        given[name] = convert(value, hint, f"--{key}")
    if len(words) > len(positional_names):
        raise UsageError(f"unexpected argument(s) {' '.join(words[len(positional_names):])!r}")
    positional: list[Any] = []
    for name, word in zip(positional_names, words):
        if name in given:
            raise UsageError(f"{name.upper()} is given both as an argument and as --{name}")
        positional.append(convert(word, hints.get(name), name.upper()))
    missing = [p.name for p in parameters.values()
               if p.default is p.empty and p.name not in given and p.name not in positional_names[: len(words)]]
    if missing:
        raise UsageError(f"missing required argument(s): {', '.join(m.upper() for m in missing)}")
    return positional, given, level


def convert(text: str, hint: Any, what: str) -> Any:
    """``text`` as a value of type ``hint`` (see the module docstring); :class:`UsageError` if it does not fit."""
    hint = _strip_optional(hint)
    origin = typing.get_origin(hint)
    if hint is None or hint is str or hint is Any:
        return text
    if hint is bool:
        lowered = text.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise UsageError(f"{what} expects true or false, got {text!r}")
    if hint is int:
        if not _INT.match(text.strip()):
            raise UsageError(f"{what} expects an integer, got {text!r}")
        return int(text)
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{what} expects a number, got {text!r}") from None
        if not math.isfinite(value):
            raise UsageError(f"{what} expects a finite number, got {text!r}")
        return value
    if origin is Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if text == str(choice):
                return choice
        raise UsageError(f"{what} must be one of {', '.join(map(str, choices))}, got {text!r}")
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis] or [str]
        values = [convert(part.strip(), args[0], what) for part in text.split(",") if part.strip()]
        return values if origin is list else tuple(values)
    return text


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _next_value(items: list[str], i: int, flag: str) -> tuple[str, int]:
    if i >= len(items) or (items[i].startswith("--") and items[i] != "--"):
        raise UsageError(f"{flag} needs a value")
    return items[i], i + 1


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _known(parameters: dict[str, inspect.Parameter]) -> str:
    return ", ".join("--" + name.replace("_", "-") for name in parameters) + ", --log-level"
