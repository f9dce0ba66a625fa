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

    from kahooks.daemon.runner import CheckRunner
    from kahooks.daemon.service import Daemon
    from kahooks.daemon.snapshot import CheckState, Snapshot, ThreadState
    from kahooks.settings.config import Config

log = logging.getLogger("kahooks.serve")
# A burst of check changes is written as status.json at most this often (the heartbeat writes it anyway).
STATUS_GAP = 0.05
# How long status.json's last write waits for one in progress (a small file: milliseconds, unless the disk hangs).
STATUS_RENAME_WAIT = 2.0


def snapshot(daemon: Daemon) -> Snapshot:
    """The daemon as /metrics (and, serialized by status_text, status.json) shows it, every string that
    can carry a secret redacted: a check's entry from what changes (its verdict, the two texts a probe
    wrote redacted) and what does not (CheckSpec.shown, redacted once per configuration), the
    maintenance files looked up once, the redacting walk over the rest."""
    maintenance = daemon.tracks.maintenance_now(daemon.specs())
    shown = _head(daemon, maintenance)
    shown["checks"] = {name: check_entry(daemon, runner, maintenance)
                       for name, runner in sorted(list(daemon.runners.items()))}
    shown["threads"].update(check_thread_states(daemon))
    return shown


def check_entry(daemon: Daemon, runner: CheckRunner, maintenance: frozenset[str]) -> CheckState:
    verdict = runner.verdict.as_dict()
    verdict["why"] = redact.text(verdict["why"])
    verdict["last"]["summary"] = redact.text(verdict["last"]["summary"])
    return {**verdict, **runner.spec.shown,  # type: ignore[typeddict-item]
            "value": daemon.tracks.written.get(runner.spec.track_file),
            "drained_by": _redacted_path(daemon.tracks.drained_by(runner.spec, maintenance)),
            "watched": runner.watched}


def _head(daemon: Daemon, maintenance: frozenset[str]) -> Snapshot:
    """Everything but the checks and their threads, through the redacting walk."""
    # Typed as the Snapshot it is once its checks and check threads are in.
    return redacted({"pid": os.getpid(), "pid_start": process_start(os.getpid()),  # type: ignore[return-value]
                     "stopped": daemon.stopped_at, "config": daemon.config_path, "started": daemon.started,
                     "heartbeat": daemon.heartbeat_time, "maintenance": bool(maintenance),
                     "checks": {}, **daemon.notifications.snapshot(),
                     "spool_dir": daemon.config.spool_dir if daemon.config else None,
                     "notify_fifo": daemon.serve.notify_fifo, "threads": supervised_states(daemon),
                     "wire": daemon.wire.snapshot()})


class StatusText:
    """status.json's text, each check's part serialized again only when something in it changed.

    Written every heartbeat: at 500 checks, building every entry and json.dumps of the whole took about
    7 ms each, the encoder's half without ever letting go of the interpreter, and a death's probe that ran
    meanwhile waited for both (the scale bench's detection p99). Most checks' parts do not change between
    two writes (a healthy watched process check probes every 30 s): each is kept as JSON text, keyed by
    what it is made of, and the document is joined from the texts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # the status writer, and the shutdown's last write
        self.parts: dict[str, tuple[CheckRunner, tuple, str, str]] = {}  # name -> runner, key, entry, thread

    def text(self, daemon: Daemon) -> str:
        maintenance = daemon.tracks.maintenance_now(daemon.specs())
        head = _head(daemon, maintenance)
        del head["checks"]  # type: ignore[misc]
        supervised = head.pop("threads")  # type: ignore[misc]
        runners = sorted(list(daemon.runners.items()))
        with self.lock:
            for name in set(self.parts).difference(name for name, _ in runners):
                del self.parts[name]
            entries, threads = [], []
            for name, runner in runners:
                entry, thread = self._part(daemon, name, runner, maintenance)
                entries.append(entry)
                threads.append(thread)
        supervised_text = json.dumps(supervised, sort_keys=True)
        threads_text = supervised_text[:-1] + (", " if supervised and threads else "") + ", ".join(threads) + "}"
        return (json.dumps(head, sort_keys=True)[:-1] + ', "checks": {' + ", ".join(entries) + '}, "threads": '
                + threads_text + "}")

    def _part(self, daemon: Daemon, name: str, runner: CheckRunner, maintenance: frozenset[str]) -> tuple[str, str]:
        verdict = runner.verdict
        drained = daemon.tracks.drained_by(runner.spec, maintenance)
        alive = runner.thread is not None and runner.thread.is_alive()
        # The key and the entry read under the lock a result is recorded with: a verdict caught half-way
        # through record() (runs counted, the rest not yet) would otherwise be kept, and shown, until the
        # check's next run, 30 s for a healthy watched process.
        with runner.lock:
            key = (verdict.runs, verdict.ok, daemon.tracks.written.get(runner.spec.track_file), drained,
                   runner.watched, alive, daemon.started)
            kept = self.parts.get(name)
            if kept is not None and kept[0] is runner and kept[1] == key:
                return kept[2], kept[3]
            shown = check_entry(daemon, runner, maintenance)
        entry = json.dumps(name) + ": " + json.dumps(shown, sort_keys=True)
        thread = json.dumps(f"check-{name}") + ": " + json.dumps(_thread_state(daemon, runner), sort_keys=True)
        self.parts[name] = (runner, key, entry, thread)
        return entry, thread


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
    return {f"check-{name}": _thread_state(daemon, runner) for name, runner in sorted(list(daemon.runners.items()))}


def _thread_state(daemon: Daemon, runner: CheckRunner) -> ThreadState:
    alive = runner.thread is not None and runner.thread.is_alive()
    return {"state": "running" if alive else "stopped", "restarts": 0, "last_error": "", "since": daemon.started}


def write_status(daemon: Daemon, last: bool = False) -> None:
    """status.json from the daemon's state now; `last`: the shutdown's, which says the daemon stopped.

    The status writer's writes and the last one take turns (daemon.status_renames), and once the daemon
    has stopped only the last one renames: a write the writer built before the stop and renamed after the
    last one put a running daemon's status back over the stopped one's."""
    text = daemon.status_text.text(daemon)  # outside the turn: building is the slow part
    if not daemon.status_renames.acquire(timeout=STATUS_RENAME_WAIT):  # a write hung on the disk
        log.error("cannot write %s: another write of it did not end within %g s", daemon.serve.status_file,
                  STATUS_RENAME_WAIT)
        return
    try:
        if daemon.stopped_at is not None and not last:
            return
        # 0640: check results can name hosts and paths an unprivileged user need not see. Not indented:
        # json's C encoder (indent= takes the pure-Python one, about ten times slower on 500 checks).
        trackfile.write_atomic(daemon.serve.status_file, text, mode=0o640)
    except OSError as exc:
        log.error("cannot write %s: %s", daemon.serve.status_file, os_words(exc))
    finally:
        daemon.status_renames.release()


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
