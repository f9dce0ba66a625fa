"""The notification spool: where an event is made durable before keepalived's handler returns.

Layout under the spool directory:
  tmp/                 half-written files (never read)
  incoming/NAME.json   recorded events, NAME sorts in recording order
  queue/CHANNEL/NAME.json   one delivery per (event, channel) with its retry state
  dead/CHANNEL/NAME.json    deliveries that gave up (permanent error, too many attempts, too old)
  state/instances.json      the last state fanned out per instance (for "previous state")
  worker.lock          held (flock) by the one delivery worker

Every write is temp file + fsync + rename + fsync of the directory, so a crash
at any point leaves either the old file or the new one, and delivery resumes
from what is on disk (at least once, with a stable event id).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from kahooks.event import Event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Delivery:
    """One event (or the first of a flapping burst) on its way to one channel."""

    __slots__ = ("path", "event", "channel", "previous_state", "attempts", "next_attempt", "last_error",
                 "created")

    def __init__(self, path: Path, event: Event, channel: str, previous_state: str | None,
                 attempts: int = 0, next_attempt: float = 0.0, last_error: str | None = None,
                 created: float | None = None) -> None:
        self.path = path
        self.event = event
        self.channel = channel
        self.previous_state = previous_state
        self.attempts = attempts
        self.next_attempt = next_attempt
        self.last_error = last_error
        self.created = created if created is not None else time.time()

    def to_json(self) -> str:
        return json.dumps({"event": self.event.as_dict(), "channel": self.channel,
                           "previous_state": self.previous_state, "attempts": self.attempts,
                           "next_attempt": self.next_attempt, "last_error": self.last_error,
                           "created": self.created}, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> Delivery:
        data = json.loads(path.read_text())
        return cls(path, Event.from_dict(data["event"]), data["channel"], data["previous_state"],
                   data["attempts"], data["next_attempt"], data["last_error"], data["created"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.incoming_dir = self.root / "incoming"
        self.queue_dir = self.root / "queue"
        self.dead_dir = self.root / "dead"
        self.state_file = self.root / "state" / "instances.json"
        self.lock_path = self.root / "worker.lock"

    def ensure(self) -> Spool:
        for directory in (self.root, self.tmp, self.incoming_dir, self.queue_dir, self.dead_dir,
                          self.state_file.parent):
            make_dir(directory)
        return self

    def recording(self) -> RecordLock:
        """Hold while stamping an event and writing it (shared: handlers do not wait for each other).

        keepalived starts notify handlers back to back and they run at once: one may stamp its
        event first and finish writing it last. The worker lists incoming/ under the exclusive
        side of this lock, so it never fans out a later event while an earlier one is unwritten.
        """
        return RecordLock(self.root / "record.lock", shared=True)

    def take_worker_lock(self) -> int | None:
        """Take worker.lock (flock) without waiting: the descriptor to hold while delivering
        (closing it lets go), or None when another worker holds it."""
        import fcntl

        # Read-only and world-readable, as record.lock: root's daemon and keepalived_script's
        # handlers must both be able to open it, whichever of them created it.
        fd = os.open(self.lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def write_atomic(self, directory: Path, name: str, text: str) -> Path:
        """Durably place `text` at directory/name: temp file, fsync, rename, fsync the directory."""
        # Unique per writer: the worker's channel threads save deliveries of the same event at once.
        temporary = self.tmp / f"{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        target = directory / name
        os.rename(temporary, target)
        _fsync_dir(directory)
        return target

    # The handler's side -------------------------------------------------------------

    def record(self, event: Event) -> Path:
        """Make `event` durable in incoming/; the name sorts in recording order."""
        # The id starts with the exact time_ns in hex; event.time is a float, which rounds
        # nanoseconds since 1970 to ~256 ns and could put two close events out of order.
        stamp, _, suffix = event.id.partition("-")
        name = f"{int(stamp, 16):020d}-{suffix}.json"
        return self.write_atomic(self.incoming_dir, name, event.to_json())

    # The worker's side --------------------------------------------------------------

    def incoming(self) -> list[Path]:
        """Recorded events in recording order, once no handler is between stamping one and writing it."""
        with RecordLock(self.root / "record.lock", shared=False):
            return sorted(self.incoming_dir.glob("*.json"))

    def fan_out(self, path: Path, choose: Callable[[Event], list[str]]) -> tuple[Event, list[str]] | None:
        """Turn one recorded event into one queued delivery per channel `choose` picks, then drop the recording.

        Returns the event and its channels; None when the recording vanished, or was unreadable
        (then it is moved to dead/ and kept).
        """
        try:
            event = Event.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            make_dir(self.dead_dir)
            os.rename(path, self.dead_dir / path.name)
            return None
        channels = choose(event)
        states = self.instance_states()
        previous = states.get(event.name)
        for channel in channels:
            directory = self.queue_dir / channel
            make_dir(directory)
            delivery = Delivery(directory / path.name, event, channel, previous)
            self.write_atomic(directory, path.name, delivery.to_json())
        if not event.is_alert and event.state not in ("MASTER_RX_LOWER_PRI", "MASTER_PRIORITY", "BACKUP_PRIORITY"):
            states[event.name] = event.state
            self.write_atomic(self.state_file.parent, self.state_file.name, json.dumps(states, sort_keys=True))
        path.unlink()
        _fsync_dir(self.incoming_dir)
        return event, channels

    def instance_states(self) -> dict[str, str]:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def queued(self, channel: str) -> list[Delivery]:
        """The channel's deliveries in event order (unreadable files are moved to dead/)."""
        found = []
        for path in sorted((self.queue_dir / channel).glob("*.json")):
            try:
                found.append(Delivery.load(path))
            except FileNotFoundError:
                continue
            except (ValueError, KeyError, TypeError):
                self._move_dead(path, channel)
        return found

    def save(self, delivery: Delivery) -> None:
        self.write_atomic(delivery.path.parent, delivery.path.name, delivery.to_json())

    def complete(self, delivery: Delivery) -> None:
        try:
            delivery.path.unlink()
        except FileNotFoundError:
            pass
        _fsync_dir(delivery.path.parent)

    def bury(self, delivery: Delivery, reason: str) -> Path:
        """Move a delivery that gave up to dead/CHANNEL/, with the reason recorded in it."""
        delivery.last_error = reason
        self.save(delivery)
        return self._move_dead(delivery.path, delivery.channel)

    def _move_dead(self, path: Path, channel: str) -> Path:
        directory = self.dead_dir / channel
        make_dir(directory)
        target = directory / path.name
        os.rename(path, target)
        _fsync_dir(directory)
        return target

    def depth(self) -> dict[str, Any]:
        """How much is waiting: recorded events, queued deliveries per channel, dead letters."""
        queued = {directory.name: len(list(directory.glob("*.json")))
                  for directory in sorted(self.queue_dir.glob("*")) if directory.is_dir()}
        dead = sum(1 for _ in self.dead_dir.rglob("*.json")) if self.dead_dir.exists() else 0
        return {"incoming": len(self.incoming()), "queued": queued, "dead": dead}

    def idle(self) -> bool:
        depth = self.depth()
        return depth["incoming"] == 0 and not any(depth["queued"].values())


class RecordLock:
    """flock on spool/record.lock, shared or exclusive, as a context manager.

    Opened read-only (flock needs no write access), so root's daemon and keepalived_script's
    handlers can share one file whoever created it. A lock that cannot be had is skipped:
    ordering is worth less than recording the event at all.
    """

    def __init__(self, path: Path, shared: bool) -> None:
        self.path = path
        self.shared = shared
        self.fd: int | None = None

    def __enter__(self) -> RecordLock:
        import fcntl

        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        except OSError:
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing lets go of the lock
            self.fd = None


def make_dir(directory: Path) -> None:
    """mkdir -p with mode 0750 whatever the umask: keepalived runs scripts with umask 0177, which
    would leave a directory its own owner cannot enter (and every later event unrecordable)."""
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o750)
