"""`kahooks drain` / `undrain`: take a real server out of its LVS pools from CI/CD, safely.

A drained server has a file in the drain directory named after it (`/run/kahooks/drain/10.0.0.1:80`);
its MISC_CHECK reads it with `--maintenance-file` and fails while it is there, so keepalived
takes the server out of every pool. Draining refuses to leave a virtual server below its
`quorum` (the sum of the weights of the servers it needs, read from keepalived.conf), and it
decides under an exclusive lock: two pipelines draining the last two servers of a pool at once
cannot both succeed. `--wait-connections` then waits for the server's established connections
(seen through IPVS on a director, or as local sockets on the server itself) to end.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kahooks.errors import KahooksError, UsageError
from kahooks.events import lvs
from kahooks.files import atomicfile, safefs
from kahooks.settings.options import MAX_SECONDS, number_problem

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kahooks.admin.pools import VirtualServer

DEFAULT_DIR = "/run/kahooks/drain"
LOCK = ".lock"
MAX_NOTE = 4096  # a drain file holds one line: who drained it, when and why


class DrainRefused(KahooksError):
    """Draining would break a promise (a pool below its quorum): nothing was changed."""


@dataclass
class Outcome:
    path: str
    message: str


def real_server(text: str) -> tuple[str, str, int]:
    """(key, address, port) of a real server given as HOST:PORT or [IPv6]:PORT."""
    key = lvs.key(text)
    host, _, port = key.rpartition(":")
    try:
        address = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        raise UsageError(f"{text!r} is not a real server (IP:PORT or [IPv6]:PORT)") from None
    if int(port) == 0:  # a virtual server's port may be 0 (all ports with persistence); a real server's not
        raise UsageError(f"{text!r}: a real server's port is 1 to 65535")
    return key, address, int(port)


def drained(directory: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(directory) if not name.startswith("."))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise UsageError(f"{directory} is not a folder (--dir names the drain folder)") from None


def shown(text: str) -> str:
    """`text` for a terminal: every character kept, control characters written as escapes, and a byte
    that was not UTF-8 in a file name (os.fsdecode's surrogate) as \\xNN, the byte it was."""
    return "".join(char if char.isprintable() else
                   f"\\x{ord(char) - 0xDC00:02x}" if 0xDC80 <= ord(char) <= 0xDCFF else
                   repr(char)[1:-1] for char in text)


def listing(directory: str) -> list[tuple[str, str]]:
    """(server, what its drain file says) for each drained server, read through safefs: a folder,
    a FIFO or a link planted there is said so, never followed, read or waited on."""
    entries = []
    for name in drained(directory):
        try:
            note = safefs.read_text(os.path.join(directory, name), MAX_NOTE).strip()
        except safefs.UnsafeFile as exc:
            note = f"(not read: {exc})"
        except OSError as exc:
            note = f"(not read: {exc.strerror or exc})"
        entries.append((shown(name), shown(note)))
    return entries


def check_timeout(timeout: float) -> None:
    """A wait's limit must be a real duration: NaN would never end, inf and 1e300 neither."""
    problem = number_problem(timeout, 0, MAX_SECONDS)
    if problem is not None:
        raise UsageError(f"--timeout {timeout:g}: {problem} (seconds)")


class _Locked:
    """The drain directory's exclusive lock, held while a decision is made and written."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:  # a FIFO, a link or a hard-linked inode planted as the lock is replaced, never used
            self.fd = safefs.open_owned(folder, LOCK, os.O_RDONLY, 0o644)
        finally:
            os.close(folder)

    def __enter__(self) -> _Locked:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _pools_with(key: str, pools: list[VirtualServer]) -> Iterator[VirtualServer]:
    return (pool for pool in pools if any(real.key == key for real in pool.reals))


def drain(server: str, pools: list[VirtualServer], directory: str = DEFAULT_DIR, reason: str = "",
          force: bool = False) -> Outcome:
    """Mark `server` drained, unless a pool would fall below its quorum (DrainRefused) or it is in none."""
    key, _, _ = real_server(server)
    path = os.path.join(directory, key)
    with _Locked(directory):
        already = set(drained(directory))
        if key in already:
            return Outcome(path, f"{key} is already drained")
        mine = list(_pools_with(key, pools))
        if not mine and not force:
            raise DrainRefused(f"{key} is no real_server in keepalived.conf: nothing would read its drain file "
                               f"(--force to write it anyway)")
        for pool in mine:
            left = [real for real in pool.reals if real.key != key and real.key not in already]
            weight = sum(real.weight for real in left)
            if weight < pool.quorum and not force:
                others = ", ".join(real.key for real in pool.reals if real.key != key) or "no other server"
                raise DrainRefused(f"draining {key} would leave virtual server {pool.key} ({pool.where.where}) "
                                   f"with weight {weight} of the {pool.quorum} its quorum needs (others: {others}; "
                                   f"drained: {', '.join(sorted(already)) or 'none'})")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomicfile.replace(path, f"drained {stamp} by {os.environ.get('USER', 'uid ' + str(os.getuid()))}"
                                 f"{': ' + reason if reason else ''}\n".encode(), mode=0o644)
    pools_text = ", ".join(pool.key for pool in mine) or "no pool (forced)"
    return Outcome(path, f"{key} drained from {pools_text}: its checks fail while {path} exists")


def undrain(server: str, directory: str = DEFAULT_DIR) -> Outcome:
    key, _, _ = real_server(server)
    path = os.path.join(directory, key)
    with _Locked(directory):
        try:
            os.unlink(path)
        except FileNotFoundError:
            return Outcome(path, f"{key} was not drained")
    return Outcome(path, f"{key} undrained: its checks pass again once it is healthy")


def wait_connections(server: str, timeout: float, poll: float = 0.2, proc_net: str = "/proc/net") -> int:
    """Wait until no established connection to `server` remains; return how many are left at the end."""
    from kahooks.system.procfs import established_to

    check_timeout(timeout)
    _, address, port = real_server(server)
    deadline = time.monotonic() + timeout
    while True:
        left = established_to(address, port, proc_net)
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(poll)
