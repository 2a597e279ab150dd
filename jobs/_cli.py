"""Command lines of every job: an ``argparse`` parser built from the entry function's signature and docstring.

``python -m jobs.<name>`` runs ``run_cli(entry)``. :func:`build_parser` reads ``entry``'s typed signature and
the ``Args:`` section of its docstring, so ``--help`` shows the real flags, their types, defaults and help
text (printed, no pager, the program named ``python -m jobs.<name>``). Why argparse and not ``fire``:
docs/ARCHITECTURE.md, "Command lines".

- A parameter without a default is required: give it as an argument or as its flag (``EXP`` or ``--exp
  EXP``); a keyword-only one only as its flag. Every other parameter is an optional flag ``--name VALUE``
  or ``--name=VALUE`` (``--timeout_s`` reads as ``--timeout-s``); a ``bool`` one is ``--name`` (or
  ``--name=false``) and ``--no-name``.
- Values are converted by the parameter's annotation, never by their look, by the one value parser that
  also reads ``--set`` overrides, :func:`configs.schema.parse_value` (``int``, finite ``float``, ``bool``,
  ``str``, ``Literal[...]``, ``X | None`` and comma-separated ``list[X]`` / ``tuple[X, ...]``).
- Unknown flags (abbreviations included), a flag given twice, missing or surplus arguments and values
  that do not fit are reported in one line naming the flag, with exit status 2, before any work.
- ``--log-level LEVEL`` (default INFO) sets the level of the logging configured here, on stderr.

The entry's return value is the exit status (an int, ``None`` for 0); a role's ``"finished"`` exits 0 and
``"interrupted"`` (a signal or a stop request ended it before its bounds) exits 3. An error the entry
raises prints one line and exits with :func:`core.errors.exit_status`, the statuses every command shares.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import re
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from configs.schema import parse_value
from core.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ConfigError, UsageError, report

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_FLAG_SUFFIX = "__flag"  # the namespace slot of a required parameter given as a flag
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^(\s*)(\w+)\s*(?:\([^)]*\))?:\s*(.*)$")


def run_cli(function: Callable[..., Any], argv: Sequence[str] | None = None, *, prog: str | None = None) -> NoReturn:
    """Parse the command line by ``function``'s signature, run it, exit with its status."""
    sys.exit(main(function, argv, prog=prog))


def main(function: Callable[..., Any], argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """:func:`run_cli` without the exit: the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or program_name(function)
    try:
        kwargs, level = parse_command_line(function, argv, prog=prog)
    except UsageError as error:
        print(f"error: {error} (see {prog} --help)", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:  # --help was shown
        return int(exit_.code or 0)
    configure_logging(level)
    try:
        status = function(**kwargs)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - every failure is one line and a status
        return report(error)
    if isinstance(status, str):  # a role's ending (jobs._role.Runtime.finish): finished, or interrupted
        return EXIT_OK if status == "finished" else EXIT_INTERRUPTED
    return EXIT_OK if status is None else int(status)


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def program_name(function: Callable[..., Any]) -> str:
    """``python -m MODULE`` for the module defining ``function`` (the one run as ``__main__`` included)."""
    module = function.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else sys.argv[0]
    return f"python -m {module}"


# --- the parser -----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are :class:`UsageError` (one line, exit 2), not a printed exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _Once(argparse.Action):
    """Store the value (``const`` for a flag taking none), refusing a second one for the same parameter."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given: set[str] = namespace.__dict__.setdefault("_given", set())
        slot = self.dest.removesuffix(_FLAG_SUFFIX)
        if slot in given:
            raise UsageError(f"{_flag(slot)} is given more than once")
        given.add(slot)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def build_parser(function: Callable[..., Any], prog: str) -> argparse.ArgumentParser:
    """The parser of ``function``'s command line: one argument or flag per parameter, plus ``--log-level``."""
    description, helps = split_docstring(inspect.getdoc(function) or "")
    module_doc = inspect.getdoc(sys.modules.get(function.__module__))
    parser = _Parser(
        prog=prog,
        description=description,
        epilog=module_doc,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    hints = typing.get_type_hints(function)
    for parameter in _parameters(function):
        _add_parameter(parser, parameter, hints.get(parameter.name, str), helps.get(parameter.name, ""))
    if "log_level" not in hints:
        parser.add_argument(
            "--log-level",
            type=_log_level,
            metavar="LEVEL",
            action=_Once,
            help=f"logging level on stderr: {', '.join(LOG_LEVELS)} (default: INFO)",
        )
    return parser


def parse_command_line(
    function: Callable[..., Any], argv: Sequence[str], *, prog: str | None = None
) -> tuple[dict[str, Any], str]:
    """(the keyword arguments of ``function``, the log level) from ``argv``.

    Raises :class:`UsageError` naming the unknown flag, the missing argument or the bad value; ``--help``
    prints the help and raises ``SystemExit(0)``.
    """
    parser = build_parser(function, prog or program_name(function))
    namespace, extra = parser.parse_known_args(_normalise(argv))
    if extra:
        flags = [word for word in extra if word.startswith("-")]
        if flags:
            raise UsageError(f"unknown flag {flags[0]}; known flags: {_known(parser)}")
        raise UsageError(f"unexpected argument(s) {' '.join(extra)!r}")
    values = dict(vars(namespace))
    values.pop("_given", None)
    level = values.pop("log_level", "INFO") if "log_level" not in typing.get_type_hints(function) else "INFO"
    kwargs: dict[str, Any] = {}
    missing: list[str] = []
    for parameter in _parameters(function):
        name = parameter.name
        as_argument, as_flag = values.get(name), values.get(name + _FLAG_SUFFIX)
        if name in values and name + _FLAG_SUFFIX in values:
            raise UsageError(f"{name.upper()} is given both as an argument and as {_flag(name)}")
        if name + _FLAG_SUFFIX in values:
            kwargs[name] = as_flag
        elif name in values:
            kwargs[name] = as_argument
        elif parameter.default is parameter.empty:
            missing.append(name.upper() if _is_positional(parameter) else _flag(name))
    if missing:
        raise UsageError(f"missing required argument(s): {', '.join(missing)}")
    return kwargs, level


def split_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(the docstring without its ``Args:`` section, each parameter's help text from that section)."""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if _ARGS_HEADER.match(line)), None)
    if start is None:
        return doc, {}
    helps: dict[str, str] = {}
    end, indent, current = len(lines), None, ""
    for i in range(start + 1, len(lines)):
        line = lines[i]
        match = _ARG_LINE.match(line)
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if match and (indent is None or len(match.group(1)) == indent):
            indent, current = len(match.group(1)), match.group(2)
            helps[current] = match.group(3).strip()
        elif indent is not None and depth > indent and current:
            helps[current] += " " + line.strip()
        else:
            end = i
            break
    return "\n".join(lines[:start] + lines[end:]).strip(), helps


def _parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_ONLY)
    return [p for p in inspect.signature(function).parameters.values() if p.kind in kinds]


def _is_positional(parameter: inspect.Parameter) -> bool:
    return parameter.default is parameter.empty and parameter.kind != parameter.KEYWORD_ONLY


def _add_parameter(parser: argparse.ArgumentParser, parameter: inspect.Parameter, hint: Any, help_text: str) -> None:
    name, flag = parameter.name, _flag(parameter.name)
    convert = _converter(name, hint, flag)
    help_text = help_text.rstrip(".")
    about = f"{help_text} ({_type_words(hint)}" if help_text else f"({_type_words(hint)}"
    if _is_positional(parameter):
        parser.add_argument(
            name, nargs="?", type=_converter(name, hint, name.upper()), metavar=name.upper(), help=f"same as {flag}"
        )
        parser.add_argument(
            flag,
            dest=name + _FLAG_SUFFIX,
            type=convert,
            metavar=name.upper(),
            action=_Once,
            help=f"{about}; required, as this flag or as the argument {name.upper()})",
        )
        return
    if parameter.default is parameter.empty:
        parser.add_argument(
            flag, dest=name, type=convert, metavar=name.upper(), action=_Once, help=f"{about}; required)"
        )
        return
    about += f"; default: {_shown(parameter.default)})"
    if _strip_optional(hint) is bool:
        parser.add_argument(
            flag, dest=name, type=convert, nargs="?", const=True, metavar="true|false", action=_Once, help=about
        )
        parser.add_argument(
            f"--no-{flag[2:]}", dest=name, nargs=0, const=False, action=_Once, help=f"same as {flag}=false"
        )
        return
    parser.add_argument(flag, dest=name, type=convert, metavar=_metavar(name, hint), action=_Once, help=about)


def _converter(name: str, hint: Any, what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse_value(name, text, hint, what=what)
        except ConfigError as error:
            raise UsageError(str(error)) from None

    return convert


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.upper()


def _normalise(argv: Sequence[str]) -> list[str]:
    """``--a_b[=v]`` as ``--a-b[=v]``, up to a bare ``--``."""
    out: list[str] = []
    for i, word in enumerate(argv):
        if word == "--":
            return out + list(argv[i:])
        if word.startswith("--"):
            key, eq, value = word[2:].partition("=")
            word = "--" + key.replace("_", "-") + eq + value
        out.append(word)
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _known(parser: argparse.ArgumentParser) -> str:
    return ", ".join(
        o
        for action in parser._actions
        for o in action.option_strings
        if o.startswith("--") and action.help != argparse.SUPPRESS
    )


def _strip_optional(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and type(None) in typing.get_args(hint) else hint


def _type_words(hint: Any) -> str:
    optional = _strip_optional(hint) is not hint
    hint = _strip_optional(hint)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        words = "one of " + ", ".join(map(str, typing.get_args(hint)))
    elif origin in (list, tuple) or hint in (list, tuple):
        element = next((a for a in typing.get_args(hint) if a is not Ellipsis), str)
        words = f"comma-separated {_type_words(element)}s"
    else:
        words = {int: "integer", float: "number", bool: "true or false", str: "text"}.get(hint, str(hint))
    return words + (", or none" if optional else "")


def _metavar(name: str, hint: Any) -> str:
    hint = _strip_optional(hint)
    if typing.get_origin(hint) is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(hint))) + "}"
    if typing.get_origin(hint) in (list, tuple):
        return f"{name.upper()},..."
    return name.upper()


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "''"
    return str(value)
