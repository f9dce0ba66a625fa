"""Running checks in-process: one thread per check, and one pidfd watcher for the checks that watch processes.

Each check has its own thread, so a slow HTTP check never delays a process
check. A thread sleeps until its next slot or until it is poked: by the pidfd
watcher when a watched process exits, by the file watcher when a pidfile or a
maintenance file changes. Process checks are event-driven: after a healthy
probe the pids it found are watched with pidfd_open(2), whose descriptor turns
readable the moment the process exits, in any pid or network namespace.
While a process check is healthy and watched it is re-probed only about every
SAFETY_INTERVAL (each check its own, so that they do not all look at once); while it is failed it is
re-probed every `interval` (a restart is also seen at once through the pidfile, when there is one).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import zlib
from typing import TYPE_CHECKING

from kahooks.checks.base import probe_safely
from kahooks.daemon.verdict import Verdict, next_due
from kahooks.deadline import Deadline
from kahooks.errors import os_words
from kahooks.output.result import CheckResult, unhealthy

if TYPE_CHECKING:
    from collections.abc import Callable

    from kahooks.daemon.settings import CheckSpec

log = logging.getLogger("kahooks.serve")
# /proc cannot be watched with inotify, so a healthy, watched process check still
# looks again this often, in case something changed that no pidfd reports.
SAFETY_INTERVAL = 30.0
# Each check's safety interval is its own, between (1 - SAFETY_SPREAD) and 1 times SAFETY_INTERVAL, fixed
# by its name: checks started together (every check at the daemon's start) would otherwise all look
# again in the same second, every 30 s: 400 /proc scans at once, with a death heard then waiting behind them.
SAFETY_SPREAD = 0.25
# A probe that ignores its deadline (a hung DNS lookup) is judged failed this long after its hard limit.
STUCK_GRACE = 0.5


class CheckRunner:
    """Schedules one check, judges its results (rise/fall) and hands every result to `publish`."""

    def __init__(self, spec: CheckSpec, publish: Callable[[CheckRunner, bool], None],
                 watcher: ProcessWatcher | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.check = spec.check
        self.publish = publish
        self.watcher = watcher if spec.check.watches_processes else None
        self.clock = clock
        self.verdict = Verdict(spec.rise, spec.fall)
        self.lock = threading.Lock()  # the supervisor may judge a stuck probe from another thread
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.running_since: float | None = None
        self.deadline = Deadline(self.check.timeout)  # the last probe's: its step names where a stuck one is
        self.stuck_reported = False
        self.watched = False
        self.poke_reason = ""
        self.last_counted: float | None = None  # when the last probe that rise/fall counted ran
        self.thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=f"check-{self.name}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.watcher is not None:
            self.watcher.forget(self)

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def poke(self, reason: str) -> None:
        """Run the probe now (a watched process exited, a watched file changed)."""
        self.poke_reason = reason
        self.wake.set()

    def interval(self) -> float:
        if self.watched and self.verdict.ok:
            share = zlib.crc32(self.name.encode()) / 2**32  # in [0, 1), the same at every run
            return max(self.spec.interval, SAFETY_INTERVAL * (1 - SAFETY_SPREAD * share))
        return self.spec.interval

    def _loop(self) -> None:
        due = self.clock()
        while not self.stopping.is_set():
            poked = self.wake.is_set()
            self.wake.clear()
            if poked or self.clock() >= due:
                if poked and self.poke_reason:
                    log.debug("%s: probing now: %s", self.name, self.poke_reason)
                started = self.clock()
                try:
                    self.run_once()
                except Exception:  # publishing failed (a full disk?): log it, keep checking
                    log.exception("%s: cannot publish a result", self.name)
                due = next_due(started if poked else due, self.interval(), self.clock())
                if self.last_counted is not None and self.last_counted < started:
                    # An early probe did not count: the next one that can is an interval after the last.
                    due = min(due, max(self.clock(), self.last_counted + self.spec.interval))
            self.wake.wait(max(0.0, due - self.clock()))

    def run_once(self) -> CheckResult:
        started = self.clock()
        self.deadline = Deadline(self.check.timeout)  # before running_since: the supervisor reads this one's step
        self.running_since = started
        self.stuck_reported = False
        try:
            result = probe_safely(self.check, on_bug=lambda: log.exception("%s: the probe failed", self.name),
                                  deadline=self.deadline)
        finally:
            self.running_since = None
        latency = self.clock() - started
        if self.watcher is not None:
            # Watch what a healthy probe found; a pid that died meanwhile pokes us again at once.
            self.watched = result.ok and self.watcher.watch(self, self.check.pids())
        # Rise and fall count probes an interval apart (10 % slack for scheduling jitter), as
        # keepalived's do. The first result that disagrees always counts, so a death heard
        # through a pidfd fails a `fall = 1` check at once; the rest of a streak must be spaced.
        verdict = self.verdict
        counted = (verdict.ok is None or result.ok == verdict.ok or verdict.streak == 0
                   or self.last_counted is None or started - self.last_counted >= 0.9 * self.spec.interval)
        if counted:
            self.last_counted = started
        self._judge(result, latency, counted)
        return result

    def _judge(self, result: CheckResult, latency: float, counted: bool = True) -> None:
        if self.stopping.is_set():
            return  # a probe cut short by the stop (commands.stop_all) says nothing about the service
        with self.lock:
            changed = self.verdict.record(result, time.time(), latency, counted)
        self.publish(self, changed)

    def check_stuck(self) -> None:
        """Called by the supervisor: fail a probe that has outlived its hard limit."""
        since = self.running_since
        if since is None or self.stuck_reported:
            return
        overdue = self.clock() - since
        if overdue > self.check.hard_limit() + STUCK_GRACE:
            self.stuck_reported = True
            log.error("%s: probe still running after %.1f s (%s); counting it as failed", self.name, overdue,
                      self.deadline.step or "no step named")
            self._judge(unhealthy(self.deadline.where(f"probe did not finish within {overdue:.1f} s")), overdue)


class ProcessWatcher:
    """One thread waiting on an epoll set of pidfds, one per watched process; an exit pokes the check
    that watches it. The set is kept, not rebuilt: a pidfd joins it when watched and leaves it when
    closed, so what an event costs does not grow with the number of watched processes (the poll set
    rebuilt at every wake, and every watch() of unchanged pids waking the thread to rebuild it, cost
    500 checks' worth of registrations each time one of them probed)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_fd: dict[int, tuple[CheckRunner, int]] = {}
        self.by_runner: dict[CheckRunner, dict[int, int]] = {}  # runner -> {pid: pidfd}
        self.read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.epoll = select.epoll()
        self._fresh_epoll()
        self.stopping = False
        self.failures = 0
        self.nudges = 0  # times the thread was woken for something other than an exit (the stop)
        self.wakes = 0   # times the thread's wait returned
        self.thread = threading.Thread(target=self._loop, name="pidfd-watcher", daemon=True)
        self.thread.start()

    def watch(self, runner: CheckRunner, pids: list[int]) -> bool:
        """Watch exactly `pids` for `runner`; False when one had already exited (the runner is poked)."""
        alive = True
        with self.lock:
            current = self.by_runner.setdefault(runner, {})
            for pid, fd in list(current.items()):
                if pid not in pids:
                    self._close(fd)
            for pid in pids:
                if pid in current:
                    continue
                try:
                    fd = os.pidfd_open(pid)
                except ProcessLookupError:
                    alive = False
                    continue
                except OSError as exc:  # no pidfd (kernel < 5.3) or not permitted: fall back to polling
                    log.warning("%s: cannot watch pid %d (%s); polling every %g s", runner.name, pid,
                                os_words(exc), runner.spec.interval)
                    alive = False
                    continue
                try:
                    # Heard at once by the waiting thread: epoll takes a new member while it waits.
                    self.epoll.register(fd, select.EPOLLIN)
                except OSError as exc:  # ENOMEM, ENOSPC (max_user_watches): poll this one instead
                    os.close(fd)
                    log.warning("%s: cannot watch pid %d (%s); polling every %g s", runner.name, pid,
                                os_words(exc), runner.spec.interval)
                    alive = False
                    continue
                self.by_fd[fd] = (runner, pid)
                current[pid] = fd
        if not alive:
            runner.poke("a process exited before it could be watched")
        return alive

    def forget(self, runner: CheckRunner) -> None:
        with self.lock:
            for fd in list(self.by_runner.pop(runner, {}).values()):
                self._close(fd)

    def stop(self) -> None:
        self.stopping = True
        self._nudge()
        self.thread.join(5)
        with self.lock:
            for fd in list(self.by_fd):
                self._close(fd)
        self.epoll.close()
        os.close(self.read_end)
        os.close(self.write_end)

    def _close(self, fd: int) -> None:
        """Under the lock: a closed pidfd leaves the epoll set by itself (it is never duplicated)."""
        entry = self.by_fd.pop(fd, None)
        if entry is not None:
            owner, pid = entry
            pids = self.by_runner.get(owner)
            if pids is not None and pids.get(pid) == fd:
                del pids[pid]
        try:
            os.close(fd)
        except OSError:
            pass

    def _fresh_epoll(self) -> None:
        """A new epoll set holding the wake pipe alone (at the start, and after an error)."""
        self.epoll.close()
        self.epoll = select.epoll()
        self.epoll.register(self.read_end, select.EPOLLIN)

    def _nudge(self) -> None:
        self.nudges += 1
        try:
            os.write(self.write_end, b"x")
        except BlockingIOError:
            pass  # already nudged

    def _loop(self) -> None:
        """Never ends while the daemon runs: if it did, healthy process checks would be looked at
        only every SAFETY_INTERVAL. An error is logged, every watched check is poked (it probes,
        and watches its pids again), and the loop goes on."""
        while not self.stopping:
            try:
                self._poll_once()
            except Exception:
                self.failures += 1
                log.exception("pidfd watcher: polling failed; probing the watched checks again")
                with self.lock:
                    runners = {owner for owner, _ in self.by_fd.values()}
                    for fd in list(self.by_fd):
                        self._close(fd)
                    self._fresh_epoll()  # whatever broke the set, the watches start again in a new one
                for runner in runners:
                    runner.poke("the pidfd watcher recovered from an error")
                time.sleep(0.1)

    def _poll_once(self) -> None:
        if self.stopping:
            return
        # A deadline all the same: an exit is never missed by it (a pidfd stays readable once its process ended).
        ready = self.epoll.poll(SAFETY_INTERVAL)
        self.wakes += 1
        for fd, _ in ready:
            if fd == self.read_end:
                try:
                    os.read(self.read_end, 4096)
                except BlockingIOError:
                    pass
                continue
            with self.lock:
                entry = self.by_fd.get(fd)
                if entry is None:
                    continue  # forgotten meanwhile
                self._close(fd)
            runner, pid = entry
            runner.poke(f"pid {pid} exited")
