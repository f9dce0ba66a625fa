"""The one way kahooks hears signals: never taking a lock inside a signal handler.

A Python signal handler runs in the main thread between two bytecodes. One that calls
Event.set() takes the Event's lock; if the main thread was inside that very lock (in
wait() or clear()), the process deadlocks. kahooks serve was seen doing exactly that on a
SIGHUP. Here the C-level handler writes the signal number to a pipe (signal.set_wakeup_fd)
and the Python handler does nothing: `SignalPipe.wait` tells a loop which signals came
(`kahooks serve`'s heartbeat), `set_on_signals` has a small thread set an Event (ka-notify's
worker and FIFO reader, the lab's peers).
"""

from __future__ import annotations

import os
import select
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


class SignalPipe:
    """`signums` caught, each written as one byte into a pipe (made in the main thread, once per process)."""

    def __init__(self, signums: Iterable[int]) -> None:
        self.wanted = frozenset(int(signum) for signum in signums)
        self.read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for signum in self.wanted:
            signal.signal(signum, _ignore)

    def wait(self, seconds: float | None) -> set[int]:
        """The wanted signals that came, once one did or `seconds` passed (None: no limit); an empty
        set when none came."""
        if not select.select([self.read_end], [], [], seconds)[0]:
            return set()
        try:
            data = os.read(self.read_end, 4096)
        except BlockingIOError:
            return set()
        return set(self.wanted.intersection(data))


def set_on_signals(event: threading.Event, signums: Iterable[int]) -> None:
    """Set `event` when any of `signums` arrives (from the main thread, once per process)."""
    pipe = SignalPipe(signums)

    def watch() -> None:
        while True:
            if pipe.wait(None):
                event.set()

    threading.Thread(target=watch, name="signals", daemon=True).start()


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: nothing (the wakeup fd carries the news)."""
