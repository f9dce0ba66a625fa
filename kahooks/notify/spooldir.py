"""The spool's file layer: every access through the spool's own directory descriptors and kahooks.files.safefs.

The spool belongs to `keepalived_script` and root reads it, so its owner is not trusted. What this
module guarantees to the handlers, the worker and the daemon:
- Folders are opened relative to the spool's descriptor with O_NOFOLLOW: a planted symlink is
  refused (SpoolError), never followed.
- An entry is read through `safefs.open_regular` + `safefs.read_fd`: only a regular file, never
  a blocking open (a planted FIFO), at most READ_LIMIT bytes. Anything else is a BadEntry.
- The files updated in place (the locks, worker.log) come from `safefs.open_owned`: a FIFO, a
  symlink, a folder or an inode with more than one link (a hard link to a file outside the spool)
  is replaced by a fresh file, so root never blocks on, appends to, chowns or chmods it. Only a
  file made fresh here is given to the spool's owner, so a later handler can still use it.
- Nothing here waits: no open blocks, and no lock is taken (kahooks.notify.spool takes them, with deadlines).
kahooks.notify.spool builds the handlers' and the worker's operations on these.
"""

from __future__ import annotations

import errno
import os
import stat

from kahooks.errors import KahooksError
from kahooks.files import atomicfile, safefs

TYPE_CHECKING = False  # typing costs ka-notify's handler start-up; annotations need it for mypy alone
if TYPE_CHECKING:
    import re
    from pathlib import Path
    from typing import Self

READ_LIMIT = 256 * 1024        # a recorded event is under 1 KiB; anything this big was not written by us
ENTRY_NAME = r"\d{20}-[0-9a-f]{1,32}\.json\Z"  # compiled when first listed: re costs the handler start-up
DIR_MODE = 0o750
FILE_MODE = 0o640
LOCK_MODE = 0o644  # flock needs only read access: root's daemon and the handlers share one lock file
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SpoolError(KahooksError):
    """The spool cannot be used (a directory is a symlink, it cannot be written)."""


class BadEntry(ValueError):
    """A spool file that is not a regular file, too large, not JSON, or not of the expected shape."""


class SpoolDirectory:
    """A spool directory and safe ways to create, read, list, move and remove what is in it."""

    def __init__(self, root: str | Path) -> None:
        # A str until `root` is asked for: pathlib (with urllib.parse and ipaddress behind it) costs
        # ka-notify's handler more than its fsyncs, and recording needs no Path.
        self.path = os.fspath(root)
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            from pathlib import Path

            self._root = Path(self.path)
        return self._root

    def ensure(self) -> Self:
        for parts in (("tmp",), ("incoming",), ("queue",), ("dead",), ("state",)):
            os.close(self._open_dir(*parts))
        return self

    def _root_fd(self) -> int:
        try:
            return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            os.makedirs(self.path, mode=DIR_MODE, exist_ok=True)
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
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
        self.place(parts, name, text)
        return self.root.joinpath(*parts, name)

    def place(self, parts: tuple[str, ...], name: str, text: str, sync_folder: bool = True) -> None:
        """write_atomic without building the Path of what it wrote (the handler's fast path).
        `sync_folder=False`: the file's bytes are synced, its name not yet (`sync` does it)."""
        tmp_fd = self._open_dir("tmp")
        try:
            target_fd = self._open_dir(*parts)
            try:
                # Unique per writer: the worker's channel threads save deliveries of the same event at once.
                atomicfile.replace_at(target_fd, name, text.encode(), mode=FILE_MODE, durable=True,
                                      owner=self._owner(tmp_fd), temp_directory=tmp_fd, temp_prefix="",
                                      sync_directory=sync_folder)
            finally:
                os.close(target_fd)
        finally:
            os.close(tmp_fd)

    def sync(self, *parts: str) -> None:
        """fsync spool/PARTS: the names placed there with sync_folder=False are durable once it returns."""
        directory = self._open_dir(*parts, create=False)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def open_log(self, name: str, limit: int) -> int:
        """A descriptor appending to spool/state/NAME (a log), which becomes NAME.1 past `limit` bytes.

        Through safefs.open_owned: a FIFO planted there never blocks the handler, and an inode
        linked in from elsewhere is replaced, never appended to or chowned."""
        directory = self._open_dir("state")
        try:
            try:
                info = os.stat(name, dir_fd=directory, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_size > limit:
                    os.rename(name, f"{name}.1", src_dir_fd=directory, dst_dir_fd=directory)
            except FileNotFoundError:
                pass
            return self._owned(directory, name, os.O_WRONLY | os.O_APPEND, FILE_MODE)
        finally:
            os.close(directory)

    def _owned(self, directory: int, name: str, flags: int, mode: int) -> int:
        try:
            return safefs.open_owned(directory, name, flags, mode, self._owner(directory))
        except safefs.UnsafeFile as exc:
            raise SpoolError(f"{self.path}: {exc}") from None

    def read(self, parts: tuple[str, ...], name: str) -> bytes:
        """The bytes of a regular file spool/PARTS/NAME, at most READ_LIMIT; BadEntry otherwise
        (FileNotFoundError when it is gone)."""
        directory = self._open_dir(*parts, create=False)
        try:
            fd = _open_entry(directory, name)
            try:
                return safefs.read_fd(fd, READ_LIMIT, name)
            except safefs.UnsafeFile as exc:
                raise BadEntry(str(exc)) from None
            finally:
                os.close(fd)
        finally:
            os.close(directory)

    def modified(self, parts: tuple[str, ...], name: str) -> float:
        """When spool/PARTS/NAME last changed (a link is not followed, in PARTS or at NAME)."""
        directory = self._open_dir(*parts, create=False)
        try:
            return os.stat(name, dir_fd=directory, follow_symlinks=False).st_mtime
        finally:
            os.close(directory)

    def names(self, *parts: str) -> list[str]:
        """Entry names in spool/PARTS that look like ours, sorted (recording order)."""
        try:
            directory = self._open_dir(*parts, create=False)
        except FileNotFoundError:
            return []
        try:
            return sorted(name for name in os.listdir(directory) if _ours(name))
        finally:
            os.close(directory)

    def directories(self, *parts: str) -> list[str]:
        """The directories in spool/PARTS (the channels of queue/ or dead/), sorted; links are not directories."""
        try:
            directory = self._open_dir(*parts, create=False)
        except FileNotFoundError:
            return []
        try:
            return sorted(name for name in os.listdir(directory)
                          if stat.S_ISDIR(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode))
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

    def remove(self, parts: tuple[str, ...], name: str) -> None:
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
        """Open spool/NAME read-only for flock (which needs no write access, so root's daemon and
        keepalived_script's handlers share one whoever made it), through safefs.open_owned."""
        root = self._root_fd()
        try:
            return self._owned(root, name, os.O_RDONLY, LOCK_MODE)
        finally:
            os.close(root)

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
        return (sum(1 for name in entries if _ours(name))
                + sum(self._walk_count(*parts, name) for name in subdirs if len(parts) < 2))


HAND_OVER_DEPTH = 4         # the spool's own layout is three deep (queue/CHANNEL/ENTRY)
HAND_OVER_LIMIT = 1_000_000  # entries looked at, at most


def hand_over(root: str | Path, uid: int, gid: int) -> int:
    """Give what root left in the spool (an earlier root run: the venv route, ka-notify run by hand)
    to its owner, so that the handlers keepalived runs as that user can record again. The package's
    postinst calls it (`python3 -m kahooks.notify.spooldir hand-over`) instead of walking the spool with
    find and chown, which lintian rightly calls a recursive privilege change.

    Only root's own folders and root's regular files with one link are given, each through the
    descriptor it was checked on: no link is followed (O_NOFOLLOW, directory descriptors), a hard
    link the owner planted to a file of root's elsewhere (two links) is never given away, nothing
    on another file system, nothing deeper than the spool's layout. Returns how many were given."""
    top = os.open(root, OPEN_DIR)
    given = [0, 0]  # given, looked at

    def walk(folder: int, depth: int) -> None:
        info = os.fstat(folder)
        if info.st_uid == 0:
            os.fchown(folder, uid, gid)
            given[0] += 1
        if depth >= HAND_OVER_DEPTH:
            return
        for name in os.listdir(folder):
            given[1] += 1
            if given[1] > HAND_OVER_LIMIT:
                raise SpoolError(f"{root}: more than {HAND_OVER_LIMIT} entries; not handed over")
            try:
                # Only a folder or a regular file is opened at all (never a device or a FIFO).
                if not stat.S_ISDIR(kind := os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode) \
                        and not stat.S_ISREG(kind):
                    continue
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                             dir_fd=folder)
            except OSError:  # a symlink (ELOOP), gone, or a socket: not ours to give
                continue
            try:
                entry = os.fstat(fd)
                if entry.st_dev != info.st_dev:
                    continue
                if stat.S_ISDIR(entry.st_mode):
                    walk(fd, depth + 1)
                elif stat.S_ISREG(entry.st_mode) and entry.st_nlink == 1 and entry.st_uid == 0:
                    os.fchown(fd, uid, gid)
                    given[0] += 1
            finally:
                os.close(fd)

    try:
        walk(top, 0)
    finally:
        os.close(top)
    return given[0]


def main(argv: list[str] | None = None) -> int:
    """`python3 -m kahooks.notify.spooldir hand-over SPOOL USER`: hand_over, for the package's postinst."""
    import pwd
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "hand-over":
        print("usage: python3 -m kahooks.notify.spooldir hand-over SPOOL USER", file=sys.stderr)
        return 2
    try:
        user = pwd.getpwnam(args[2])
        hand_over(args[1], user.pw_uid, user.pw_gid)
    except (KeyError, OSError, KahooksError) as exc:
        print(f"kahooks: {args[1]} not handed over to {args[2]}: {exc}", file=sys.stderr)
        return 1
    return 0


_entry_pattern: re.Pattern[str] | None = None


def _ours(name: str) -> bool:
    """Named as record() and the worker name entries (ENTRY_NAME)."""
    global _entry_pattern
    if _entry_pattern is None:
        import re

        _entry_pattern = re.compile(ENTRY_NAME)
    return _entry_pattern.match(name) is not None


def _open_entry(directory: int, name: str) -> int:
    """safefs.open_regular from the spool's folder: BadEntry for all but a missing file."""
    try:
        return safefs.open_regular(name, dir_fd=directory, links=False)
    except FileNotFoundError:
        raise
    except (safefs.UnsafeFile, OSError) as exc:  # OSError: EACCES, EPERM, EMFILE...
        raise BadEntry(str(exc)) from None


if __name__ == "__main__":
    raise SystemExit(main())
