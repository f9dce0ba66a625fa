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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

MAX_INCLUDE_DEPTH = 16
N = TypeVar("N", int, float)
MAX_FILE_BYTES = 4 * 1024 * 1024  # a keepalived.conf is kilobytes; this is a runaway guard


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


def number(statement: Statement | None, default: N, convert: Callable[[str], N]) -> N:
    """The first word of `statement` as a number, `default` when it is missing or no number
    (keepalived too falls back to its default and says so in `keepalived -t`)."""
    if statement is None or not statement.args:
        return default
    try:
        return convert(statement.args[0])
    except ValueError:
        return default


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

    # Lines: files, includes, comments, definitions, conditions --------------------------------

    def lines(self, path: str, depth: int = 0) -> list[_Line]:
        if depth > MAX_INCLUDE_DEPTH:
            raise ConfError(path, 0, f"includes nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)")
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfError(path, 0, f"cannot read: {exc.strerror or exc}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise ConfError(path, 0, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a keepalived.conf")
        self.files.append(path)
        text = raw.decode("utf-8", errors="replace")
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
            definition = re.match(r"^\$([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", expanded)
            if definition:
                name, value = definition.group(1), definition.group(2)
                if value.endswith("\\"):
                    pending_definition = name
                    value = value.rstrip("\\").strip()
                self.definitions[name] = value
                continue
            if expanded.startswith(("~SEQ", "~LST")):
                self.notes.append((path, number, f"{expanded.split('(')[0]} is not expanded by kahooks doctor"))
                continue
            for substituted in self._substitute(expanded, path, number).split("\n"):
                piece = self._condition(decomment(substituted)) if substituted.strip() else None
                if not piece:
                    continue
                include = re.match(r"^include[rmwba]?\s+(.*)$", piece)
                if include:
                    out.extend(self._include(include.group(1).strip(), path, number, depth))
                else:
                    out.append(_Line(piece, path, number))
        return out

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
        if "$" not in line or not self.definitions:
            return line

        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            return self.definitions.get(name, match.group(0))

        for _ in range(10):  # definitions may use definitions; keepalived rechecks too
            new = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", value, line)
            if new == line:
                break
            line = new
        return line

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
            if not os.access(match, os.R_OK):
                raise ConfError(path, number, f"include {match}: cannot read it")
            out.extend(self.lines(match, depth + 1))  # its own errors name its own FILE:LINE
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
