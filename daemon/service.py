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

import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from kahooks.daemon import reporting, trackfile
from kahooks.daemon.notifications import Notifications
from kahooks.daemon.publishing import TrackFiles
from kahooks.daemon.runner import CheckRunner, ProcessWatcher
from kahooks.daemon.wire import STOP_JOIN, Wire
from kahooks.errors import KahooksError, counted, os_words
from kahooks.settings.config import ConfigError
from kahooks.system import commands, sdnotify
from kahooks.system.signals import SignalPipe

if TYPE_CHECKING:
    from typing import Any

    from kahooks.daemon.settings import CheckSpec, ServeSettings
    from kahooks.settings.config import Config

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
        self.tracks = TrackFiles()
        self.watcher = ProcessWatcher()
        self.files: Any = None
        self.stopping = threading.Event()
        # Signals come through kahooks.system.signals (no lock taken in a handler); the main loop reads them.
        self.signals: SignalPipe | None = None
        self.stop_requested = False
        self.reload_requested = False
        self.notifications = Notifications()
        # status.json and the metrics textfile are O(checks + wire sources): written by their own thread,
        # never by the heartbeat's (a forged VRRP flood filling the wire's table made each write take
        # hundreds of milliseconds, and the heartbeat waited for them, up to 3 s in CI).
        self.status_writes = reporting.StatusWrites(self._write_reports)
        self.status_text = reporting.StatusText()
        self.status_renames = threading.Lock()  # status.json's writes take turns (reporting.write_status)
        self.textfile_due = False
        self.wire = Wire()
        self.metrics_server: Any = None
        self.started = time.time()
        self.heartbeat_time = 0.0
        self.stopped_at: float | None = None

    @property
    def serve(self) -> ServeSettings:
        return self.config.sections["serve"]  # type: ignore[union-attr]  # apply() sets config first

    # Life cycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """Load, start everything, and loop until SIGTERM; the caller reports a first ConfigError."""
        # What a command leaves, even setsid'd with a cleared environment, is re-parented to us: found and stopped.
        commands.become_subreaper()
        # A check thread whose probe has its answer waits for the interpreter while another thread
        # (a /metrics render, a delivery) computes: up to 5 ms by default, on top of the probe's own
        # time. 1 ms keeps that wait under the probes' own loopback latency.
        sys.setswitchinterval(0.001)
        # Before anything is written: a SIGHUP that follows the first heartbeat must reload, not kill.
        self.signals = SignalPipe((signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
        config = load_config(self.config_path)
        self.preflight(config)
        self._remember_instances(config)
        self.apply(config)
        self._first_verdicts()
        log.info("serving %s from %s (pid %d)", counted(len(self.runners), "check"), self.config_path, os.getpid())
        sdnotify.notify(f"READY=1\nSTATUS=serving {counted(len(self.runners), 'check')}")
        try:
            next_beat = time.monotonic()
            while not self.stop_requested:
                if self.reload_requested:
                    self.reload_requested = False
                    if self.reload():
                        # An applied reload beat at its end (apply), perhaps at a new interval: the next beat is
                        # that interval after it. Kept at the old plan, lowering heartbeat_interval from 10 s
                        # to 1 s left one 10 s gap, past a heartbeat guard's --max-age set for the new one.
                        next_beat = time.monotonic() + self.serve.heartbeat_interval
                if time.monotonic() >= next_beat:
                    self.housekeeping()
                    # A fixed cadence: the time housekeeping took is not added to the gap between beats.
                    # Only a beat moves it: a signal's early wake used to add an interval each time, and a
                    # burst of SIGHUPs put the next beat that many intervals away (the heartbeat guard's
                    # --max-age crossed, on a node that only reloaded).
                    next_beat = max(next_beat + self.serve.heartbeat_interval, time.monotonic())
                self._sleep(max(0.0, next_beat - time.monotonic()))
        finally:
            self.stopping.set()
            self.shutdown()
        return 0

    def _first_verdicts(self) -> None:
        """Wait (a probe's time at most) until every check has written its track file once: keepalived,
        started after us, then reads what is true rather than its init_file's guess."""
        longest_probe = max((runner.spec.check.hard_limit() for runner in self.runners.values()), default=0.0)
        deadline = time.monotonic() + min(10.0, longest_probe + 0.5)
        while time.monotonic() < deadline and not self.stop_requested:
            if all(runner.verdict.ok is not None for runner in list(self.runners.values())):
                return
            self._sleep(0.01)

    def _remember_instances(self, config: Config) -> None:
        """The instance states the previous run reported, before the FIFO reader starts (it overrides them)."""
        from kahooks.daemon import status

        try:
            previous = status.read(config.sections["serve"].state_dir)
        except status.StatusUnreadable:
            previous = None
        if previous is not None:
            self.notifications.remember(previous.get("instances"))

    def preflight(self, config: Config) -> None:
        """Refuse to start, in one line, where the daemon could not do its job: systemd then sees it."""
        from kahooks.notify.spool import Spool

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

    def _sleep(self, seconds: float) -> None:
        """Until `seconds` passed, or at once when a signal came: SIGTERM or SIGINT stops, SIGHUP reloads."""
        assert self.signals is not None  # run() made it first
        came = self.signals.wait(seconds)
        if came & {signal.SIGTERM, signal.SIGINT}:
            self.stop_requested = True
        if signal.SIGHUP in came:
            self.reload_requested = True

    def reload(self) -> bool:
        """Apply the configuration file again; an invalid one is refused and logged, line by line."""
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            for line in exc.lines():
                log.error("reload refused: %s", line)
            log.error("reload refused: still running the previous configuration of %s", self.config_path)
            return False
        except Exception as exc:  # a reload never kills: whatever went wrong, the old configuration runs on
            words = os_words(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            log.error("reload refused: cannot build the configuration of %s (%s); still running the previous one",
                      self.config_path, words)
            log.debug("reload failure", exc_info=True)
            return False
        try:
            self.apply(new)
        except Exception as exc:  # a bug half-way through the switch: log it, keep serving what started
            log.exception("reload of %s failed while switching (%s: %s); serving on", self.config_path,
                          type(exc).__name__, exc)
            return False
        log.info("reloaded %s: %s", self.config_path, counted(len(self.runners), "check"))
        return True

    def apply(self, new: Config) -> None:
        """Switch to `new`: identical checks keep running with their state, others restart."""
        old = self.config
        self.config = new
        self.tracks.node_maintenance = self.serve.maintenance_file
        specs: dict[str, CheckSpec] = new.sections["checks"]
        for name in list(self.runners):
            runner = self.runners[name]
            if name not in specs or specs[name].identity() != runner.spec.identity():
                runner.stop()
                del self.runners[name]
                if name not in specs:
                    log.warning("check %s removed; %s keeps its last value (%s)", name, runner.spec.track_file,
                                self.tracks.written.get(runner.spec.track_file))
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
        reporting.restart_metrics(self, old)
        self.notifications.restart_delivery(new)
        if old is None or old.sections["serve"].notify_fifo != self.serve.notify_fifo:
            self.notifications.restart_fifo(new)
        self.wire.restart(new, self.notifications)  # keepalived.conf may have changed with the reload
        self.housekeeping()

    def shutdown(self) -> None:
        sdnotify.notify("STOPPING=1")
        log.info("stopping: %s; undelivered notifications stay in the spool", counted(len(self.runners), "check"))
        self.notifications.stop_fifo()  # first: it reads on for half a second, for keepalived's STOP lines
        self.notifications.wait_retired(3)
        for runner in self.runners.values():
            runner.stop()
        commands.stop_all()  # a command running now is stopped (and swept) as on a timeout: none outlives us
        for runner in self.runners.values():
            runner.join(2)
        if self.files is not None:
            self.files.stop()
        self.wire.stop(wait=STOP_JOIN)  # its last events recorded
        self.notifications.stop_delivery(wait=10)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.watcher.stop()
        self.status_writes.stop(wait=2)
        self.stopped_at = time.time()
        reporting.write_status(self, last=True)

    # Checks and track files --------------------------------------------------------------

    def publish(self, runner: CheckRunner, changed: bool) -> None:
        """A check produced a result: log a change, and write the track file when its value changes."""
        spec = runner.spec
        verdict = runner.verdict
        self._write_track(runner)  # first: keepalived acts on the file, and a log record costs a syslog send
        if changed:
            word = "healthy" if verdict.ok else "FAILED"
            log.log(logging.INFO if verdict.ok else logging.WARNING, "check %s %s: %s", spec.name, word, verdict.why)
            self.status_writes.request()  # coalesced, off this thread: a write is O(checks)

    def _write_track(self, runner: CheckRunner) -> None:
        if self.runners.get(runner.spec.name) is runner:  # else replaced by a reload meanwhile
            self.tracks.publish(runner.spec, runner.verdict.ok)

    def republish(self, reason: str) -> None:
        """Rewrite every track file from current state (a maintenance file came or went)."""
        log.warning("%s", reason)
        for runner in list(self.runners.values()):
            self._write_track(runner)
        self.status_writes.request()

    def _watch_files(self) -> None:
        from kahooks.daemon.filewatch import FileWatch

        if self.files is not None:
            self.files.stop()
        self.files = FileWatch()
        for path in sorted(self.tracks.maintenance_paths(self.specs())):
            self.files.add(path, lambda path: self._maintenance_changed())
        for runner in self.runners.values():
            for watched in runner.check.watched_files():  # a process check's pidfile
                self.files.add(watched, lambda path, runner=runner: runner.poke(f"{path} changed"))
        self.files.start()
        self.tracks.maintenance_seen = self.tracks.maintenance_now(self.specs())
        for runner in self.runners.values():
            if runner.check.watched_files():
                runner.poke("pidfile watch (re)started")  # a change before the watch began was not heard

    def specs(self) -> list[CheckSpec]:
        return [runner.spec for runner in list(self.runners.values())]

    def _maintenance_changed(self) -> None:
        """A maintenance file came or went (heard through inotify, or seen at a heartbeat)."""
        change = self.tracks.maintenance_change(self.specs())
        if change:
            self.republish(change)

    # The periodic duties ------------------------------------------------------------------

    def housekeeping(self) -> None:
        """Each heartbeat: judge stuck probes, notice missed file events, keep the FIFO, write what is read."""
        for runner in list(self.runners.values()):
            runner.check_stuck()
            self._write_track(runner)  # a track file deleted or edited by hand is put right
        self._maintenance_changed()  # also where a directory could not be watched
        self.notifications.housekeeping()
        commands.reap()  # what we adopted (as subreaper) and has died
        self.heartbeat_time = time.time()
        try:
            trackfile.write_atomic(self.serve.heartbeat_file, f"{os.getpid()} {self.heartbeat_time:.3f}\n")
        except OSError as exc:
            log.error("cannot write the heartbeat %s: %s", self.serve.heartbeat_file, os_words(exc))
        self.textfile_due = True
        self.status_writes.request()

    def _write_reports(self) -> None:
        """status.json after a change or a heartbeat; the metrics textfile once a heartbeat (status-writer)."""
        reporting.write_status(self)
        if self.serve.metrics_textfile and self.textfile_due:
            self.textfile_due = False
            try:
                trackfile.write_atomic(self.serve.metrics_textfile, reporting.metrics_text(self))
            except OSError as exc:
                log.error("cannot write %s: %s", self.serve.metrics_textfile, os_words(exc))
