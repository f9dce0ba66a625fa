"""The one error hierarchy of kahooks; everything raised on purpose derives from KahooksError."""

from __future__ import annotations


def os_words(exc: BaseException) -> str:
    """An OSError (or any error) as words for an operator: 'No space left on device', not
    '[Errno 28] No space left on device'; the text or the type name when there is no strerror."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def counted(number: int, noun: str) -> str:
    """'1 check', '2 checks': an operator reads these lines, and '1 checks' reads as a bug."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class KahooksError(Exception):
    """Base of every error kahooks raises deliberately; its text is one line for an operator."""


class UsageError(KahooksError):
    """Bad command-line options or configuration values: the user must change something."""


class ProbeTimeout(KahooksError):
    """A probe ran out of its time budget."""


class Problem:
    __slots__ = ("key", "message", "line", "path")

    def __init__(self, key: str, message: str, line: int | None = None, path: str | None = None) -> None:
        # path: the file the key is in, when not the configuration's main file (a conf.d fragment)
        self.key, self.message, self.line, self.path = key, message, line, path


class ConfigError(KahooksError):
    """An invalid configuration: one line per problem, each with its key path (and line)."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{problem.path or self.path}:{problem.line}: {problem.key}: {problem.message}" if problem.line
                else f"{problem.path or self.path}: {problem.key}: {problem.message}" for problem in self.problems]


class ChannelConfigError(KahooksError):
    """Raised by a channel constructor: `key` is the option within the channel's table."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
