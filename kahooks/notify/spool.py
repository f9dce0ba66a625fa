"""The notification spool: where an event is made durable before keepalived's handler returns.

Layout under the spool directory:
  tmp/                 half-written files (never read)
  incoming/NAME.json   recorded events, NAME sorts in recording order
  queue/CHANNEL/NAME.json   one delivery per (event, channel) with its retry state
  dead/CHANNEL/NAME.json    deliveries that gave up (permanent error, too many attempts, too old),
                            and dead/NAME.json: recordings that could not be read
  state/instances.json      the last state fanned out per instance (for "previous state")
  worker.lock, record.lock  flock()ed by the worker, and by Spool.record (every recorder) and the worker

Every write is temp file + fsync + rename + fsync of the directory, so a crash
at any point leaves either the old file or the new one, and delivery resumes
from what is on disk (at least once, with a stable event id). A write that
fails (ENOSPC, a short write) removes its temp file and raises: nothing half
written is ever renamed into place.

The spool belongs to `keepalived_script` (the handlers run as that user) and is
read by root (the daemon, a worker started by root). So its owner is not
trusted, and this module with kahooks.notify.spooldir (the file work) guarantees:
- Nothing is followed or blocked on: folders are opened relative to the spool's
  descriptor with O_NOFOLLOW, entries are read through kahooks.files.safefs (regular
  files only, capped), and the locks and worker.log are opened with
  safefs.open_owned (a FIFO, a link, a hard link to a file elsewhere is replaced,
  never chowned or appended to). No path is ever built from file content (a
  delivery's channel is the name of the directory it sits in).
- No lock is waited on past a deadline: the spool's owner can hold record.lock
  for ever, so a lock not had within LOCK_WAIT is gone on without (logged), and
  `depth()` (the daemon's heartbeat, /metrics, `kahooks status`) takes none at
  all and never fails for what the owner put in the spool.
- Every number read back is finite and in range (kahooks.settings.options.number_problem,
  the one check): an entry that is not, cannot be read, or has wrong-typed
  fields goes to dead/ with a log line, and the rest flows on.
What root creates in the spool is given to the spool's owner, so a later
handler run by keepalived can still record.
"""

from __future__ import annotations

import os
import time

from kahooks.events.event import Event
from kahooks.notify.spooldir import BadEntry, SpoolDirectory, SpoolError
from kahooks.settings.defaults import DELIVERY_RANGES
from kahooks.settings.options import LATEST_TIME, number_problem

# typing, logging and json cost ka-notify's handler start-up more than its fsyncs: typing is for
# mypy alone, logging is imported when something goes wrong (_log), json where an entry is read or written
# (the handler's event writes itself: Event.to_json).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

MAX_ATTEMPTS = DELIVERY_RANGES["max_attempts"][1]  # a delivery is buried at its max_attempts
LOCK_WAIT = 1.0  # seconds: record.lock is held for a listing or a write; longer is its owner holding it
NOTICE_EVERY = 60.0  # seconds between two warnings of one kind (a worker loops every 2 s)
_noticed: dict[str, float] = {}


class Delivery:
    """One event (or the first of a flapping burst) on its way to one channel."""

    __slots__ = ("path", "event", "channel", "previous_state", "attempts", "next_attempt", "last_error",
                 "created")

    def __init__(self, path: Path | None, event: Event, channel: str, previous_state: str | None,
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

    @property
    def name(self) -> str:
        assert self.path is not None
        return self.path.name

    def to_json(self) -> str:
        import json

        return json.dumps({"event": self.event.as_dict(), "channel": self.channel,
                           "previous_state": self.previous_state, "attempts": self.attempts,
                           "next_attempt": self.next_attempt, "last_error": self.last_error,
                           "created": self.created}, sort_keys=True)

    @classmethod
    def from_json(cls, path: Path, channel: str, raw: bytes) -> Delivery:
        """Parse a queue file; `channel` is the directory it was found in (never the file's word)."""
        data = _json_object(raw)
        previous, error = data.get("previous_state"), data.get("last_error")
        attempts: Any = data.get("attempts")
        next_attempt: Any = data.get("next_attempt")
        created: Any = data.get("created")
        if not (previous is None or isinstance(previous, str)) or not (error is None or isinstance(error, str)):
            raise BadEntry("previous_state and last_error must be text or null")
        for what, problem in (("attempts", number_problem(attempts, 0, MAX_ATTEMPTS, whole=True)),
                              ("next_attempt", number_problem(next_attempt, 0, LATEST_TIME)),
                              ("created", number_problem(created, 0, LATEST_TIME))):
            if problem:
                raise BadEntry(f"{what} {problem}")
        event = data.get("event")
        if not isinstance(event, dict):
            raise BadEntry("event must be an object")
        return cls(path, Event.from_dict(event), channel, previous, attempts, float(next_attempt), error,
                   float(created))


def previous_state(states: dict[str, str], event: Event) -> str | None:
    """The state `event`'s sequence was last in, from `Spool.instance_states()`: keyed by `Event.key`
    (an instance, a virtual server, or a real server within one), never by the bare name."""
    return states.get(event.key)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        import json

        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadEntry(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadEntry("not a JSON object")
    return data


class ChannelState:
    """One channel's own small file in spool/state/: what it must remember from one worker to the next
    (the alertmanager channel's firing alerts). Read as everything in the spool is: no link followed,
    capped, and only a JSON object comes back; the channel checks what is inside."""

    def __init__(self, spool: SpoolDirectory, channel: str) -> None:
        self.spool = spool
        self.name = f"channel-{channel}.json"  # channel names are letters, digits, '_', '.' and '-'

    def load(self) -> dict[str, Any] | None:
        """The saved object; None when there is none, or it is not one of ours (logged)."""
        try:
            return _json_object(self.spool.read(("state",), self.name))
        except FileNotFoundError:
            return None
        except (BadEntry, OSError, SpoolError) as exc:
            _log().warning("ignoring %s: %s", self.spool.root / "state" / self.name, exc)
            return None

    def save(self, data: dict[str, Any]) -> None:
        """Replace the file, durably; OSError or SpoolError when it cannot be written."""
        import json

        self.spool.write_atomic(("state",), self.name, json.dumps(data, sort_keys=True))


class Spool(SpoolDirectory):
    """What the handlers and the worker do with the spool (SpoolDirectory does the safe file work)."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)

    # Properties: a Path is built only when asked for (see SpoolDirectory.root).
    @property
    def incoming_dir(self) -> Path:
        return self.root / "incoming"

    @property
    def queue_dir(self) -> Path:
        return self.root / "queue"

    @property
    def dead_dir(self) -> Path:
        return self.root / "dead"

    @property
    def lock_path(self) -> Path:
        return self.root / "worker.lock"

    def take_worker_lock(self) -> int | None:
        """Take worker.lock (flock) without waiting: the descriptor to hold while delivering
        (closing it lets go), or None when another worker holds it."""
        import fcntl

        fd = self._lock_fd("worker.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    # The handler's side -------------------------------------------------------------

    def record(self, event: Event | Callable[[], Event | None]) -> str | None:
        """Make an event durable in incoming/ under the record lock; the name sorts in recording order.

        `event` is an Event, or what makes one (None: nothing to record), called under the lock so
        that it is stamped there: keepalived starts notify handlers back to back and they run at once,
        and one may stamp its event first and finish writing it last. Every recorder holds the shared
        side (handlers, the FIFO, alerts do not wait for each other); the worker lists incoming/ under
        the exclusive side, so it never fans out a later event while an earlier one is unwritten.
        Returns the name written, or None when `event()` made none."""
        with RecordLock(self, shared=True):
            made = event() if callable(event) else event
            if made is None:
                return None
            # The id starts with the exact time_ns in hex; event.time is a float, which rounds
            # nanoseconds since 1970 to ~256 ns and could put two close events out of order.
            stamp, _, suffix = made.id.partition("-")
            name = f"{int(stamp, 16):020d}-{suffix}.json"
            self.place(("incoming",), name, made.to_json())
        return name

    # The worker's side --------------------------------------------------------------

    def incoming(self) -> list[Path]:
        """Recorded events in recording order, once no handler is between stamping one and writing it
        (RecordLock: after LOCK_WAIT, without that promise, rather than not at all)."""
        with RecordLock(self, shared=False):
            return [self.incoming_dir / name for name in self.names("incoming")]

    def fan_out(self, path: Path, choose: Callable[[Event], list[str]]) -> tuple[Event, list[str]] | None:
        """Turn one recorded event into one queued delivery per channel `choose` picks, then drop the
        recording (queue, then settle). Returns the event and its channels; None as `queue` says."""
        queued = self.queue(path, choose)
        if queued is not None:
            self.settle(path, *queued)
        return queued

    def queue(self, path: Path, choose: Callable[[Event], list[str]]) -> tuple[Event, list[str]] | None:
        """One queued delivery per channel `choose` picks for the recording at `path`, which stays until
        `settle`. Each file's bytes are synced before it is renamed into queue/CHANNEL/ (a crash never
        leaves a short one there); the renames are made durable by `settle`, before the recording goes:
        a crash in between queues the event again (at least once, same event id), so a channel may send
        it at once.

        Returns the event and its channels; None when the recording vanished, or was unreadable
        (then it is moved to dead/, kept and logged).
        """
        name = path.name
        try:
            event = Event.from_dict(_json_object(self.read(("incoming",), name)))
        except FileNotFoundError:
            return None
        except (BadEntry, ValueError, KeyError, TypeError) as exc:
            place = self._move(("incoming",), name, ("dead",))
            _log().error("unreadable recording %s (%s); kept in %s", name, exc, place)
            return None
        channels = choose(event)
        previous = previous_state(self.instance_states(), event)
        for channel in channels:
            delivery = Delivery(self.queue_dir / channel / name, event, channel, previous)
            self.place(("queue", channel), name, delivery.to_json(), sync_folder=False)
        return event, channels

    def settle(self, path: Path, event: Event, channels: list[str]) -> None:
        """After `queue`: its deliveries made durable, the state the event's sequence is now in
        remembered (the next one's "previous state"), then the recording dropped."""
        for channel in channels:
            try:
                self.sync("queue", channel)
            except FileNotFoundError:  # a channel's folder gone (the spool's owner): its delivery with it
                pass
        if event.changes_state:
            states = self.instance_states()
            states[event.key] = event.state
            import json

            self.write_atomic(("state",), "instances.json", json.dumps(states, sort_keys=True))
        self.remove(("incoming",), path.name)

    def instance_states(self) -> dict[str, str]:
        try:
            data = _json_object(self.read(("state",), "instances.json"))
        except (FileNotFoundError, BadEntry):
            return {}
        return {key: value for key, value in data.items() if isinstance(value, str)}

    def queued(self, channel: str) -> list[Delivery]:
        """The channel's deliveries in event order (unreadable ones are moved to dead/, and logged)."""
        found = []
        for name in self.names("queue", channel):
            try:
                found.append(Delivery.from_json(self.queue_dir / channel / name, channel,
                                                self.read(("queue", channel), name)))
            except FileNotFoundError:
                continue
            except (BadEntry, ValueError, KeyError, TypeError) as exc:
                place = self._move(("queue", channel), name, ("dead", channel))
                _log().error("%s: unreadable delivery %s (%s); kept in %s", channel, name, exc, place)
        return found

    def save(self, delivery: Delivery) -> None:
        self.write_atomic(("queue", delivery.channel), delivery.name, delivery.to_json())

    def complete(self, delivery: Delivery) -> None:
        self.remove(("queue", delivery.channel), delivery.name)

    def bury(self, delivery: Delivery, reason: str) -> Path:
        """Move a delivery that gave up to dead/CHANNEL/, with the reason recorded in it, its secrets
        hidden: the spool's owner reads it, and so does every `ka-notify queue`."""
        from kahooks.output import redact

        delivery.last_error = redact.text(reason)
        self.save(delivery)
        return self._move(("queue", delivery.channel), delivery.name, ("dead", delivery.channel))

    def depth(self) -> dict[str, Any]:
        """How much is waiting: recorded events, queued deliveries per channel, dead letters.

        The daemon's heartbeat, /metrics and `kahooks status` ask this: it takes no lock (a count
        needs no ordering, and the spool's owner can hold record.lock for ever) and a folder that
        cannot be listed (the owner made it a link) counts as empty, logged, never raised."""
        queued_names = {channel: self._listing(self.names, "queue", channel)
                        for channel in self._listing(self.directories, "queue")}
        incoming = self._listing(self.names, "incoming")
        dead = {channel: self._walk_count("dead", channel) for channel in self._listing(self.directories, "dead")}
        # Names start with the recording time in ns and sort by it: the first of each list is its oldest.
        firsts = [names[0] for names in queued_names.values() if names] + incoming[:1]
        oldest = min(int(name[:20]) for name in firsts) / 1e9 if firsts else None
        return {"incoming": len(incoming), "queued": {channel: len(names) for channel, names in queued_names.items()},
                "dead": self._walk_count("dead"), "dead_by_channel": dead, "oldest": oldest}

    def _listing(self, lister: Callable[..., list[str]], *parts: str) -> list[str]:
        try:
            return lister(*parts)
        except (OSError, SpoolError) as exc:
            notice("list", "cannot list %s: %s; counted as empty", self.root.joinpath(*parts), exc)
            return []

    def idle(self) -> bool:
        depth = self.depth()
        return depth["incoming"] == 0 and not any(depth["queued"].values())


class RecordLock:
    """flock on spool/record.lock, shared or exclusive, as a context manager, waiting LOCK_WAIT at most.

    A lock that cannot be had in time is gone on without (and said, once a minute): the spool's
    owner may hold it for ever, and ordering is worth less than recording the event at all, or
    than a worker that goes on delivering.
    """

    def __init__(self, spool: Spool, shared: bool, wait: float = LOCK_WAIT) -> None:
        self.spool = spool
        self.shared = shared
        self.wait = wait
        self.fd: int | None = None

    def __enter__(self) -> RecordLock:
        import fcntl

        try:
            self.fd = self.spool._lock_fd("record.lock")
            if flock_within(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX, self.wait):
                return self
            reason = f"held by another process for {self.wait:g} s"
        except (OSError, SpoolError) as exc:
            reason = str(exc)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        path = os.path.join(self.spool.path, "record.lock")
        notice(f"lock {path}", "going on without %s: %s", path, reason)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing lets go of the lock
            self.fd = None


def flock_within(fd: int, operation: int, seconds: float) -> bool:
    """flock(fd, operation) tried without blocking until `seconds` have passed; True once held."""
    import fcntl

    deadline = time.monotonic() + seconds
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("kahooks.notify.spool")


def notice(kind: str, message: str, *args: object) -> None:
    """log.warning, at most once a minute for one kind: a worker loops every few seconds."""
    now = time.monotonic()
    if now - _noticed.get(kind, -NOTICE_EVERY) >= NOTICE_EVERY:
        _noticed[kind] = now
        _log().warning(message, *args)
