"""`kahooks serve`: one long-running process per node that checks, tells keepalived, and notifies.

What it does, all in one process:
- runs every [checks.NAME] in-process (CheckRunner) and writes each judged state
  to its track file, where keepalived's inotify sees it at once;
- drains the node while a maintenance file exists (watched, so at once);
- reads keepalived's notify FIFO in order and delivers the spool (the same Worker as ka-notify);
- keeps a heartbeat file fresh, so `ka-check-heartbeat` in a vrrp_script can
  fault the node when the daemon is dead and its track files are stale;
- writes status.json for `kahooks status` and serves Prometheus metrics.

Signals: SIGHUP reloads (the new file is validated first; an invalid one is
refused and the running configuration stays), SIGTERM/SIGINT stop cleanly: the
FIFO is read for half a second more (keepalived writes its STOP lines after
signalling), and undelivered notifications stay in the spool.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

from kahooks import redact
from kahooks.config import ConfigError
from kahooks.daemon import trackfile
from kahooks.daemon.notifications import Notifications
from kahooks.daemon.runner import CheckRunner, ProcessWatcher
from kahooks.daemon.status import process_start
from kahooks.errors import KahooksError, os_words

if TYPE_CHECKING:
    from typing import Any

    from kahooks.config import Config
    from kahooks.daemon.settings import CheckSpec, ServeSettings
    from kahooks.daemon.snapshot import CheckState, Snapshot, ThreadState

log = logging.getLogger("kahooks.serve")


def load_config(path: str) -> Config:
    """The whole kahooks.toml with the daemon's tables parsed: raises ConfigError listing every problem."""
    from kahooks.daemon.settings import SECTIONS
    from kahooks.notifiers import load_config as load_with_channels

    return load_with_channels(path, SECTIONS)


class Daemon:
    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self.config: Config | None = None
        self.runners: dict[str, CheckRunner] = {}
        self.written: dict[str, int] = {}          # track file -> the value it holds now
        self.write_errors: dict[str, str] = {}     # track file -> the error last logged for it
        self.publish_lock = threading.Lock()
        self.watcher = ProcessWatcher()
        self.files: Any = None
        self.stopping = threading.Event()
        # Signal handlers only set a flag and write a byte here: a handler that takes a lock
        # (threading.Event.set) deadlocks a main thread that was inside that lock when the signal came.
        self.stop_requested = False
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.reload_requested = False
        self.notifications = Notifications()
        self.metrics_server: Any = None
        self.started = time.time()
        self.heartbeat_time = 0.0
        self.stopped_at: float | None = None
        self.maintenance_seen: frozenset[str] = frozenset()

    @property
    def serve(self) -> ServeSettings:
        return self.config.sections["serve"]  # type: ignore[union-attr]  # apply() sets config first

    # Life cycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """Load, start everything, and loop until SIGTERM; the caller reports a first ConfigError."""
        from kahooks import commands

        commands.SUBREAPER_ALLOWED = False  # many commands at once: never adopt every orphan of the node
        # Before anything is written: a SIGHUP that follows the first heartbeat must reload, not kill.
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        config = load_config(self.config_path)
        self.preflight(config)
        self.apply(config)
        log.info("serving %d checks from %s (pid %d)", len(self.runners), self.config_path, os.getpid())
        try:
            while not self.stop_requested:
                if self.reload_requested:
                    self.reload_requested = False
                    self.reload()
                self.housekeeping()
                self._sleep(self.serve.heartbeat_interval)
        finally:
            self.stopping.set()
            self.shutdown()
        return 0

    def preflight(self, config: Config) -> None:
        """Refuse to start, in one line, where the daemon could not do its job: systemd then sees it."""
        from kahooks.spool import Spool

        serve: ServeSettings = config.sections["serve"]
        probe = os.path.join(serve.state_dir, f".preflight.{os.getpid()}")
        try:
            trackfile.write_atomic(probe, "")  # not the heartbeat: nothing is promised before apply()
            os.unlink(probe)
        except OSError as exc:
            raise KahooksError(f"cannot write in state_dir {serve.state_dir}: {os_words(exc)}") from None
        if serve.deliver:
            try:
                Spool(config.spool_dir).ensure().check_writable()
            except OSError as exc:
                raise KahooksError(f"cannot write in spool_dir {config.spool_dir}: {os_words(exc)}") from None

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop_requested = True
        self._wake()

    def _on_hup(self, signum: int, frame: object) -> None:
        self.reload_requested = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self.wake_write, b"x")
        except BlockingIOError:
            pass  # already woken

    def _sleep(self, seconds: float) -> None:
        """Until the next heartbeat, or at once when a signal came."""
        import select

        ready, _, _ = select.select([self.wake_read], [], [], seconds)
        if ready:
            try:
                os.read(self.wake_read, 4096)
            except BlockingIOError:
                pass

    def reload(self) -> bool:
        """Apply the configuration file again; an invalid one is refused and logged, line by line."""
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            for line in exc.lines():
                log.error("reload refused: %s", line)
            log.error("reload refused: still running the previous configuration of %s", self.config_path)
            return False
        self.apply(new)
        log.info("reloaded %s: %d checks", self.config_path, len(self.runners))
        return True

    def apply(self, new: Config) -> None:
        """Switch to `new`: identical checks keep running with their state, others restart."""
        old = self.config
        self.config = new
        specs: dict[str, CheckSpec] = new.sections["checks"]
        for name in list(self.runners):
            runner = self.runners[name]
            if name not in specs or specs[name].identity() != runner.spec.identity():
                runner.stop()
                del self.runners[name]
                if name not in specs:
                    log.warning("check %s removed; %s keeps its last value (%s)", name, runner.spec.track_file,
                                self.written.get(runner.spec.track_file))
        for spec in specs.values():
            # Now, not at the first write: keepalived watches a track file's directory, and cannot
            # watch (or create its init_file in) one that does not exist yet.
            try:
                os.makedirs(os.path.dirname(spec.track_file), mode=0o755, exist_ok=True)
            except OSError as exc:
                log.error("check %s: cannot create the directory of %s: %s", spec.name, spec.track_file,
                          os_words(exc))
        for name, spec in specs.items():
            if name not in self.runners:
                runner = CheckRunner(spec, self.publish, self.watcher)
                self.runners[name] = runner
                runner.start()
        self._watch_files()
        for runner in list(self.runners.values()):
            self._write_track(runner)  # a maintenance file that came or went during the reload
        self._restart_metrics(old)
        self.notifications.restart_delivery(new)
        if old is None or old.sections["serve"].notify_fifo != self.serve.notify_fifo:
            self.notifications.restart_fifo(new)
        self.housekeeping()

    def shutdown(self) -> None:
        log.info("stopping: %d checks; undelivered notifications stay in the spool", len(self.runners))
        self.notifications.stop_fifo()  # first: it reads on for half a second, for keepalived's STOP lines
        self.notifications.wait_retired(3)
        for runner in self.runners.values():
            runner.stop()
        for runner in self.runners.values():
            runner.join(2)
        if self.files is not None:
            self.files.stop()
        self.notifications.stop_delivery(wait=10)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.watcher.stop()
        self.stopped_at = time.time()
        self.write_status()

    # Checks and track files --------------------------------------------------------------

    def drained_by(self, spec: CheckSpec) -> str | None:
        """The maintenance file that drains this check's node now, if any."""
        for path in (self.serve.maintenance_file, spec.maintenance_file):
            if path and os.path.exists(path):
                return path
        return None

    def publish(self, runner: CheckRunner, changed: bool) -> None:
        """A check produced a result: log a change, and write the track file when its value changes."""
        spec = runner.spec
        verdict = runner.verdict
        if changed:
            word = "healthy" if verdict.ok else "FAILED"
            log.log(logging.INFO if verdict.ok else logging.WARNING, "check %s %s: %s", spec.name, word, verdict.why)
        self._write_track(runner)
        if changed:
            self.write_status()

    def _write_track(self, runner: CheckRunner) -> None:
        spec = runner.spec
        if self.runners.get(spec.name) is not runner:
            return  # replaced by a reload meanwhile
        drained = self.drained_by(spec)
        if runner.verdict.ok is None and not drained:
            return  # nothing known yet: keepalived's init_file value stands
        value = spec.ok_value if runner.verdict.ok and not drained else spec.fail_value
        with self.publish_lock:
            # The file, not a cache, is the truth: keepalived reads a deleted track file as 0
            # (healthy), so a file that went or was changed by hand is written again.
            if trackfile.read_value(spec.track_file) == value:
                self.written[spec.track_file] = value
                self.write_errors.pop(spec.track_file, None)
                return
            try:
                trackfile.write_value(spec.track_file, value)
            except OSError as exc:
                # Once per distinct error, not once per probe: a full disk must not flood the log.
                why = os_words(exc)
                if self.write_errors.get(spec.track_file) != why:
                    self.write_errors[spec.track_file] = why
                    log.error("check %s: cannot write %s: %s", spec.name, spec.track_file, os_words(exc))
                return
            if self.write_errors.pop(spec.track_file, None):
                log.info("check %s: %s written again", spec.name, spec.track_file)
            self.written[spec.track_file] = value

    def republish(self, reason: str) -> None:
        """Rewrite every track file from current state (a maintenance file came or went)."""
        log.warning("%s", reason)
        for runner in list(self.runners.values()):
            self._write_track(runner)
        self.write_status()

    def _watch_files(self) -> None:
        from kahooks.daemon.filewatch import FileWatch

        if self.files is not None:
            self.files.stop()
        self.files = FileWatch()
        for path in sorted(self._maintenance_paths()):
            self.files.add(path, lambda path: self._maintenance_changed())
        for runner in self.runners.values():
            pidfile = getattr(runner.check, "pidfile", None)
            if pidfile:
                self.files.add(pidfile, lambda path, runner=runner: runner.poke(f"{path} changed"))
        self.files.start()
        self.maintenance_seen = self._maintenance_now()
        for runner in self.runners.values():
            if getattr(runner.check, "pidfile", None):
                runner.poke("pidfile watch (re)started")  # a change before the watch began was not heard

    def _maintenance_paths(self) -> set[str]:
        paths = {self.serve.maintenance_file} | {runner.spec.maintenance_file for runner in self.runners.values()}
        return {path for path in paths if path}

    def _maintenance_now(self) -> frozenset[str]:
        return frozenset(path for path in self._maintenance_paths() if os.path.exists(path))

    def _maintenance_changed(self) -> None:
        """A maintenance file came or went (heard through inotify, or seen at a heartbeat)."""
        now = self._maintenance_now()
        if now != self.maintenance_seen:
            self.maintenance_seen = now
            self.republish(f"maintenance files present: {', '.join(sorted(now))}: draining" if now
                           else "no maintenance file present: undraining")

    # The periodic duties ------------------------------------------------------------------

    def housekeeping(self) -> None:
        """Each heartbeat: judge stuck probes, notice missed file events, keep the FIFO, write what is read."""
        for runner in list(self.runners.values()):
            runner.check_stuck()
            self._write_track(runner)  # a track file deleted or edited by hand is put right
        self._maintenance_changed()  # also where a directory could not be watched
        self.notifications.housekeeping()
        self.heartbeat_time = time.time()
        try:
            trackfile.write_atomic(self.serve.heartbeat_file, f"{os.getpid()} {self.heartbeat_time:.3f}\n")
        except OSError as exc:
            log.error("cannot write the heartbeat %s: %s", self.serve.heartbeat_file, os_words(exc))
        self.write_status()
        if self.serve.metrics_textfile:
            try:
                trackfile.write_atomic(self.serve.metrics_textfile, self.metrics_text())
            except OSError as exc:
                log.error("cannot write %s: %s", self.serve.metrics_textfile, os_words(exc))

    def snapshot(self) -> Snapshot:
        checks: dict[str, CheckState] = {}
        for name, runner in sorted(list(self.runners.items())):
            spec = runner.spec
            checks[name] = {**runner.verdict.as_dict(), "kind": spec.kind, "run": " ".join(redact.words(spec.words)),
                            "interval": spec.interval, "rise": spec.rise, "fall": spec.fall,
                            "track_file": spec.track_file, "value": self.written.get(spec.track_file),
                            "drained_by": self.drained_by(spec), "watched": runner.watched}
        return {"pid": os.getpid(), "pid_start": process_start(os.getpid()), "stopped": self.stopped_at,
                "config": self.config_path, "started": self.started,
                "heartbeat": self.heartbeat_time, "maintenance": bool(self._maintenance_now()),
                "checks": checks, **self.notifications.snapshot(),
                "spool_dir": self.config.spool_dir if self.config else None,
                "notify_fifo": self.serve.notify_fifo, "threads": self.thread_states()}

    def thread_states(self) -> dict[str, ThreadState]:
        """The supervised threads and the check threads: running, restarting (and why), stopped."""
        states = self.notifications.thread_states()
        states["pidfd-watcher"] = {"state": "running" if self.watcher.thread.is_alive() else "stopped",
                                   "restarts": self.watcher.failures, "last_error": "", "since": self.started}
        for name, runner in sorted(list(self.runners.items())):
            alive = runner.thread is not None and runner.thread.is_alive()
            states[f"check-{name}"] = {"state": "running" if alive else "stopped", "restarts": 0,
                                       "last_error": "", "since": self.started}
        return states

    def write_status(self) -> None:
        try:
            # 0640: check results can name hosts and paths an unprivileged user need not see.
            trackfile.write_atomic(self.serve.status_file, json.dumps(self.snapshot(), indent=1, sort_keys=True),
                                   mode=0o640)
        except OSError as exc:
            log.error("cannot write %s: %s", self.serve.status_file, os_words(exc))

    def metrics_text(self) -> str:
        from kahooks.daemon.metrics import render
        from kahooks.spool import Spool

        spool = None
        if self.config is not None and os.path.isdir(self.config.spool_dir):
            spool = Spool(self.config.spool_dir).depth()
        return render(self.snapshot(), spool)

    def _restart_metrics(self, old: Config | None) -> None:
        from kahooks.daemon.metrics import MetricsServer

        previous = old.sections["serve"].metrics_listen if old is not None else None
        if self.metrics_server is not None and previous == self.serve.metrics_listen:
            return
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        if self.serve.metrics_listen:
            try:
                self.metrics_server = MetricsServer(self.serve.metrics_listen, self.metrics_text)
            except OSError as exc:
                log.error("metrics: cannot listen on %s:%d: %s", *self.serve.metrics_listen, os_words(exc))
