"""Regular expressions matched against text others control: time-bounded, never a hang.

Another user's process command line (`ka-check-process --cmdline`) or a server's body
(`ka-check-http --regex`) is chosen by someone else: `(a+)+$` against a crafted line
backtracks for minutes, and a `re` match holds the interpreter's lock and cannot be
interrupted (a check's alarm, the daemon's heartbeat thread all wait). The `regex` module
(Debian: python3-regex) takes a `timeout=` and, with `concurrent=True`, lets other threads
run meanwhile. A match that runs out of time raises PatternTimeout: a failed probe.

Importing this module costs nothing; `regex` is imported only when a pattern is given.
"""

from __future__ import annotations

from kahooks.errors import ProbeTimeout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kahooks.deadline import Deadline

# regex's timeout counts the process's CPU time, not wall time (measured, regex 2022.10 on Debian 12 and
# 2026.12 from PyPI alike: a 1 s timeout ends after 1.0 s on a quiet machine, after 4.65 s of wall time
# beside 8 busy loops on 2 cores, 1.0 s of CPU in both). A match gets this share of what is left, so on a
# machine up to four times oversubscribed it still ends inside the deadline with its own words. Beyond,
# the runner stops it (regex checks for signals, so ka-check-*'s alarm interrupts it; the daemon's
# supervisor fails a stuck probe), and both name the step: Deadline.step, "matching /P/ against ...".
SHARE_OF_DEADLINE = 0.25


class PatternTimeout(ProbeTimeout):
    """A match that ran out of its time: the text was built to make the pattern backtrack."""


class Pattern:
    """A compiled pattern; `pattern` is its source, as `re` names it."""

    __slots__ = ("pattern", "_compiled")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def search(self, text: str, deadline: Deadline, what: str) -> bool:
        """Does the pattern match anywhere in `text`? PatternTimeout when the deadline's share runs out."""
        seconds = deadline.require(f"matching /{self.pattern}/ against {what}") * SHARE_OF_DEADLINE
        try:
            return self._compiled.search(text, timeout=seconds, concurrent=True) is not None
        except TimeoutError:
            raise PatternTimeout(f"/{self.pattern}/ gave up on {what} after {seconds * 1000:.0f} ms "
                                 "(the pattern backtracks too much on it)") from None


def compile_pattern(raw: str) -> Pattern:
    """An option converter (--cmdline, --regex): raises ValueError with a short reason."""
    import regex

    try:
        return Pattern(raw, regex.compile(raw))
    except regex.error as exc:
        raise ValueError(f"bad regular expression: {exc}") from None
