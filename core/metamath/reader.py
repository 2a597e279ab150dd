"""Read any ``.mm`` database into a :class:`~core.metamath.database.Database`.

Handles every statement of the Metamath language (``$c $v $f $e $d $a $p ${ $}``), comments, ``$[ file $]``
includes (each file read once), normal and compressed proofs, and incomplete proofs (``?``), which are
not errors but theorems to prove. Scoping follows the Metamath book: variables, hypotheses and
disjoint-variable conditions are active until the end of their block; each assertion gets its mandatory
frame when it is declared.

Files are tokenized lazily, a block of whole lines at a time (comments are cut out of each block, but for
their newlines, at the byte level first: they are most of set.mm), so ``read_database(path, stop_at="ax-gen")`` reads
set.mm's propositional part without reading the rest. Every malformed input raises
:class:`~core.errors.MMSyntaxError` naming the file, the line, the label if any, and the reason; an
error in the text after the ``stop_at`` label is not raised.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import logging
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from core.errors import MMSyntaxError
from core.metamath.database import Assertion, Database, DisjointPair, Hypothesis, disjoint_pair

logger = logging.getLogger(__name__)

_BLOCK_BYTES = 1 << 16
_KEYWORDS = frozenset(["$c", "$v", "$f", "$e", "$d", "$a", "$p", "$=", "$.", "${", "$}", "$(", "$)", "$[", "$]"])
_LABEL_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_NO_PAIRS: frozenset[DisjointPair] = frozenset()
_ALLOWED_BYTES = bytes(range(0x21, 0x7F)) + b" \t\n\r\f"
_CONTROL_BYTES = tuple(bytes([c]) for c in range(0x80) if c not in _ALLOWED_BYTES)  # ASCII ones not allowed
_WHITESPACE = b" \t\r\n\f"
_WHITESPACE_CODES = frozenset(_WHITESPACE)
# bytes.translate table for counting tokens per line: newline kept, other whitespace made a space, every
# other byte made an `x`.
_WORD_MARKS = bytes(c if c == 0x0A else 0x20 if c in b" \t\r\f" else 0x78 for c in range(256))


ReadProgress = Callable[[str, int], None]  # (path of the file being read, bytes of it read so far)


class _StopReading(Exception):
    """Raised internally when the ``stop_at`` label is reached."""


class _FileTokens:
    """The whitespace-separated tokens of one file, read a block of whole lines at a time.

    Only the current block's tokens are kept in memory; token positions are absolute (counted from
    the start of the file). Each block keeps a table of where its lines start, so :meth:`line_of`
    works for any token of the statement being read (from :attr:`mark` on), even one that began in
    an earlier block. Tokenizing a block is done by C-level string methods, not a loop per line.
    """

    def __init__(self, path: str, progress: ReadProgress | None = None) -> None:
        self.path = path
        self._progress = progress
        try:
            _check_regular_file(path)
            self._file = open(path, "rb")  # noqa: SIM115 - kept open across reads; close() closes it
        except OSError as error:
            raise MMSyntaxError(f"cannot open the file: {error.strerror}", file=path) from None
        self._tokens: list[str] = []
        self._base = 0  # absolute index of self._tokens[0]
        self._pos = 0  # index into self._tokens of the next token
        self._blocks: list[_LineTable] = []  # line tables of the blocks still referred to
        self._token_count = 0  # tokens read from the file so far
        self._lines_read = 0
        self._eof = False
        self._pending_error: MMSyntaxError | None = None  # raised when reading reaches its line
        self._open_comment_line = 0  # line of the `$(` of a comment still open at the end of the last block
        self.mark = 0  # absolute index of the first token of the statement being read

    def close(self) -> None:
        self._file.close()

    @property
    def position(self) -> int:
        """Absolute index of the next token."""
        return self._base + self._pos

    def line_of(self, position: int) -> int:
        """The 1-based line of the token at absolute ``position`` (or of the end of the file)."""
        if position >= self._token_count:
            return max(self._lines_read, 1)
        table = self._blocks[-1]  # the usual case: the current block
        if table.first_token <= position:
            return table.first_line + bisect.bisect_right(table.starts, position - table.first_token) - 1
        for table in reversed(self._blocks):
            if table.first_token <= position:
                return table.first_line + bisect.bisect_right(table.starts, position - table.first_token) - 1
        return self._blocks[0].first_line if self._blocks else 1

    def next_statement(self) -> str | None:
        """The first token of the next statement (its line stays known until the next call)."""
        position = self._pos
        self.mark = self._base + position
        if position < len(self._tokens):
            self._pos = position + 1
            return self._tokens[position]
        return self.next()

    def next(self) -> str | None:
        """The next token, or ``None`` at the end of the file."""
        while self._pos >= len(self._tokens):
            if not self._fill():
                return None
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def take_until(self, terminator: str) -> list[str] | None:
        """The tokens before the next ``terminator`` (consumed too); ``None`` if the file ends first."""
        while True:
            try:
                end = self._tokens.index(terminator, self._pos)
            except ValueError:
                if not self._fill():
                    return None
                continue
            taken = self._tokens[self._pos : end]
            self._pos = end + 1
            return taken

    def _fill(self) -> bool:
        """Read the next block of whole lines, dropping consumed tokens; False at the end of the file."""
        if self._pending_error is not None:
            raise self._pending_error
        if self._eof:
            return False
        raw = self._file.read(_BLOCK_BYTES)
        if not raw:
            self._eof = True
            if self._open_comment_line:
                raise self._error_at(self._open_comment_line, "comment `$(` is never closed by `$)`")
            return False
        if not raw.endswith(b"\n"):
            raw += self._file.readline()
        if self._progress is not None:
            self._progress(self.path, self._file.tell())
        raw = self._blank_comments(self._cut_at_bad_character(raw))
        words = raw.decode("ascii").split()
        # Tokens per line, counted by C-level bytes methods: with every word character marked `x`, other
        # whitespace a space, and a space put before each line, a line holds one " x" per token.
        marked = b" " + raw.translate(_WORD_MARKS).replace(b"\n", b"\n ")
        lines = marked.split(b"\n")
        if raw.endswith(b"\n"):
            lines.pop()  # what follows the last newline is not a line
        starts = list(itertools.accumulate(map(bytes.count, lines, itertools.repeat(b" x")), initial=0))
        starts.pop()  # starts[j]: number of the block's tokens before its line j
        self._compact()
        self._blocks.append(_LineTable(self._token_count, self._lines_read + 1, starts))
        self._tokens.extend(words)
        self._token_count += len(words)
        self._lines_read += len(lines)
        return True

    def _cut_at_bad_character(self, raw: bytes) -> bytes:
        """The lines of ``raw`` before the first one holding a character not allowed in a .mm file.

        The error is raised when reading reaches that line, not before: ``stop_at`` may come first. The
        usual case, no such character, is told by ``isascii`` and a ``memchr`` per control character.
        """
        if raw.isascii() and max(map(raw.find, _CONTROL_BYTES)) < 0:
            return raw
        offset = raw.index(raw.translate(None, _ALLOWED_BYTES)[:1])
        reason = (
            f"character {chr(raw[offset])!r} (code {raw[offset]}) is not allowed in a .mm file "
            "(only printable ASCII, space, tab, CR, LF and FF)"
        )
        return self._cut_before(raw, offset, reason)

    def _cut_before(self, raw: bytes, offset: int, reason: str) -> bytes:
        """The whole tokens of ``raw`` before ``offset``; the error waits for reading to get there.

        ``raw`` may end before ``offset`` (when it is a prefix ending just before it).
        """
        self._pending_error = self._error_at(self._lines_read + raw.count(b"\n", 0, offset) + 1, reason)
        cut = max(raw.rfind(space, 0, offset) for space in (b" ", b"\t", b"\r", b"\n", b"\f")) + 1
        if not cut:
            raise self._pending_error
        return raw[:cut]

    def _error_at(self, line: int, reason: str) -> MMSyntaxError:
        return MMSyntaxError(reason, file=self.path, line=line)

    def _blank_comments(self, raw: bytes) -> bytes:
        """``raw`` with every comment ``$( ... $)`` cut down to its newlines (so lines still count).

        Comments are most of set.mm; cutting them out with C-level searches before tokenizing spares
        splitting them into words, and leaves a block a fraction of its size for the steps that follow. A comment opens at a ``$(`` token and closes at the first ``$)``, which
        must be a token of its own; no ``$(`` may appear inside. A comment may span blocks. A malformed
        comment's error is raised when reading reaches its line (``stop_at`` may come first).
        """
        pieces: list[bytes] = []
        position = 0
        if self._open_comment_line:  # the block starts inside a comment
            end = _comment_end(raw, 0)
            if isinstance(end, str):
                raise self._error_at(self._open_comment_line, end)
            if end < 0:
                return _newlines(raw, 0, len(raw))
            pieces.append(_newlines(raw, 0, end))
            position, self._open_comment_line = end, 0
        position = _blank_plain_comments(raw, position, pieces)
        while (start := raw.find(b"$(", position)) >= 0:  # what the fast path left: anything unusual
            if not _alone(raw, start):  # inside a longer token: not a comment (that token is rejected later)
                pieces.append(raw[position : start + 2])
                position = start + 2
                continue
            pieces.append(raw[position:start])
            end = _comment_end(raw, start + 2)
            if isinstance(end, str):
                kept = b"".join(pieces)
                return self._cut_before(kept, len(kept), end)
            if end < 0:  # the comment goes on in the next block
                pieces.append(_newlines(raw, start, len(raw)))
                self._open_comment_line = self._lines_read + raw.count(b"\n", 0, start) + 1
                return b"".join(pieces)
            pieces.append(_newlines(raw, start, end))
            position = end
        pieces.append(raw[position:])
        return b"".join(pieces)

    def _compact(self) -> None:
        """Drop consumed tokens, and the line tables of blocks before the current statement."""
        self._base += self._pos
        del self._tokens[: self._pos]
        self._pos = 0
        keep_from = min(self.mark, self._base)
        while len(self._blocks) > 1 and self._blocks[1].first_token <= keep_from:
            del self._blocks[0]


def _check_regular_file(path: str) -> None:
    """Raise :class:`MMSyntaxError` unless ``path`` is a regular file (a device or a FIFO would be read forever
    or hang); ``OSError`` if it cannot be looked at."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = (
            "a directory"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a plain file"
        )
        raise MMSyntaxError(f"is {kind}, not a regular file: a database is read from regular files only", file=path)


def _blank_plain_comments(raw: bytes, position: int, pieces: list[bytes]) -> int:
    """Cut the comments of ``raw`` from ``position`` on while each is plainly well formed; return where it stopped.

    The fast path of :meth:`_FileTokens._blank_comments`, a few C-level searches per comment: it stops
    before the first ``$(`` that is not a token of its own, whose comment is not closed in ``raw``, holds
    a ``$(``, or whose ``$)`` is not a token of its own. What is left goes to the slow path, which knows
    each of those cases and its error. A comment's first ``$`` is looked for byte-wise (``memchr``): it is
    usually its ``$)``, which then needs no other search of the comment's text.
    """
    find, count_in, whitespace = raw.find, raw.count, _WHITESPACE_CODES
    last = len(raw) - 3  # a `$)` after it has no byte after it to look at: left to the slow path
    while (start := find(b"$(", position)) >= 0:
        end = find(b"$", start + 2)
        if end >= 0 and raw[end + 1 : end + 2] != b")":  # another `$` first: search on for `$)`, and for `$(`
            end = find(b"$)", end)
            if end >= 0 and find(b"$(", start + 2, end) >= 0:
                break
        if (
            end < 0
            or end > last
            or (start and raw[start - 1] not in whitespace)
            or raw[start + 2] not in whitespace
            or raw[end - 1] not in whitespace
            or raw[end + 2] not in whitespace
        ):
            break
        pieces.append(raw[position:start])
        pieces.append(b"\n" * count_in(b"\n", start, end))
        position = end + 2
    return position


def _newlines(raw: bytes, start: int, end: int) -> bytes:
    """What a comment spanning ``raw[start:end]`` leaves: its newlines, so that lines still count."""
    return b"\n" * raw.count(b"\n", start, end)


def _alone(raw: bytes, offset: int) -> bool:
    """Whether the two-byte keyword at ``offset`` is a token of its own (whitespace or an edge around it)."""
    return (offset == 0 or raw[offset - 1] in _WHITESPACE) and raw[
        offset + 2 : offset + 3
    ] in _WHITESPACE  # b"" at the end


def _comment_end(raw: bytes, start: int) -> int | str:
    """Where the comment whose text begins at ``start`` ends (just after its ``$)``), -1 if beyond ``raw``,
    or why it is malformed."""
    end = raw.find(b"$)", start)
    nested = raw.find(b"$(", start, len(raw) if end < 0 else end)
    if nested >= 0:
        return f"comments cannot be nested (found {_word_at(raw, nested)!r} inside a comment)"
    if end >= 0 and not _alone(raw, end):
        return f"`$)` must be a separate token (found {_word_at(raw, end)!r} inside a comment)"
    return end if end < 0 else end + 2


def _word_at(raw: bytes, offset: int) -> str:
    """The whitespace-delimited word of ``raw`` around ``offset``."""
    start = offset
    while start > 0 and raw[start - 1 : start] not in _WHITESPACE:
        start -= 1
    end = offset
    while end < len(raw) and raw[end : end + 1] not in _WHITESPACE:
        end += 1
    return raw[start:end].decode("ascii")


@dataclass(frozen=True, slots=True)
class _LineTable:
    """Where the lines of one block start: line ``first_line + j`` begins at token ``first_token + starts[j]``."""

    first_token: int
    first_line: int
    starts: list[int]


@dataclass
class _Scope:
    """What one ``${ ... $}`` block (or the outermost scope) has made active."""

    variables: list[str] = field(default_factory=list)
    hypotheses_before: int = 0  # len(active hypotheses) when the block opened
    essential_before: int = 0  # len(active essential hypotheses) when the block opened
    disjoint: list[DisjointPair] = field(default_factory=list)
    floating_variables: list[str] = field(default_factory=list)  # in declaration order
    opened_at: tuple[str, int] | None = None  # (file, line) of its `${`


class _Reader:
    """The parser's state while reading one database (and its includes)."""

    def __init__(self, path: str, stop_at: str | None, progress: ReadProgress | None = None) -> None:
        self.db = Database(path=path)
        self.stop_at = stop_at
        self.progress = progress
        self.scopes: list[_Scope] = [_Scope()]
        self.active_symbols: dict[str, str] = {}  # active constant or variable -> its interned self
        self.active_hypotheses: list[Hypothesis] = []
        self.active_essential: list[Hypothesis] = []
        self.active_floating: dict[str, Hypothesis] = {}  # variable -> its active $f (in declaration order)
        self.floating_rank: dict[str, int] = {}  # variable -> declaration rank of its active $f
        self.hypothesis_order: dict[str, int] = {}  # label of an active hypothesis -> declaration rank
        self.disjoint_counts: dict[DisjointPair, int] = {}
        self._context_floating: tuple[Hypothesis, ...] | None = ()
        self._context_disjoint: frozenset[DisjointPair] | None = frozenset()
        self.included: set[str] = set()
        self.tokens: _FileTokens  # the file being read
        # Keyed by str | None so that the end of the file (None) looks up to no handler, as any other keyword.
        self._handlers: dict[str | None, Callable[[str, int], None]] = {
            "$f": self._floating,
            "$e": self._essential,
            "$a": self._axiom,
            "$p": self._theorem,
        }

    # --- errors and locations --------------------------------------------------------------------

    def error(self, reason: str, *, label: str | None = None, position: int | None = None) -> MMSyntaxError:
        where = self.tokens.position - 1 if position is None else position
        return MMSyntaxError(reason, file=self.tokens.path, line=self.tokens.line_of(where), label=label)

    # --- files -----------------------------------------------------------------------------------

    def read_file(self, path: str) -> None:
        self.included.add(os.path.realpath(path))
        self.db.files.append(path)
        outer, self.tokens = getattr(self, "tokens", None), _FileTokens(path, self.progress)
        try:
            self._read_statements()
        finally:
            self.tokens.close()
            if outer is not None:
                self.tokens = outer

    def _read_statements(self) -> None:
        tokens = self.tokens
        unlabelled = {
            "${": self._open_scope,
            "$}": self._close_scope,
            "$c": self._constants,
            "$v": self._variables,
            "$d": self._disjoint,
            "$[": self._include,
        }
        while (token := tokens.next_statement()) is not None:
            if token[0] != "$":
                self._labelled(token)
                continue
            handler = unlabelled.get(token)
            if handler is None:
                raise self.error(f"unexpected keyword {token!r} where a statement should start")
            handler()

    def _include(self) -> None:
        start = self.tokens.position - 1
        body = self.tokens.take_until("$]")
        if body is None or len(body) != 1:
            raise self.error("an include must read `$[ file-name $]`", position=start)
        if len(self.scopes) > 1:
            raise self.error("`$[ ... $]` includes are only allowed in the outermost scope", position=start)
        here = os.path.dirname(self.tokens.path)
        target = os.path.join(here, body[0])
        if not os.path.exists(target) and os.path.exists(body[0]):
            target = body[0]
        if os.path.realpath(target) in self.included:
            return
        if not os.path.exists(target):
            raise self.error(f"included file {body[0]!r} not found (looked in {here or '.'})", position=start)
        if not os.path.isfile(target):  # a FIFO would hang the reader, a device (/dev/zero) fill memory
            raise self.error(
                f"included file {body[0]!r} is not a regular file (a directory, FIFO or device); "
                "include only regular .mm files",
                position=start,
            )
        self.read_file(target)

    # --- scopes ----------------------------------------------------------------------------------

    def _open_scope(self) -> None:
        where = (self.tokens.path, self.tokens.line_of(self.tokens.position - 1))
        self.scopes.append(
            _Scope(
                hypotheses_before=len(self.active_hypotheses),
                essential_before=len(self.active_essential),
                opened_at=where,
            )
        )

    def _close_scope(self) -> None:
        if len(self.scopes) == 1:
            raise self.error("`$}` without a matching `${`")
        scope = self.scopes.pop()
        for variable in scope.variables:
            del self.active_symbols[variable]
        for variable in scope.floating_variables:
            del self.active_floating[variable]
            del self.floating_rank[variable]
        for hypothesis in self.active_hypotheses[scope.hypotheses_before :]:
            del self.hypothesis_order[hypothesis.label]
        del self.active_hypotheses[scope.hypotheses_before :]
        del self.active_essential[scope.essential_before :]
        for pair in scope.disjoint:
            self.disjoint_counts[pair] -= 1
            if not self.disjoint_counts[pair]:
                del self.disjoint_counts[pair]
        self._context_floating = None
        self._context_disjoint = None

    # --- declarations ----------------------------------------------------------------------------

    def _declaration_body(self, keyword: str, start: int | None = None, label: str | None = None) -> list[str]:
        """The math symbols of a statement up to its closing ``$.``, comments removed."""
        start = self.tokens.position - 1 if start is None else start
        body = self._body(keyword, start, label)
        self._check_no_keyword(body, keyword, "math symbol", start, label)
        return body

    def _body(self, keyword: str, start: int, label: str | None) -> list[str]:
        """The tokens of a statement up to its closing ``$.`` (consumed), comments removed."""
        body = self.tokens.take_until("$.")  # comments are gone already (see _FileTokens._blank_comments)
        if body is None:
            raise self.error(f"`{keyword}` statement is never closed by `$.`", label=label, position=start)
        return body

    def _check_no_keyword(self, words: list[str], keyword: str, what: str, start: int, label: str | None) -> None:
        if "$" not in " ".join(words):
            return
        bad = next(word for word in words if "$" in word)
        if bad in _KEYWORDS:
            reason = f"keyword {bad!r} inside a `{keyword}` statement (is its closing `$.` missing?)"
        else:
            reason = f"{what} {bad!r} may not contain `$`"
        raise self.error(reason, label=label, position=start)

    def _constants(self) -> None:
        start = self.tokens.position - 1
        if len(self.scopes) > 1:
            raise self.error("`$c` constants may only be declared in the outermost scope")
        body = self._declaration_body("$c")
        if not body:
            raise self.error("`$c` statement declares no constant", position=start)
        for symbol in body:
            if symbol in self.db.variables:
                raise self.error(f"symbol {symbol!r} is already declared as a variable", position=start)
            self._check_new_symbol(symbol, start)
            symbol = sys.intern(symbol)
            self.db.constants.add(symbol)
            self.active_symbols[symbol] = symbol

    def _variables(self) -> None:
        start = self.tokens.position - 1
        body = self._declaration_body("$v")
        if not body:
            raise self.error("`$v` statement declares no variable", position=start)
        for symbol in body:
            if symbol in self.active_symbols and symbol in self.db.variables:
                raise self.error(f"variable {symbol!r} is already active (declared twice)", position=start)
            self._check_new_symbol(symbol, start)
            symbol = sys.intern(symbol)
            self.db.variables.add(symbol)
            self.active_symbols[symbol] = symbol
            self.scopes[-1].variables.append(symbol)

    def _check_new_symbol(self, symbol: str, start: int) -> None:
        if symbol in self.db.constants:
            raise self.error(f"symbol {symbol!r} is already declared as a constant", position=start)
        if symbol in self.active_symbols:
            raise self.error(f"symbol {symbol!r} is declared twice", position=start)
        if symbol in self.db.labels:
            raise self.error(f"symbol {symbol!r} is already used as a label", position=start)

    def _disjoint(self) -> None:
        start = self.tokens.position - 1
        body = self._declaration_body("$d")
        if len(body) < 2:
            raise self.error("`$d` needs at least two variables", position=start)
        if len(set(body)) != len(body):
            raise self.error(f"`$d` lists a variable twice: {' '.join(body)}", position=start)
        for symbol in body:
            if symbol not in self.active_symbols or symbol not in self.db.variables:
                raise self.error(f"`$d` symbol {symbol!r} is not an active variable", position=start)
        pairs = [disjoint_pair(x, y) for x, y in itertools.combinations(map(self.active_symbols.__getitem__, body), 2)]
        self.scopes[-1].disjoint.extend(pairs)
        counts = self.disjoint_counts
        for pair in pairs:
            counts[pair] = counts.get(pair, 0) + 1
        self._context_disjoint = None

    # --- labelled statements ---------------------------------------------------------------------

    def _labelled(self, label: str) -> None:
        start = self.tokens.mark  # the label's position
        if not _LABEL_CHARACTERS.issuperset(label):
            raise self.error(f"{label!r} is not a valid label (letters, digits, '.', '-', '_')")
        keyword = self.tokens.next()
        handler = self._handlers.get(keyword)
        if handler is None:
            found = "the end of the file" if keyword is None else repr(keyword)
            raise self.error(f"label {label!r} must be followed by $f, $e, $a or $p, not {found}", label=label)
        if label == self.stop_at:
            raise _StopReading
        db = self.db
        if label in db.labels:
            raise self.error(f"label {label!r} is declared twice", label=label, position=start)
        if label in db.constants or label in db.variables:
            # Metamath book, 4.2.1: "no label token may match any math symbol token"
            raise self.error(f"label {label!r} is already a math symbol", label=label, position=start)
        handler(sys.intern(label), start)

    def _statement(self, label: str, keyword: str, body: list[str], start: int) -> tuple[str, ...]:
        """The symbols of a statement, checked to be active and to start with a constant."""
        if not body:
            raise self.error(f"`{keyword}` statement is empty (it needs a typecode)", label=label, position=start)
        active = self.active_symbols
        try:
            statement = tuple(map(active.__getitem__, body))
        except KeyError:
            bad = next(s for s in body if s not in active)
            reason = "is not an active variable" if bad in self.db.variables else "is not declared"
            raise self.error(f"math symbol {bad!r} {reason}", label=label, position=start) from None
        if statement[0] not in self.db.constants:
            raise self.error(f"typecode {statement[0]!r} must be a constant", label=label, position=start)
        return statement

    def _floating(self, label: str, start: int) -> None:
        body = self._declaration_body("$f", start, label)
        statement = self._statement(label, "$f", body, start)
        if len(statement) != 2:
            raise self.error("`$f` must be `typecode variable`", label=label, position=start)
        variable = statement[1]
        if variable not in self.db.variables:
            raise self.error(f"`$f` types {variable!r}, which is not a variable", label=label, position=start)
        if variable in self.active_floating:
            other = self.active_floating[variable].label
            raise self.error(f"variable {variable!r} already has an active `$f` ({other})", label=label, position=start)
        hypothesis = Hypothesis(label, "f", statement, self.tokens.path, self.tokens.line_of(start))
        self.active_floating[variable] = hypothesis
        self.floating_rank[variable] = len(self.active_hypotheses)
        self.scopes[-1].floating_variables.append(variable)
        self._add_hypothesis(hypothesis)
        self._context_floating = None

    def _essential(self, label: str, start: int) -> None:
        body = self._declaration_body("$e", start, label)
        statement = self._statement(label, "$e", body, start)
        self._typed_variables(label, statement, start)
        hypothesis = Hypothesis(label, "e", statement, self.tokens.path, self.tokens.line_of(start))
        self.active_essential.append(hypothesis)
        self._add_hypothesis(hypothesis)

    def _add_hypothesis(self, hypothesis: Hypothesis) -> None:
        self.hypothesis_order[hypothesis.label] = len(self.active_hypotheses)
        self.active_hypotheses.append(hypothesis)
        self.db.labels[hypothesis.label] = hypothesis

    def _typed_variables(self, label: str, statement: tuple[str, ...], start: int) -> set[str]:
        """The variables of a statement, each checked to have an active ``$f``."""
        variables = self.db.variables.intersection(statement)
        if not self.active_floating.keys() >= variables:
            untyped = sorted(variables - self.active_floating.keys())
            raise self.error(f"variable {untyped[0]!r} has no active `$f` typing it", label=label, position=start)
        return variables

    def _axiom(self, label: str, start: int) -> None:
        body = self._declaration_body("$a", start, label)
        statement = self._statement(label, "$a", body, start)
        variables = self._typed_variables(label, statement, start)
        self._add_assertion(label, "a", statement, variables, None, start)

    def _theorem(self, label: str, start: int) -> None:
        body = self._body("$p", start, label)
        try:
            split = body.index("$=")
        except ValueError:
            raise self.error("`$p` statement has no proof (`$=` is missing)", label=label, position=start) from None
        if " ".join(body).count("$") != 1:  # only the `$=` may hold a `$`
            self._check_no_keyword(body[:split], "$p", "math symbol", start, label)
            self._check_no_keyword(body[split + 1 :], "$p", "proof token", start, label)
        statement = self._statement(label, "$p", body[:split], start)
        variables = self._typed_variables(label, statement, start)
        proof = tuple(body[split + 1 :])
        if not proof:
            raise self.error(
                "`$p` statement has an empty proof (use `?` for an unknown proof)", label=label, position=start
            )
        self._add_assertion(label, "p", statement, variables, proof, start)

    def _add_assertion(
        self,
        label: str,
        kind: Literal["a", "p"],
        statement: tuple[str, ...],
        variables: set[str],
        proof: tuple[str, ...] | None,
        start: int,
    ) -> None:
        hypotheses, disjoint = self._frame(statement, variables)
        is_theorem = kind == "p"
        assertion = Assertion(
            label=label,
            kind=kind,
            statement=statement,
            hypotheses=hypotheses,
            disjoint=disjoint,
            number=len(self.db.assertions),
            file=self.tokens.path,
            line=self.tokens.line_of(start),
            proof=proof,
            context_floating=self._current_context_floating() if is_theorem else (),
            context_disjoint=self._current_context_disjoint() if is_theorem else frozenset(),
        )
        self.db.labels[label] = assertion
        self.db.assertions.append(assertion)

    def _frame(
        self, statement: tuple[str, ...], variables: set[str]
    ) -> tuple[tuple[Hypothesis, ...], frozenset[DisjointPair]]:
        """Mandatory hypotheses (database order) and mandatory disjoint pairs of a new assertion.

        ``variables`` are those of ``statement``; the mandatory ones add those of the active ``$e``.
        """
        essential = self.active_essential
        mandatory = variables
        if essential:
            mandatory = self.db.variables.intersection(itertools.chain(statement, *[h.statement for h in essential]))
        in_order = sorted(mandatory, key=self.floating_rank.__getitem__)
        chosen = list(map(self.active_floating.__getitem__, in_order))
        if essential:
            order = self.hypothesis_order
            if chosen and self.floating_rank[in_order[-1]] > order[essential[0].label]:
                chosen += essential  # a $f declared after a $e: interleave by declaration rank
                chosen.sort(key=lambda h: order[h.label])
            else:
                chosen += essential  # the usual case: every $f before every $e
        disjoint = _NO_PAIRS
        if self.disjoint_counts and len(mandatory) > 1:
            pairs = itertools.combinations(sorted(mandatory), 2)  # sorted: each pair in canonical order
            disjoint = frozenset(p for p in pairs if p in self.disjoint_counts)
        return tuple(chosen), disjoint

    def _current_context_floating(self) -> tuple[Hypothesis, ...]:
        if self._context_floating is None:
            self._context_floating = tuple(self.active_floating.values())
        return self._context_floating

    def _current_context_disjoint(self) -> frozenset[DisjointPair]:
        if self._context_disjoint is None:
            self._context_disjoint = frozenset(self.disjoint_counts)
        return self._context_disjoint

    def finish(self, stopped_at: str | None) -> Database:
        if stopped_at is None and len(self.scopes) > 1:
            file, line = self.scopes[-1].opened_at or (self.db.path, None)
            more = f" ({len(self.scopes) - 2} enclosing block(s) are unclosed too)" if len(self.scopes) > 2 else ""
            raise MMSyntaxError(
                f"block `${{` is never closed by `$}}` before the end of the database{more}", file=file, line=line
            )
        self.db.stopped_at = stopped_at
        outer_end = self.scopes[1].hypotheses_before if len(self.scopes) > 1 else len(self.active_hypotheses)
        outer = self.active_hypotheses[:outer_end]
        self.db.global_floating = tuple(h for h in outer if h.kind == "f")
        self.db.global_disjoint = frozenset(self.scopes[0].disjoint)
        return self.db


def read_database(
    path: str | os.PathLike[str], stop_at: str | None = None, progress: ReadProgress | None = None
) -> Database:
    """Read the database at ``path`` (following ``$[ $]`` includes).

    With ``stop_at``, reading stops just before the statement labelled ``stop_at``, and the rest of
    the file is not read; it is an error if that label never appears. ``progress``, if given, is
    called after each block of a file is read, with the file's path and the bytes read from it so far.
    """
    path = os.fspath(path)
    reader = _Reader(path, stop_at, progress)
    with collector_paused():
        try:
            reader.read_file(path)
        except _StopReading:
            logger.debug("stopped reading %s at %s", path, stop_at)
            return reader.finish(stopped_at=stop_at)
    if stop_at is not None:
        raise MMSyntaxError(f"stop label {stop_at!r} was never reached", file=path)
    return reader.finish(stopped_at=None)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (reading and verifying create no garbage cycles).

    Reading creates millions of long-lived objects, verifying millions of short-lived tuples that reference
    counting frees; the collector would scan the growing heap again and again for nothing (it makes
    reading set.mm almost twice as slow).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
