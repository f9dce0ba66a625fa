"""The notification spool: where an event is made durable before keepalived's handler returns.

Layout under the spool directory:
  tmp/                 half-written files (never read)
  incoming/NAME.json   recorded events, NAME sorts in recording order
  queue/CHANNEL/NAME.json   one delivery per (event, channel) with its retry state
  dead/CHANNEL/NAME.json    deliveries that gave up (permanent error, too many attempts, too old),
                            and dead/NAME.json: recordings that could not be read
  state/instances.json      the last state fanned out per instance (for "previous state")
  worker.lock, record.lock  flock()ed by the worker and the handlers

Every write is temp file + fsync + rename + fsync of the directory, so a crash
at any point leaves either the old file or the new one, and delivery resumes
from what is on disk (at least once, with a stable event id). A write that
fails (ENOSPC, a short write) removes its temp file and raises: nothing half
written is ever renamed into place.

The spool belongs to `keepalived_script` (the handlers run as that user) and is
read by root (the daemon, a worker started by root). So its owner is not
trusted: every directory and file is opened relative to the spool's own
descriptor with O_NOFOLLOW (a planted symlink is refused, never followed), only
regular files are read, every read is capped, and no path is ever built from
file content (a delivery's channel is the name of the directory it sits in).
What root creates in the spool is given to the spool's owner, so a later
handler run by keepalived can still record. An entry that cannot be read or
has wrong-typed fields goes to dead/ with a log line, and the rest flows on.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
import time
from pathlib import Path

from kahooks import atomicfile
from kahooks.errors import KahooksError
from kahooks.event import Event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

log = logging.getLogger("kahooks.spool")
READ_LIMIT = 256 * 1024        # a recorded event is under 1 KiB; anything this big was not written by us
ENTRY_NAME = re.compile(r"\d{20}-[0-9a-f]{1,32}\.json\Z")
DIR_MODE = 0o750
FILE_MODE = 0o640
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a planted FIFO never blocks


class SpoolError(KahooksError):
    """The spool cannot be used (a directory is a symlink, it cannot be written)."""


class BadEntry(ValueError):
    """A spool file that is not a regular file, too large, not JSON, or not of the expected shape."""


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
        if not _whole(attempts) or attempts < 0 or not _number(next_attempt) or not _number(created):
            raise BadEntry("attempts, next_attempt and created must be numbers")
        event = data.get("event")
        if not isinstance(event, dict):
            raise BadEntry("event must be an object")
        return cls(path, Event.from_dict(event), channel, previous, attempts, float(next_attempt), error,
                   float(created))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadEntry(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadEntry("not a JSON object")
    return data


class Spool:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.incoming_dir = self.root / "incoming"
        self.queue_dir = self.root / "queue"
        self.dead_dir = self.root / "dead"
        self.state_file = self.root / "state" / "instances.json"
        self.lock_path = self.root / "worker.lock"

    # Descriptors: every access goes through the spool's own directory, never a followed link ---

    def _root_fd(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            os.makedirs(self.root, mode=DIR_MODE, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            os.fchmod(fd, DIR_MODE)  # whatever the umask (keepalived's is 0177)
            return fd

    def _owner(self, root_fd: int) -> tuple[int, int] | None:
        """Whom root must give what it creates: the spool's owner (None: nothing to change)."""
        if os.geteuid() != 0:
            return None
        info = os.fstat(root_fd)
        return None if info.st_uid == 0 else (info.st_uid, info.st_gid)

    def _open_dir(self, *parts: str, create: bool = True) -> int:
        """A descriptor of spool/PARTS..., each part opened with O_NOFOLLOW (made 0750 when missing)."""
        fd = self._root_fd()
        owner = self._owner(fd)
        try:
            for index, part in enumerate(parts):
                try:
                    child = os.open(part, OPEN_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, DIR_MODE, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, OPEN_DIR, dir_fd=fd)
                    # Whatever the umask: keepalived runs scripts with umask 0177, which would leave
                    # a directory its own owner cannot enter (and every later event unrecordable).
                    os.fchmod(child, DIR_MODE)
                    if owner:
                        os.fchown(child, *owner)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = self.root.joinpath(*parts[:index + 1])
                        raise SpoolError(f"{where} is not a directory (a symlink or a file); "
                                         "refusing to use it") from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def ensure(self) -> Spool:
        for parts in (("tmp",), ("incoming",), ("queue",), ("dead",), ("state",)):
            os.close(self._open_dir(*parts))
        return self

    def check_writable(self) -> None:
        """Raise OSError unless a file can be written, synced and removed here (as a delivery would)."""
        name = f"probe.{os.getpid()}.{os.urandom(4).hex()}"
        self.write_atomic(("tmp",), name, "")
        fd = self._open_dir("tmp")
        try:
            os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def write_atomic(self, parts: tuple[str, ...], name: str, text: str) -> Path:
        """Durably place `text` at spool/PARTS/NAME: temp file in tmp/, every byte, fsync, rename, fsync."""
        tmp_fd = self._open_dir("tmp")
        try:
            target_fd = self._open_dir(*parts)
            try:
                # Unique per writer: the worker's channel threads save deliveries of the same event at once.
                atomicfile.replace_at(target_fd, name, text.encode(), mode=FILE_MODE, durable=True,
                                      owner=self._owner(tmp_fd), temp_directory=tmp_fd, temp_prefix="")
            finally:
                os.close(target_fd)
        finally:
            os.close(tmp_fd)
        return self.root.joinpath(*parts, name)

    def open_log(self, name: str, limit: int) -> int:
        """A descriptor appending to spool/state/NAME (a log), which becomes NAME.1 past `limit` bytes."""
        directory = self._open_dir("state")
        try:
            try:
                if os.stat(name, dir_fd=directory, follow_symlinks=False).st_size > limit:
                    os.rename(name, f"{name}.1", src_dir_fd=directory, dst_dir_fd=directory)
            except FileNotFoundError:
                pass
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                         dir_fd=directory)
            owner = self._owner(directory)
            if owner:
                os.fchown(fd, *owner)
            return fd
        finally:
            os.close(directory)

    def read(self, parts: tuple[str, ...], name: str) -> bytes:
        """The bytes of a regular file spool/PARTS/NAME, at most READ_LIMIT; BadEntry otherwise."""
        directory = self._open_dir(*parts, create=False)
        try:
            try:
                fd = os.open(name, OPEN_FILE, dir_fd=directory)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                raise BadEntry(f"cannot be opened safely: {exc.strerror}") from None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise BadEntry("not a regular file")
                data = os.read(fd, READ_LIMIT + 1)
            finally:
                os.close(fd)
        finally:
            os.close(directory)
        if len(data) > READ_LIMIT:
            raise BadEntry(f"larger than {READ_LIMIT} bytes")
        return data

    def names(self, *parts: str) -> list[str]:
        """Entry names in spool/PARTS that look like ours, sorted (recording order)."""
        try:
            directory = self._open_dir(*parts, create=False)
        except FileNotFoundError:
            return []
        try:
            return sorted(name for name in os.listdir(directory) if ENTRY_NAME.match(name))
        finally:
            os.close(directory)

    def _move(self, source: tuple[str, ...], name: str, target: tuple[str, ...]) -> Path:
        """Rename spool/SOURCE/NAME into spool/TARGET/ (a unique name when one is there already)."""
        source_fd = self._open_dir(*source, create=False)
        try:
            target_fd = self._open_dir(*target)
            try:
                final = name
                for _ in range(5):
                    try:
                        os.rename(name, final, src_dir_fd=source_fd, dst_dir_fd=target_fd)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EEXIST, errno.EISDIR, errno.ENOTEMPTY):  # the name is taken
                            raise
                        final = f"{name}.{os.urandom(3).hex()}"
                os.fsync(target_fd)
                os.fsync(source_fd)
            finally:
                os.close(target_fd)
        finally:
            os.close(source_fd)
        return self.root.joinpath(*target, final)

    def _remove(self, parts: tuple[str, ...], name: str) -> None:
        directory = self._open_dir(*parts, create=False)
        try:
            try:
                os.unlink(name, dir_fd=directory)
            except FileNotFoundError:
                pass
            os.fsync(directory)
        finally:
            os.close(directory)

    def _lock_fd(self, name: str) -> int:
        """Open a lock file read-only (flock needs no write access, so root's daemon and
        keepalived_script's handlers share one whoever created it); a planted link is replaced."""
        root = self._root_fd()
        try:
            for _ in range(2):
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                                 0o644, dir_fd=root)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a symlink, a socket, a directory
                        raise
                    fd = -1
                if fd >= 0 and stat.S_ISREG(os.fstat(fd).st_mode):
                    owner = self._owner(root)
                    if owner:
                        os.fchown(fd, *owner)
                    return fd
                if fd >= 0:
                    os.close(fd)
                log.warning("%s is not a regular file; replacing it", self.root / name)
                _unlink_anything(name, root)
            raise SpoolError(f"{self.root / name} cannot be made a regular file")
        finally:
            os.close(root)

    def recording(self) -> RecordLock:
        """Hold while stamping an event and writing it (shared: handlers do not wait for each other).

        keepalived starts notify handlers back to back and they run at once: one may stamp its
        event first and finish writing it last. The worker lists incoming/ under the exclusive
        side of this lock, so it never fans out a later event while an earlier one is unwritten.
        """
        return RecordLock(self, shared=True)

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

    def record(self, event: Event) -> Path:
        """Make `event` durable in incoming/; the name sorts in recording order."""
        # The id starts with the exact time_ns in hex; event.time is a float, which rounds
        # nanoseconds since 1970 to ~256 ns and could put two close events out of order.
        stamp, _, suffix = event.id.partition("-")
        name = f"{int(stamp, 16):020d}-{suffix}.json"
        return self.write_atomic(("incoming",), name, event.to_json())

    # The worker's side --------------------------------------------------------------

    def incoming(self) -> list[Path]:
        """Recorded events in recording order, once no handler is between stamping one and writing it."""
        with RecordLock(self, shared=False):
            return [self.incoming_dir / name for name in self.names("incoming")]

    def fan_out(self, path: Path, choose: Callable[[Event], list[str]]) -> tuple[Event, list[str]] | None:
        """Turn one recorded event into one queued delivery per channel `choose` picks, then drop the recording.

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
            log.error("unreadable recording %s (%s); kept in %s", name, exc, place)
            return None
        channels = choose(event)
        states = self.instance_states()
        previous = states.get(event.name)
        for channel in channels:
            delivery = Delivery(self.queue_dir / channel / name, event, channel, previous)
            self.write_atomic(("queue", channel), name, delivery.to_json())
        if not event.is_alert and event.state not in ("MASTER_RX_LOWER_PRI", "MASTER_PRIORITY", "BACKUP_PRIORITY"):
            states[event.name] = event.state
            self.write_atomic(("state",), "instances.json", json.dumps(states, sort_keys=True))
        self._remove(("incoming",), name)
        return event, channels

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
                log.error("%s: unreadable delivery %s (%s); kept in %s", channel, name, exc, place)
        return found

    def save(self, delivery: Delivery) -> None:
        self.write_atomic(("queue", delivery.channel), delivery.name, delivery.to_json())

    def complete(self, delivery: Delivery) -> None:
        self._remove(("queue", delivery.channel), delivery.name)

    def bury(self, delivery: Delivery, reason: str) -> Path:
        """Move a delivery that gave up to dead/CHANNEL/, with the reason recorded in it."""
        delivery.last_error = reason
        self.save(delivery)
        return self._move(("queue", delivery.channel), delivery.name, ("dead", delivery.channel))

    def _walk_count(self, *parts: str) -> int:
        """Entries named like ours below spool/PARTS, through no symlink."""
        try:
            directory = self._open_dir(*parts, create=False)
        except (FileNotFoundError, SpoolError):
            return 0
        try:
            entries = os.listdir(directory)
            subdirs = [name for name in entries
                       if stat.S_ISDIR(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)]
        finally:
            os.close(directory)
        return (sum(1 for name in entries if ENTRY_NAME.match(name))
                + sum(self._walk_count(*parts, name) for name in subdirs if len(parts) < 2))

    def depth(self) -> dict[str, Any]:
        """How much is waiting: recorded events, queued deliveries per channel, dead letters."""
        try:
            directory = self._open_dir("queue", create=False)
        except FileNotFoundError:
            channels: list[str] = []
        else:
            try:
                channels = sorted(name for name in os.listdir(directory)
                                  if stat.S_ISDIR(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode))
            finally:
                os.close(directory)
        queued = {channel: len(self.names("queue", channel)) for channel in channels}
        return {"incoming": len(self.incoming()), "queued": queued, "dead": self._walk_count("dead")}

    def idle(self) -> bool:
        depth = self.depth()
        return depth["incoming"] == 0 and not any(depth["queued"].values())


class RecordLock:
    """flock on spool/record.lock, shared or exclusive, as a context manager.

    A lock that cannot be had is skipped: ordering is worth less than recording the event at all.
    """

    def __init__(self, spool: Spool, shared: bool) -> None:
        self.spool = spool
        self.shared = shared
        self.fd: int | None = None

    def __enter__(self) -> RecordLock:
        import fcntl

        try:
            self.fd = self.spool._lock_fd("record.lock")
            fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        except (OSError, KahooksError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing lets go of the lock
            self.fd = None


def _unlink_anything(name: str, directory: int) -> None:
    try:
        os.unlink(name, dir_fd=directory)
    except IsADirectoryError:
        os.rmdir(name, dir_fd=directory)
    except FileNotFoundError:
        pass

