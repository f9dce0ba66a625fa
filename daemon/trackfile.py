"""Writing the files keepalived and operators read: track files, the heartbeat, status, metrics.

keepalived watches a track file's directory with inotify and re-reads the file
on close-after-write and on rename. Writing in place could let it read an empty
or half-written number, so every file here is written to a temporary name in the
same directory and renamed over the old one: a reader sees the old value or the
new one, never a mix. No fsync: these files live on /run (tmpfs) and are
rewritten from live state whenever the daemon starts.
"""

from __future__ import annotations

import os

from kahooks.files import atomicfile


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` in one rename; the directory is created when missing."""
    # A dot name keepalived's watch ignores (it matches only the file it tracks).
    atomicfile.replace(path, text.encode(), mode=mode)


def write_value(path: str, value: int) -> None:
    """A track file: one plain decimal integer and a newline (keepalived parses it with strtol)."""
    write_atomic(path, f"{value}\n")


def read_value(path: str) -> int | None:
    """The integer in a track file, None when it is missing or not a number."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return int(os.read(fd, 64).strip() or b"x")
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
