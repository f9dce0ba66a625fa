"""The one atomic write of kahooks: a temporary file, every byte written, then a rename over the target.

A reader (keepalived reading a track file, the worker reading the spool) sees the old
file or the new one, never a mix. A write that fails (ENOSPC, a short write, a file
size limit) removes its temporary file and raises: nothing half written is renamed
into place. Paths are resolved against directory descriptors and the temporary file
is created with O_EXCL | O_NOFOLLOW, so a planted symlink is never written through.
"""

from __future__ import annotations

import errno
import os


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out: a short write is not success."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def replace_at(directory: int, name: str, data: bytes, *, mode: int = 0o644, durable: bool = False,
               owner: tuple[int, int] | None = None, temp_directory: int | None = None,
               temp_prefix: str = ".", sync_directory: bool = True) -> None:
    """Put `data` at NAME in the directory open as `directory`.

    `durable`: fsync the file and the directory (the spool); without it the file lives on a
    tmpfs and is rewritten from live state anyway (track files, the heartbeat). `sync_directory=False`
    with `durable`: the file's bytes are synced before the rename, the rename is left for the caller
    to sync (several renames in one directory fsync, or one that something else covers). `mode` is
    applied whatever the umask. The temporary file goes in `temp_directory` (default: the
    same directory, under a dot name keepalived's watch ignores).
    """
    temp_dir = directory if temp_directory is None else temp_directory
    temporary = f"{temp_prefix}{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                 dir_fd=temp_dir)
    try:
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)
            if owner:
                os.fchown(fd, *owner)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=temp_dir, dst_dir_fd=directory)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=temp_dir)
        except OSError:
            pass
        raise
    if durable and sync_directory:
        os.fsync(directory)


def replace(path: str, data: bytes, *, mode: int = 0o644, durable: bool = False) -> None:
    """replace_at for a path; its directory is created (0755) when missing."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        replace_at(fd, os.path.basename(path), data, mode=mode, durable=durable)
    finally:
        os.close(fd)
