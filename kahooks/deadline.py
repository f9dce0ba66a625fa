"""A monotonic time budget shared by every step of one probe.

Timeouts in kahooks are sub-second and cumulative: connect, TLS handshake and
reads all draw from one budget, so a check never outlives its --timeout.
"""

from __future__ import annotations

import time

from kahooks.errors import ProbeTimeout


class Deadline:
    """The moment a probe must be finished by, measured on the monotonic clock."""

    __slots__ = ("seconds", "started", "expires", "step")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.expires = self.started + seconds
        # What the probe last began (require's `what`): when a runner's alarm has to stop a probe stuck
        # past its deadline, its line still says where it was stuck.
        self.step = ""

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires - time.monotonic())

    def where(self, words: str) -> str:
        """`words` after the step the probe was in, when it named one: 'waiting for db1: stopped by SIGTERM'."""
        return f"{self.step}: {words}" if self.step else words

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def require(self, what: str) -> float:
        """Seconds left for `what`, the step about to begin; raises ProbeTimeout when none are left."""
        self.step = what
        left = self.expires - time.monotonic()
        if left <= 0:
            raise ProbeTimeout(self.where(f"timed out after {format_seconds(self.seconds)}"))
        return left


def format_seconds(seconds: float) -> str:
    """Human form of a duration: '850 ms' below two seconds, '2.5 s' above."""
    if seconds < 2:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"
