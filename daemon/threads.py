"""Threads that must not die: each runs its job again after a crash, with backoff, and says so.

The daemon's FIFO reader and delivery worker used to end for good on one
transient error (a spool briefly read-only, EMFILE) while `kahooks status` still
said running. A Supervised thread logs the error, waits (0.5 s doubling to 30 s,
back to 0.5 s after a minute of good running), runs the job again, and keeps a
state that status.json and the metrics show.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from kahooks.daemon.snapshot import ThreadState

log = logging.getLogger("kahooks.serve")
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
HEALTHY_RUN = 60.0  # a job that ran this long before failing starts its backoff afresh


class Supervised:
    """Run `job(stop)` in a thread until `stop` is set; a job that raises or returns early is run again."""

    def __init__(self, name: str, job: Callable[[threading.Event], object]) -> None:
        self.name = name
        self.job = job
        self.stopping = threading.Event()
        self.state = "starting"
        self.restarts = 0
        self.last_error = ""
        self.since = time.time()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Supervised:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask the job to stop; returns at once (join() waits)."""
        self.stopping.set()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def alive(self) -> bool:
        return self.thread.is_alive()

    def _set(self, state: str) -> None:
        self.state, self.since = state, time.time()

    def _loop(self) -> None:
        delay = BACKOFF_INITIAL
        while not self.stopping.is_set():
            self._set("running")
            started = time.monotonic()
            try:
                self.job(self.stopping)
                if self.stopping.is_set():
                    break
                self.last_error = "ended by itself"
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("thread %s died: %s", self.name, self.last_error)
            if time.monotonic() - started >= HEALTHY_RUN:
                delay = BACKOFF_INITIAL
            self.restarts += 1
            self._set("restarting")
            log.error("thread %s stopped (%s); restarting in %.1f s (restart %d)", self.name, self.last_error,
                      delay, self.restarts)
            if self.stopping.wait(delay):
                break
            delay = min(BACKOFF_MAX, delay * 2)
        self._set("stopped")

    def as_dict(self) -> ThreadState:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error, "since": self.since}
