"""Read keepalived.conf as keepalived 2.2 reads it, keeping FILE:LINE on every statement.

What keepalived's lib/parser.c does, and so what this does:
- `#` and `!` start a comment anywhere outside double quotes (`\\#`, `\\!` are literal);
- `include PATTERN` is a glob; a relative pattern is resolved from the directory of the file
  that includes it (keepalived chdir()s there); a pattern that matches nothing is skipped;
- `$NAME=value` defines, `$NAME` and `${NAME}` use (a trailing `\\` continues a definition);
- `@ID line` keeps the line only where keepalived's config id (`-i`, default the short host
  name) is ID, `@^ID line` only where it is not;
- `{` and `}` open and close blocks wherever they stand outside quotes;
- words split on blanks, double-quoted strings are one word without their quotes.
`~SEQ`/`~LST` generators are not expanded: their line is skipped and reported as a note.
"""

from __future__ import annotations

import glob
import os
import re
import socket
from dataclasses import dataclass, field
from typing import TypeVar

from kahooks.errors import os_words
from kahooks.files import safefs
from kahooks.settings.options import number_problem

N = TypeVar("N", int, float)
# A keepalived.conf is kilobytes. These are runaway guards, each reported as FILE:LINE: keepalived
# itself has no include limit (it runs out of descriptors) and caps an expanded line at 1024 bytes.
MAX_INCLUDE_DEPTH = 16
MAX_FILES = 1000                      # files read, a file included twice counting twice
MAX_FILE_BYTES = 4 * 1024 * 1024      # one file
MAX_TOTAL_BYTES = 16 * 1024 * 1024    # every file read and every definition's expansion, together
MAX_EXPANDED_LINE = 1024 * 1024       # one line after its definitions are expanded
MAX_EXPANSIONS = 100_000              # definitions expanded on one line (empty ones make no bytes)
MAX_NESTING = 100                     # a definition that uses one that uses one ...
DEFINITION = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
INCLUDE = re.compile(r"^include[rmwba]?\s+(.*)$")


class ConfError(Exception):
    """The file cannot be read as keepalived would: one line, FILE:LINE first."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass
class Statement:
    """One keyword line and, if it opened a block, the statements inside it."""

    words: list[str]
    file: str
    line: int
    children: list[Statement] | None = None  # None: no block; []: an empty block

    @property
    def keyword(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def args(self) -> list[str]:
        return self.words[1:]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def all(self, keyword: str) -> list[Statement]:
        return [child for child in self.children or [] if child.keyword == keyword]

    def first(self, keyword: str) -> Statement | None:
        found = self.all(keyword)
        return found[-1] if found else None  # keepalived keeps the last value given

    def value(self, keyword: str, default: str | None = None) -> str | None:
        found = self.first(keyword)
        return found.args[0] if found is not None and found.args else default

    def has(self, keyword: str) -> bool:
        return self.first(keyword) is not None


@dataclass
class Document:
    """A whole configuration: the top-level statements and what reading it noticed."""

    path: str
    statements: list[Statement]
    files: list[str] = field(default_factory=list)
    notes: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, what was skipped)

    def all(self, keyword: str) -> list[Statement]:
        return [statement for statement in self.statements if statement.keyword == keyword]


@dataclass
class _Line:
    text: str
    file: str
    line: int


def checked(statement: Statement | None, default: N, low: float, high: float,
            whole: bool = False) -> tuple[N, str | None]:
    """The first word of `statement` as a number from `low` to `high` (options.number_problem, the one
    range check: NaN and infinities never pass), else `default` and why, in words naming the value."""
    if statement is None or not statement.args:
        return default, None
    text = statement.args[0]
    try:
        value: float = int(text) if whole else float(text)
    except ValueError:
        value = float("nan")
    problem = number_problem(value, low, high, whole)
    if problem is None:
        return value, None  # type: ignore[return-value]  # int when whole, float otherwise, as N
    shown = text if len(text) <= 40 else text[:40] + "..."
    return default, f"{statement.keyword} {shown!r} {problem}: keepalived ignores it (the doctor assumes {default:g})"


def default_config_id() -> str:
    """keepalived's default config id: the host name up to its first dot."""
    return socket.gethostname().split(".")[0]


def decomment(text: str) -> str:
    """The line without its comment, as keepalived's decomment() leaves it."""
    out: list[str] = []
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            quoted = not quoted
        elif char == "\\" and index + 1 < len(text):
            if not quoted and text[index + 1] in "#!":
                out.append(text[index + 1])
                index += 2
                continue
            out.append(text[index:index + 2])
            index += 2
            continue
        elif char in "#!" and not quoted:
            break
        out.append(char)
        index += 1
    return "".join(out).strip()


class Reader:
    def __init__(self, config_id: str | None = None) -> None:
        self.config_id = default_config_id() if config_id is None else config_id
        self.definitions: dict[str, str] = {}
        self.files: list[str] = []
        self.notes: list[tuple[str, int, str]] = []
        self.files_read = 0
        self.total = 0  # bytes read and made by expansion, across the whole tree

    # Lines: files, includes, comments, definitions, conditions --------------------------------

    def lines(self, path: str, depth: int = 0, origin: tuple[str, int] | None = None) -> list[_Line]:
        """The lines of `path` with its includes spliced in; `origin`: the include line that named it."""
        blame = origin or (path, 0)
        if depth > MAX_INCLUDE_DEPTH:
            raise ConfError(*blame, f"includes nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)")
        self.files_read += 1
        if self.files_read > MAX_FILES:  # a file included twice is read twice, as keepalived does
            raise ConfError(*blame, f"more than {MAX_FILES} files read through includes "
                                    f"(files that include each other over and over?)")
        text = self._read(path, blame)
        out: list[_Line] = []
        pending_definition: str | None = None
        for number, physical in enumerate(text.splitlines(), 1):
            if pending_definition is not None:  # a `$NAME=...\` definition goes on
                line = physical.strip()
                more = line.endswith("\\")
                self.definitions[pending_definition] += "\n" + line.rstrip("\\").strip()
                if not more:
                    pending_definition = None
                continue
            line = decomment(physical)
            if not line:
                continue
            expanded = self._condition(line)
            if expanded is None:
                continue
            definition = DEFINITION.match(expanded)
            if definition:
                name, value = definition.group(1), definition.group(2)
                if value.endswith("\\"):
                    pending_definition = name
                    value = value.rstrip("\\").strip()
                self.definitions[name] = value  # kept as written: keepalived expands it where it is used
                continue
            if expanded.startswith(("~SEQ", "~LST")):
                self.notes.append((path, number, f"{expanded.split('(')[0]} is not expanded by kahooks doctor"))
                continue
            for substituted in self._substitute(expanded, path, number).split("\n"):
                piece = self._condition(decomment(substituted)) if substituted.strip() else None
                if not piece:
                    continue
                include = INCLUDE.match(piece)
                if include:
                    out.extend(self._include(include.group(1).strip(), path, number, depth))
                else:
                    out.append(_Line(piece, path, number))
        return out

    def _read(self, path: str, blame: tuple[str, int]) -> str:
        """The text of one file, read through safefs and counted against the whole tree's budget."""
        try:
            fd = safefs.open_regular(path)
        except safefs.UnsafeFile as exc:
            raise ConfError(*blame, str(exc)) from None
        except OSError as exc:
            raise ConfError(*blame, f"{path}: cannot read: {os_words(exc)}" if blame[1] else
                            f"cannot read: {os_words(exc)}") from None
        try:
            raw = safefs.read_fd(fd, MAX_FILE_BYTES, path)
        except safefs.UnsafeFile:
            raise ConfError(path, 0, f"larger than {MAX_FILE_BYTES} bytes: not a keepalived.conf") from None
        except OSError as exc:
            raise ConfError(path, 0, f"cannot read: {os_words(exc)}") from None
        finally:
            os.close(fd)
        self._spend(len(raw), *blame)
        self.files.append(path)
        return raw.decode("utf-8", errors="replace")

    def _spend(self, size: int, file: str, line: int) -> None:
        self.total += size
        if self.total > MAX_TOTAL_BYTES:
            raise ConfError(file, line, f"the configuration with its includes and definitions comes to more than "
                                        f"{MAX_TOTAL_BYTES} bytes: not a keepalived.conf")

    def _condition(self, line: str) -> str | None:
        if not line.startswith("@"):
            return line
        negate = line.startswith("@^")
        body = line[2:] if negate else line[1:]
        parts = body.split(None, 1)
        if len(parts) < 2:
            return None
        matches = parts[0] == self.config_id
        return parts[1] if matches != negate else None

    def _substitute(self, line: str, path: str, number: int) -> str:
        """`line` with every $NAME and ${NAME} replaced, definitions inside definitions too, as
        keepalived's replace_param() does; one pass over the output, capped in size and work."""
        if "$" not in line or not self.definitions:
            return line
        out: list[str] = []
        budget = [MAX_EXPANDED_LINE, MAX_EXPANSIONS]  # bytes out, definitions expanded

        def expand(text: str, using: tuple[str, ...]) -> None:
            done = 0
            for match in REFERENCE.finditer(text):
                name = match.group(1) or match.group(2)
                value = self.definitions.get(name)
                if value is None:
                    continue  # not a definition: left as written
                if name in using:
                    raise ConfError(path, number, f"${name} uses itself ({' -> '.join('$' + n for n in using)} -> "
                                                  f"${name}): keepalived expands it until the line is too long")
                budget[1] -= 1
                take(text[done:match.start()])
                if len(using) >= MAX_NESTING:
                    raise ConfError(path, number, f"definitions used inside definitions more than {MAX_NESTING} deep")
                if budget[1] < 0:
                    raise ConfError(path, number, f"expanding the definitions here takes more than {MAX_EXPANSIONS} "
                                                  f"steps (definitions that use each other over and over?)")
                expand(value, (*using, name))
                done = match.end()
            take(text[done:])

        def take(piece: str) -> None:
            budget[0] -= len(piece)
            if budget[0] < 0:
                raise ConfError(path, number, f"expanding the definitions here makes a line longer than "
                                              f"{MAX_EXPANDED_LINE} bytes (keepalived's own limit is 1024)")
            out.append(piece)

        expand(line, ())
        result = "".join(out)
        self._spend(max(0, len(result) - len(line)), path, number)
        return result

    def _include(self, pattern: str, path: str, number: int, depth: int) -> list[_Line]:
        pattern = pattern.strip('"')
        if not os.path.isabs(pattern):
            pattern = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), pattern))
        matches = sorted(glob.glob(pattern))
        if not matches:
            self.notes.append((path, number, f"include {pattern} matches no file: keepalived skips it"))
        out: list[_Line] = []
        for match in matches:
            if os.path.isdir(match):
                continue
            try:
                fd = safefs.open_regular(match)
            except safefs.UnsafeFile as exc:  # a FIFO, a device, a link another user planted
                self.notes.append((path, number, f"include: {exc}: not read"))
                continue
            except OSError as exc:
                raise ConfError(path, number, f"include {match}: cannot read it ({os_words(exc)})") from None
            os.close(fd)
            out.extend(self.lines(match, depth + 1, (path, number)))  # its own errors name its own FILE:LINE
        return out

    # Words and blocks ----------------------------------------------------------------------------

    def statements(self, lines: list[_Line]) -> list[Statement]:
        tokens: list[tuple[str, str, int]] = []  # (word or '{' '}' or '\n', file, line)
        for line in lines:
            tokens.extend((word, line.file, line.line) for word in split_words(line.text, line.file, line.line))
            tokens.append(("\n", line.file, line.line))
        root: list[Statement] = []
        stack: list[tuple[list[Statement], Statement | None]] = [(root, None)]
        current: list[str] = []
        start: tuple[str, int] = ("", 0)
        for word, file, number in tokens:
            siblings = stack[-1][0]
            if word == "{":
                statement = Statement(current, *(start if current else (file, number)), children=[])
                if not current and siblings and siblings[-1].children is None:
                    statement = siblings.pop()  # `name` on one line, `{` on the next
                    statement.children = []
                siblings.append(statement)
                stack.append((statement.children, statement))  # type: ignore[arg-type]  # set just above
                current = []
            elif word == "}":
                if current:
                    siblings.append(Statement(current, *start))
                    current = []
                if len(stack) == 1:
                    raise ConfError(file, number, "'}' without a block to close")
                stack.pop()
            elif word == "\n":
                if current:
                    siblings.append(Statement(current, *start))
                    current = []
            else:
                if not current:
                    start = (file, number)
                current.append(word)
        if len(stack) > 1:
            opened = stack[-1][1]
            assert opened is not None
            raise ConfError(opened.file, opened.line, f"block '{' '.join(opened.words)}' is never closed")
        return root


def split_words(text: str, file: str, line: int) -> list[str]:
    """Blank-separated words, a double-quoted string as one word, `{` and `}` as words of their own."""
    words: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in " \t":
            index += 1
        elif char in "{}":
            words.append(char)
            index += 1
        elif char == '"':
            end = text.find('"', index + 1)
            if end < 0:
                raise ConfError(file, line, f"unterminated quote: {text[index:][:60]}")
            words.append(text[index + 1:end])
            index = end + 1
        else:
            end = index
            while end < len(text) and text[end] not in ' \t{}"':
                end += 1
            words.append(text[index:end])
            index = end
    return words


def read(path: str, config_id: str | None = None) -> Document:
    """The configuration at `path` with its includes; ConfError (FILE:LINE) when it cannot be read."""
    reader = Reader(config_id)
    statements = reader.statements(reader.lines(path))
    return Document(path, statements, reader.files, reader.notes)
