"""Reading keepalived's notify FIFO: every line, in order, without ever letting the pipe fill.

keepalived writes to the FIFO without blocking and drops lines when the pipe is
full, so a reader thread does nothing but read into memory (bounded) while the
caller's handler, which fsyncs, works through them. The FIFO is also held open
for writing here, so a keepalived reload (which closes and reopens it) is not
an end-of-file. After SIGTERM, reading goes on for `linger` seconds: keepalived
signals its fifo script before it writes the final STOP lines.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from kahooks.notify.spool import Spool

log = logging.getLogger("kahooks.notify.fifo")
MAX_BUFFERED_LINES = 100_000
LINE_LIMIT = 4096


def read_lines(fd: int, lines: queue.Queue, stop: threading.Event, linger: float) -> None:
    """Read whole lines from fd into `lines` until `linger` seconds after `stop` is set."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    pending = b""
    discarding = False  # inside an over-long line: its tail, up to the next newline, is no line either
    stop_at: float | None = None
    while True:
        if stop.is_set() and stop_at is None:
            stop_at = time.monotonic() + linger
        if stop_at is not None and time.monotonic() >= stop_at:
            break
        if not poller.poll(50):
            continue
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            time.sleep(0.01)
            continue
        pending += chunk
        *complete, pending = pending.split(b"\n")
        if discarding and complete:
            del complete[0]  # the end of the line dropped before
            discarding = False
        if len(pending) > LINE_LIMIT:
            log.warning("fifo: dropping an over-long line without a newline (%d bytes)", len(pending))
            pending, discarding = b"", True
        for raw in complete:
            if len(raw) > LINE_LIMIT:  # the same line, whether it came in one read or in several
                log.warning("fifo: dropping an over-long line (%d bytes)", len(raw))
                continue
            try:
                lines.put_nowait(raw.decode("utf-8", "replace"))
            except queue.Full:
                log.error("fifo: %d lines waiting; dropping %r", MAX_BUFFERED_LINES, raw[:80])
    lines.put(None)


def _handle_until_done(handle: Callable[[str], None], line: str, stop: threading.Event) -> None:
    """Record one line, retrying while recording fails (a spool briefly read-only, EMFILE): the
    reader thread keeps the pipe drained meanwhile, and no line is dropped while we run."""
    delay = 0.1
    while True:
        try:
            handle(line)
            return
        except Exception as exc:
            if stop.is_set():
                log.error("fifo: stopping, and cannot record %r: %s: %s", line, type(exc).__name__, exc)
                return
            log.error("fifo: cannot record %r: %s: %s; retrying in %.1f s", line, type(exc).__name__, exc, delay)
        stop.wait(delay)
        delay = min(5.0, delay * 2)


def serve_fifo(path: str, handle: Callable[[str], None], stop: threading.Event, linger: float = 0.5) -> int:
    """Feed every line of the FIFO at `path` to `handle`, in order; return how many lines were read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    keep_open = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # no EOF when keepalived closes its end
    lines: queue.Queue = queue.Queue(MAX_BUFFERED_LINES)
    reader = threading.Thread(target=read_lines, args=(fd, lines, stop, linger), name="fifo-reader", daemon=True)
    reader.start()
    count = 0
    try:
        while True:
            line = lines.get()
            if line is None:
                return count
            count += 1
            if line.strip():
                _handle_until_done(handle, line, stop)
    finally:
        reader.join(timeout=linger + 1)
        os.close(keep_open)
        os.close(fd)


class Recorder:
    """Each FIFO line recorded in `spool`, then `wake()` (whoever delivers). The line is parsed by the
    event model (kahooks.events.event.fifo_event: garbage is logged and skipped) inside Spool.record, under
    its record lock, like every other recorder's. `spool` may be replaced while the FIFO is read (a
    reload that moves spool_dir): the next line goes to the new one."""

    def __init__(self, spool: Spool, wake: Callable[[], object]) -> None:
        self.spool = spool
        self.wake = wake

    def __call__(self, line: str) -> None:
        from kahooks.events.event import fifo_event

        if self.spool.record(lambda: fifo_event(line)) is not None:
            self.wake()


def record_fifo(path: str, recorder: Recorder, stop: threading.Event) -> int:
    """Every event on keepalived's notify FIFO at `path` made durable by `recorder`, in order.
    `ka-notify fifo` and `kahooks serve` both read the FIFO this way. Returns how many lines were read."""
    return serve_fifo(path, recorder, stop)
