"""The daemon's notification half: keepalived's notify FIFO and the delivery worker, in one process.

The FIFO is read in order (kahooks.notify.fifo) and every line recorded in the spool; the same Worker as
ka-notify delivers it, holding the spool's worker lock so no handler starts a worker of its own.
Both run as Supervised threads: an error restarts them with backoff. A reload stops the old ones
without waiting for them (a delivery may be in a 10 s timeout; the heartbeat must not wait).
"""

from __future__ import annotations

import collections
import logging
import os
import stat
import threading
import time
from typing import TYPE_CHECKING

from kahooks.daemon.threads import Supervised
from kahooks.errors import os_words
from kahooks.events.event import DELETED, VRRP_STATES

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kahooks.daemon.snapshot import NotificationState, ThreadState
    from kahooks.events.event import Event
    from kahooks.notify.fifo import Recorder
    from kahooks.notify.spool import Spool
    from kahooks.settings.config import Config

log = logging.getLogger("kahooks.serve")
LAST_TRANSITIONS = 20
REMEMBERED_INSTANCES = 1000  # from a file the daemon wrote itself; bounded all the same


class Notifications:
    """The FIFO reader and the delivery worker of one daemon, and what they have seen."""

    def __init__(self) -> None:
        self.spool_dir = ""
        self.recording_spool: Spool | None = None  # where events are recorded now (a reload may move it)
        # One wake for every worker this daemon runs (one at a time: a new one waits for the old one's
        # lock): the FIFO's recorder and the wire set it without asking which worker runs now.
        self.wake = threading.Event()
        self.recorder: Recorder | None = None
        self.worker: Any = None
        self.delivery: Supervised | None = None
        self.fifo: Supervised | None = None
        self.retired: list[Supervised] = []  # stopped by a reload, still finishing (never waited for)
        self.fifo_identity: tuple[str, int] | None = None
        self.transitions: collections.deque = collections.deque(maxlen=LAST_TRANSITIONS)
        self.transition_counts: collections.Counter = collections.Counter()
        self.instance_states: dict[str, tuple[str, float]] = {}  # name -> (last state reported, when)
        # Told when instance_states changes (the delivery worker's thread): the wire observer, which judges
        # with them, is sent them at once (daemon/wire.py). Never blocks.
        self.on_states: Callable[[], None] | None = None
        self.delivery_counts: collections.Counter = collections.Counter()

    def housekeeping(self) -> None:
        """Each heartbeat: follow a replaced FIFO, forget stopped threads that finished."""
        self.keep_fifo()
        self.retired = [thread for thread in self.retired if thread.alive()]

    def snapshot(self) -> NotificationState:
        return {"instances": {name: {"state": state, "since": since}
                              for name, (state, since) in sorted(self.instance_states.items())},
                "transitions": list(self.transitions),
                "transition_counts": [{"instance": name, "state": state, "count": count}
                                      for (name, state), count in sorted(self.transition_counts.items())],
                "delivery_counts": [{"channel": channel, "outcome": outcome, "count": count}
                                    for (channel, outcome), count in sorted(self.delivery_counts.items())]}

    def remember(self, instances: object) -> None:
        """Take the instance states a previous run wrote in status.json, until keepalived reports again.

        keepalived writes an instance's state to the FIFO when it starts and on each transition only:
        without this, a restarted daemon would show no state (and the fleet's no-MASTER and split-brain
        rules nothing) until the next transition. What keepalived wrote while the daemon was down waits
        in the FIFO (keepalived holds it open) and is read next, replacing these.
        """
        from kahooks.settings.options import LATEST_TIME, number_problem

        if not isinstance(instances, dict):
            return
        for name, item in list(instances.items())[:REMEMBERED_INSTANCES]:
            if isinstance(name, str) and isinstance(item, dict) and item.get("state") in VRRP_STATES \
                    and not number_problem(item.get("since"), 0, LATEST_TIME):
                self.instance_states.setdefault(name, (item["state"], float(item["since"])))

    def thread_states(self) -> dict[str, ThreadState]:
        return {thread.name: thread.as_dict() for thread in (self.delivery, self.fifo) if thread is not None}

    def observe_event(self, event: Event) -> None:
        if event.is_alert:
            return
        self.transitions.append({"time": event.time, "type": event.type, "name": event.name,
                                 "state": event.state, "priority": event.priority, "source": event.source})
        self.transition_counts[(event.name, event.state)] += 1
        if event.is_lvs:
            return
        if event.state in VRRP_STATES:
            self.instance_states[event.name] = (event.state, event.time)
        elif event.state == DELETED:  # gone with a reload: no state, rather than its last one
            self.instance_states.pop(event.name, None)
        else:
            return
        told = self.on_states
        if told is not None:
            told()

    def observe_outcome(self, channel: str, outcome: str) -> None:
        self.delivery_counts[(channel, outcome)] += 1

    def restart_delivery(self, config: Config) -> None:
        """Stop the worker of the old configuration (without waiting: a delivery may be in the middle
        of a 10 s timeout, and the heartbeat must not wait for it) and start one for the new one.
        The new worker takes the spool's lock once the old one has let go of it."""
        self.stop_delivery(wait=0)
        self.use_spool(config.spool_dir)
        if not config.sections["serve"].deliver:
            return
        self.delivery = Supervised("delivery", lambda stop: self._deliver(config, stop)).start()

    def stop_delivery(self, wait: float) -> None:
        if self.delivery is not None:
            self.delivery.stop()
            self.wake.set()
            if wait:
                self.delivery.join(wait)
            self.retired.append(self.delivery)
        self.delivery = self.worker = None

    def _deliver(self, config: Config, stop: threading.Event) -> None:
        """Hold the spool's worker lock (so ka-notify starts no worker of its own) and deliver until stopped."""
        from kahooks.notify.delivery import Worker
        from kahooks.notify.spool import Spool

        spool = Spool(config.spool_dir).ensure()
        lock = spool.take_worker_lock()
        if lock is None:
            log.info("another worker holds %s; delivering once it lets go", spool.lock_path)
        while lock is None and not stop.wait(0.2):
            lock = spool.take_worker_lock()
        if lock is None:
            return  # stopped while waiting
        try:
            worker = Worker(config, spool, on_event=self.observe_event, on_outcome=self.observe_outcome,
                            wake=self.wake)
            if not stop.is_set():
                self.worker = worker
            worker.run(stop)
        finally:
            os.close(lock)

    def use_spool(self, spool_dir: str) -> None:
        """Record in `spool_dir` from now on (a reload may move it), the running FIFO reader too. Nothing
        is made here: a write makes the folders it needs (kahooks.notify.spooldir), in the thread that writes."""
        from kahooks.notify.spool import Spool

        if spool_dir != self.spool_dir or self.recording_spool is None:
            self.spool_dir = spool_dir
            self.recording_spool = Spool(spool_dir)
            if self.recorder is not None:
                self.recorder.spool = self.recording_spool

    def spool(self) -> Spool:
        """The spool events are recorded in now."""
        if self.recording_spool is None:
            self.use_spool(self.spool_dir)
        assert self.recording_spool is not None
        return self.recording_spool

    def wake_worker(self) -> None:
        """A new event is in the spool: the delivery worker looks at once, if one runs."""
        self.wake.set()

    def restart_fifo(self, config: Config) -> None:
        self.use_spool(config.spool_dir)
        self.restart_fifo_at(config.sections["serve"].notify_fifo)

    def restart_fifo_at(self, path: str | None) -> None:
        """Read keepalived's notify FIFO at `path` (made here when missing), instead of any before."""
        self.stop_fifo()
        if not path:
            return
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                # Made here, before keepalived: it then uses ours and never unlinks it on a reload.
                os.mkfifo(path, 0o600)
                info = os.lstat(path)
        except OSError as exc:
            log.error("notify_fifo %s: %s", path, os_words(exc))
            return
        if not stat.S_ISFIFO(info.st_mode):
            log.error("notify_fifo %s exists and is not a FIFO; not reading it", path)
            return
        from kahooks.notify.fifo import Recorder, record_fifo

        self.fifo_identity = (path, info.st_ino)
        # The reader is handed what it records into and what it sets: it never calls back into the daemon.
        recorder = self.recorder = Recorder(self.spool(), self.wake.set)
        self.fifo = Supervised("fifo", lambda stop: record_fifo(path, recorder, stop)).start()

    def keep_fifo(self) -> None:
        """keepalived unlinks a FIFO it created itself when it reloads or stops: follow the new one."""
        if self.fifo_identity is None:
            return
        path, inode = self.fifo_identity
        try:
            current = os.lstat(path).st_ino
        except FileNotFoundError:
            current = None
        if current != inode:
            log.info("notify_fifo %s was replaced; reopening it", path)
            self.restart_fifo_at(path)

    def stop_fifo(self) -> None:
        """Stop reading; the old reader lingers half a second for the last lines, without being waited for."""
        if self.fifo is not None:
            self.fifo.stop()
            self.retired.append(self.fifo)
        self.fifo = None
        self.fifo_identity = None

    def wait_retired(self, timeout: float) -> None:
        """At shutdown: let stopped threads finish (the FIFO's linger reads keepalived's STOP lines)."""
        end = time.monotonic() + timeout
        for thread in self.retired:
            thread.join(max(0.0, end - time.monotonic()))
