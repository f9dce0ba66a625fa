"""Reading and updating paths that another user can write: the one helper (ARCHITECTURE.md, rule 1).

Root reads what keepalived_script and others wrote: the spool, drain files, keepalived's dumps in
/tmp, keepalived.conf and its includes, state files. Every such access goes through here:

- A path is walked one component at a time from a directory descriptor, the way systemd's chase()
  does. A symbolic link is followed only where its owner could not have been someone else: the link
  belongs to root (or to us) and sits in a folder that only root (or we) can write, or a sticky one
  (OpenSSH's StrictModes). A config manager's root-owned link in /etc stays fine; a link planted in the
  spool, in /tmp by another user, or in a group-writable folder is refused.
- The file is opened non-blocking (a FIFO planted in a file's place never blocks), and only a regular
  file is read (a FIFO, a device, a socket or a folder is reported as such).
- Every read is capped: a file over its limit is an error, never a large allocation.
- `open_owned` is for the files kahooks updates in place (an append-only log, a lock): an existing file
  is used only when it is a regular file with one link, so an inode another user hard-linked in (or a
  FIFO, a link) is replaced by a fresh file, never appended to, chowned or chmodded.

Errors are UnsafeFile (a KahooksError: one line for an operator); a missing file stays FileNotFoundError.
"""

from __future__ import annotations

import errno
import os
import stat

from kahooks.errors import KahooksError, os_words

MAX_LINKS = 40  # as the kernel's own limit on symlinks in one lookup (ELOOP)
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class UnsafeFile(KahooksError):
    """A path kahooks refuses to read or update: a planted link, not a regular file, or too large."""


def kind_of(mode: int) -> str:
    """What a file of this mode is, in words for an operator."""
    for test, words in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return words
    return "not a regular file"


def _trusted_owner(uid: int) -> bool:
    return uid == 0 or uid == os.geteuid()


def _folder_is_safe(info: os.stat_result) -> bool:
    """Whether a folder's entries can only have been made by root or us (StrictModes)."""
    return _trusted_owner(info.st_uid) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _link_is_trusted(folder: os.stat_result, link: os.stat_result) -> bool:
    """A link nobody else could have put there: ours or root's, in a safe folder, or a sticky one
    (where only a link's owner may replace it)."""
    if not _trusted_owner(link.st_uid):
        return False
    return _folder_is_safe(folder) or (bool(folder.st_mode & stat.S_ISVTX) and _trusted_owner(folder.st_uid))


def open_regular(path: str | os.PathLike[str], *, dir_fd: int | None = None, links: bool = True) -> int:
    """A read-only descriptor of the regular file at `path`, reached through trusted links only.

    `dir_fd`: resolve a relative `path` from this folder (the spool opens its entries so).
    `links=False`: follow no link at all, trusted or not (inside the spool, nothing kahooks wrote is one).
    Raises FileNotFoundError when it is missing and UnsafeFile when it may not be read.
    """
    shown = os.fspath(path)
    pending = [part for part in reversed(shown.split("/"))]
    start = "/" if shown.startswith("/") else "."
    folder = os.open(start, OPEN_DIR) if dir_fd is None or start == "/" else os.dup(dir_fd)
    hops = 0
    try:
        folder_info = os.fstat(folder)
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            try:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
            except NotADirectoryError:
                raise UnsafeFile(f"{shown}: a part of the path is not a folder") from None
            if stat.S_ISLNK(info.st_mode):
                if not links:
                    raise UnsafeFile(f"{shown} is a symbolic link; refusing to follow it")
                if not _link_is_trusted(folder_info, info):
                    raise UnsafeFile(f"{shown}: refusing to follow a symbolic link another user could have "
                                     "planted (in a folder others can write, or not owned by root)")
                hops += 1
                if hops > MAX_LINKS:
                    raise UnsafeFile(f"{shown}: too many levels of symbolic links")
                target = os.readlink(name, dir_fd=folder)
                if target.startswith("/"):
                    os.close(folder)
                    folder = os.open("/", OPEN_DIR)
                    folder_info = os.fstat(folder)
                pending.extend(reversed(target.split("/")))
                continue
            if pending and any(part not in ("", ".") for part in pending):
                if not stat.S_ISDIR(info.st_mode):
                    raise UnsafeFile(f"{shown}: a part of the path is not a folder")
                child = _open_at(name, OPEN_DIR, folder, shown)
                os.close(folder)
                folder = child
                folder_info = os.fstat(folder)
                continue
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeFile(f"{shown} is {kind_of(info.st_mode)}, not a regular file")
            fd = _open_at(name, OPEN_READ, folder, shown)
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):  # swapped between the look and the open
                os.close(fd)
                raise UnsafeFile(f"{shown} is {kind_of(mode)}, not a regular file")
            return fd
        raise UnsafeFile(f"{shown} is a folder, not a regular file")
    finally:
        os.close(folder)


def _open_at(name: str, flags: int, folder: int, shown: str) -> int:
    try:
        return os.open(name, flags, dir_fd=folder)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link swapped in after the look
            raise UnsafeFile(f"{shown}: changed into a symbolic link while being opened") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise
        raise UnsafeFile(f"{shown}: cannot be opened safely: {os_words(exc)}") from None


def read_fd(fd: int, limit: int, shown: str) -> bytes:
    """At most `limit` bytes of an open regular file; UnsafeFile when it holds more."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, min(limit + 1 - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise UnsafeFile(f"{shown} is larger than {limit} bytes; not read")
    return b"".join(chunks)


def read_bytes(path: str | os.PathLike[str], limit: int, *, dir_fd: int | None = None, links: bool = True) -> bytes:
    """The bytes of the regular file at `path` (see open_regular), at most `limit` of them."""
    fd = open_regular(path, dir_fd=dir_fd, links=links)
    try:
        return read_fd(fd, limit, os.fspath(path))
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], limit: int, *, dir_fd: int | None = None, links: bool = True) -> str:
    """read_bytes as text (UTF-8, undecodable bytes replaced: the text is shown, never executed)."""
    return read_bytes(path, limit, dir_fd=dir_fd, links=links).decode("utf-8", errors="replace")


def open_owned(folder: int, name: str, flags: int, mode: int, owner: tuple[int, int] | None = None) -> int:
    """A descriptor of folder/NAME to update in place (O_WRONLY | O_APPEND for a log, O_RDONLY for a lock).

    An existing file is used only when it is a regular file with a single link; anything else
    there (a hard link to another file, a FIFO, a symlink, a folder) is removed and a fresh file
    made with O_EXCL. Only a file made here is given `owner` and `mode`: an inode someone else
    could have linked in is never chowned, chmodded or appended to.
    """
    for _ in range(3):
        try:
            fd = os.open(name, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=folder)
        except FileExistsError:
            pass
        else:
            try:
                os.fchmod(fd, mode)  # whatever the umask (keepalived's is 0177)
                if owner:
                    os.fchown(fd, *owner)
            except BaseException:
                os.close(fd)
                raise
            return fd
        try:
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=folder)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK):
                raise
            fd = -1
        if fd >= 0:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                return fd  # O_NONBLOCK means nothing to a regular file
            os.close(fd)
        _remove(name, folder)
    raise UnsafeFile(f"{name}: cannot be made a fresh regular file")


def _remove(name: str, folder: int) -> None:
    try:
        os.unlink(name, dir_fd=folder)
    except IsADirectoryError:
        try:
            os.rmdir(name, dir_fd=folder)
        except OSError:
            os.rename(name, f"{name}.{os.urandom(3).hex()}.refused", src_dir_fd=folder, dst_dir_fd=folder)
    except FileNotFoundError:
        pass
