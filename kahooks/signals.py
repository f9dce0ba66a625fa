"""Turning signals into a threading.Event without taking a lock inside a signal handler.

A Python signal handler runs in the main thread between two bytecodes. One that calls
Event.set() takes the Event's lock; if the main thread was inside that very lock (in
wait() or clear()), the process deadlocks. kahooks serve was seen doing exactly that on a
SIGHUP. Here the C-level handler writes the signal number to a pipe (signal.set_wakeup_fd),
the Python handler does nothing, and a small thread sets the Event.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


def set_on_signals(event: threading.Event, signums: Iterable[int]) -> None:
    """Set `event` when any of `signums` arrives (from the main thread, once per process)."""
    wanted = {int(signum) for signum in signums}
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for signum in wanted:
        signal.signal(signum, _ignore)
    os.set_blocking(read_end, True)

    def watch() -> None:
        while True:
            data = os.read(read_end, 64)
            if not data or wanted.intersection(data):
                event.set()
                if not data:
                    return

    threading.Thread(target=watch, name="signals", daemon=True).start()


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: nothing (the wakeup fd carries the news)."""
