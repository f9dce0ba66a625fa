"""What `kahooks serve` tells operators: status.json (read by `kahooks status`) and Prometheus metrics.

Everything here reads the running Daemon and writes or serves a view of it;
nothing here changes what the daemon does.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import TYPE_CHECKING

from kahooks.daemon import trackfile
from kahooks.daemon.snapshot import redacted
from kahooks.daemon.status import process_start
from kahooks.errors import os_words
from kahooks.output import redact

if TYPE_CHECKING:
    from collections.abc import Callable

    from kahooks.daemon.service import Daemon
    from kahooks.daemon.snapshot import CheckState, Snapshot, ThreadState
    from kahooks.settings.config import Config

log = logging.getLogger("kahooks.serve")
# A burst of check changes is written as status.json at most this often (the heartbeat writes it anyway).
STATUS_GAP = 0.05


def snapshot(daemon: Daemon) -> Snapshot:
    """The daemon as status.json and /metrics show it, every string that can carry a secret redacted.

    Built every heartbeat, in the daemon's interpreter: at 500 checks a walk of the whole snapshot through
    redact.text, and a maintenance file looked up for each check, took about 20 ms (up to 40), and a death's
    probe that ran meanwhile waited for it (its /proc reads hand the lock over at each one). So a check's
    entry is built from what changes (its verdict, the two texts a probe wrote redacted) and what does not
    (CheckSpec.shown, redacted once per configuration); the maintenance files are looked up once; the
    redacting walk covers the rest."""
    specs = daemon.specs()
    maintenance = daemon.tracks.maintenance_now(specs)
    checks: dict[str, CheckState] = {}
    for name, runner in sorted(list(daemon.runners.items())):
        verdict = runner.verdict.as_dict()
        verdict["why"] = redact.text(verdict["why"])
        verdict["last"]["summary"] = redact.text(verdict["last"]["summary"])
        checks[name] = {**verdict, **runner.spec.shown,  # type: ignore[typeddict-item]
                        "value": daemon.tracks.written.get(runner.spec.track_file),
                        "drained_by": _redacted_path(daemon.tracks.drained_in(runner.spec, maintenance)),
                        "watched": runner.watched}
    # Typed as the Snapshot it is once its checks and check threads are in (below).
    shown: Snapshot = redacted({"pid": os.getpid(), "pid_start": process_start(os.getpid()),  # type: ignore[assignment]
                                "stopped": daemon.stopped_at, "config": daemon.config_path, "started": daemon.started,
                                "heartbeat": daemon.heartbeat_time, "maintenance": bool(maintenance),
                                "checks": {}, **daemon.notifications.snapshot(),
                                "spool_dir": daemon.config.spool_dir if daemon.config else None,
                                "notify_fifo": daemon.serve.notify_fifo, "threads": supervised_states(daemon),
                                "wire": daemon.wire.snapshot()})
    shown["checks"] = checks
    shown["threads"].update(check_thread_states(daemon))
    return shown


def _redacted_path(path: str | None) -> str | None:
    return None if path is None else redact.text(path)


def supervised_states(daemon: Daemon) -> dict[str, ThreadState]:
    states = daemon.notifications.thread_states()
    if daemon.wire.thread is not None:
        states["wire"] = daemon.wire.thread.as_dict()
    states["pidfd-watcher"] = {"state": "running" if daemon.watcher.thread.is_alive() else "stopped",
                               "restarts": daemon.watcher.failures, "last_error": "", "since": daemon.started}
    return states


def check_thread_states(daemon: Daemon) -> dict[str, ThreadState]:
    """One per check thread: nothing in them comes from outside (nothing to redact)."""
    states: dict[str, ThreadState] = {}
    for name, runner in sorted(list(daemon.runners.items())):
        alive = runner.thread is not None and runner.thread.is_alive()
        states[f"check-{name}"] = {"state": "running" if alive else "stopped", "restarts": 0,
                                   "last_error": "", "since": daemon.started}
    return states


def write_status(daemon: Daemon) -> None:
    try:
        # 0640: check results can name hosts and paths an unprivileged user need not see. Compact: json's
        # C encoder (indent= takes the pure-Python one, about ten times slower on 500 checks).
        trackfile.write_atomic(daemon.serve.status_file, json.dumps(snapshot(daemon), sort_keys=True),
                               mode=0o640)
    except OSError as exc:
        log.error("cannot write %s: %s", daemon.serve.status_file, os_words(exc))


class StatusWrites:
    """status.json after a check changed, written by one thread and coalesced: every change asks
    (`request`), and the asks that come while a write runs, or within STATUS_GAP of it, make one more
    write. A write is O(checks) (the whole snapshot): written once per change, 500 checks failing
    together (a node losing its services, the daemon's start) cost 500 writes, each in the thread of
    the check that should be watching its service, and held the interpreter from the others' detection."""

    def __init__(self, write: Callable[[], None], gap: float = STATUS_GAP) -> None:
        self.write = write
        self.gap = gap
        self.asked = threading.Event()
        self.stopping = threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self._loop, name="status-writer", daemon=True)
        self.thread.start()

    def request(self) -> None:
        self.asked.set()

    def stop(self, wait: float) -> None:
        self.stopping.set()
        self.asked.set()
        self.thread.join(wait)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            if not self.asked.wait(1.0):
                continue
            self.asked.clear()
            if self.stopping.is_set():
                return  # the daemon's shutdown writes the last status itself
            try:
                self.write()
            except Exception:  # a bug in a snapshot must not end the writes: the heartbeat's still come
                log.exception("cannot write the status")
            self.writes += 1
            self.stopping.wait(self.gap)


def metrics_text(daemon: Daemon) -> str:
    from kahooks.daemon.metrics import render
    from kahooks.notify.spool import Spool

    spool = None
    if daemon.config is not None and os.path.isdir(daemon.config.spool_dir):
        spool = Spool(daemon.config.spool_dir).depth()
        # Every configured channel has its series from the start, at 0: a rule such as "dead letters
        # growing" (delta over time) cannot see the first dead letter of a series that begins at 1.
        for channel in daemon.config.channels:
            spool["queued"].setdefault(channel, 0)
            spool["dead_by_channel"].setdefault(channel, 0)
    return render(snapshot(daemon), spool)


def restart_metrics(daemon: Daemon, old: Config | None) -> None:
    from kahooks.daemon.metrics import MetricsServer

    previous = old.sections["serve"].metrics_listen if old is not None else None
    if daemon.metrics_server is not None and previous == daemon.serve.metrics_listen:
        return
    if daemon.metrics_server is not None:
        daemon.metrics_server.stop()
        daemon.metrics_server = None
    if daemon.serve.metrics_listen:
        try:
            daemon.metrics_server = MetricsServer(daemon.serve.metrics_listen, lambda: metrics_text(daemon))
        except OSError as exc:
            log.error("metrics: cannot listen on %s:%d: %s", *daemon.serve.metrics_listen, os_words(exc))
