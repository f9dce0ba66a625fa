"""Reading processes (and listening sockets) from /proc, the way killall, pidof and ss see them.

Pure /proc reads with no psutil, so a process check starts as fast as a bare
interpreter; /proc is whatever pid namespace this process lives in, so it works
inside containers and namespaces where keepalived's track_process does not.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# The kernel keeps 15 bytes of a program name in comm (TASK_COMM_LEN - 1).
COMM_LENGTH = 15
GONE_STATES = frozenset("ZXx")


class ProcInfo:
    """The few facts about one process that a check matches on."""

    __slots__ = ("pid", "comm", "state", "ppid", "pgrp", "session", "start", "threads")

    def __init__(self, pid: int, comm: str, state: str, ppid: int, pgrp: int, session: int,
                 start: int = 0, threads: int = 0) -> None:
        self.pid = pid
        self.comm = comm
        self.state = state
        self.ppid = ppid
        self.pgrp = pgrp
        self.session = session
        self.start = start
        self.threads = threads  # 0: not known

    @property
    def zombie(self) -> bool:
        return self.state in GONE_STATES


def _read(path: str, limit: int) -> bytes:
    """One read through a bare descriptor: the kernel hands a /proc record whole, and a buffered file
    object costs about as much again as the read itself (a process check reads one per process)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_stat(pid: int, proc: str = "/proc") -> ProcInfo | None:
    """Parse /proc/PID/stat; None when the process is gone."""
    try:
        data = _read(f"{proc}/{pid}/stat", 4096)
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may itself contain spaces and parentheses: it ends at the last ')'.
    left = data.find(b"(")
    right = data.rfind(b")")
    comm = data[left + 1:right].decode("utf-8", "surrogateescape")
    fields = data[right + 2:].split()
    # Field 22 of stat (index 19 after comm): the start time in clock ticks since boot; field 20, the threads.
    start = int(fields[19]) if len(fields) > 19 else 0
    threads = int(fields[17]) if len(fields) > 17 else 0
    return ProcInfo(pid, comm, fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), start, threads)


# /proc/PID/task/TID/children lists a task's children by pid, one page (about 500 of them) per read.
CHILDREN_READS = 8192


def children(pid: int, tasks: list[int] | None = None, proc: str = "/proc") -> list[int]:
    """The children of process `pid` (of the given tasks of it; of every task by default), [] when it is gone.

    The kernel keeps children per thread (the thread that forked them), so every task's list is read unless
    the caller knows which ones matter. proc(5): a list is exact only while nothing is created or reaped under
    it (a child reaped while its parent's list is read may hide the one after it; a thread's exit moves its
    children to another thread): the caller must allow for that. Needs CONFIG_PROC_CHILDREN
    (see has_children_files)."""
    if tasks is None:
        try:
            tasks = [int(entry) for entry in os.listdir(f"{proc}/{pid}/task")]
        except (FileNotFoundError, ProcessLookupError):
            return []
    found: list[int] = []
    for tid in tasks:
        try:
            fd = os.open(f"{proc}/{pid}/task/{tid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            continue  # that thread (or the whole process) is gone
        try:
            data = b""
            for _ in range(CHILDREN_READS):  # bounded: pid_max (4M) children at 500 a page
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
        except ProcessLookupError:
            continue
        finally:
            os.close(fd)
        found.extend(int(child) for child in data.split())
    return found


_children_files: bool | None = None


def has_children_files(proc: str = "/proc") -> bool:
    """Whether this kernel has /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN, Linux 3.5+), looked at once."""
    global _children_files
    if _children_files is None:
        _children_files = os.path.exists(f"{proc}/self/task/{os.getpid()}/children")
    return _children_files


# What a --cmdline regex is matched against: the first 4 KiB of argv, as most `ps` columns show.
# Any process may have an 880 KB argv, and a regex holds the interpreter's lock while it runs.
CMDLINE_LIMIT = 4096


def read_cmdline(pid: int, proc: str = "/proc", limit: int = CMDLINE_LIMIT) -> list[str]:
    """argv of a process, its first `limit` bytes ([] for kernel threads, zombies and vanished processes)."""
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as handle:
            data = handle.read(limit)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode("utf-8", "surrogateescape") for part in data.rstrip(b"\0").split(b"\0")] if data else []


def environ_has(pid: int, entry: bytes, proc: str = "/proc", settle: float = 0.5) -> bool:
    """Does the process's environment start with (or hold, in its first 64 KiB) `entry` (NAME=VALUE)?

    A process caught in an exec can read as having none: the file reads the image it was opened on, gone
    once the exec replaces it, and the new image's loader sets env_end only once it has laid every string
    out (create_elf_tables(), fs/binfmt_elf.c; about 2 reads in 100 of a process that keeps exec'ing, as
    `setsid cmd` does once: a CI run's sweep missed such an orphan's token). So a "no" is only given for an
    environment read whole (as long as stat's env_start..env_end says), and an empty one must stay empty
    over two looks a millisecond apart (as it does for `env -i`); until then it is read again, for at most
    `settle` seconds."""
    deadline = time.monotonic() + settle
    previous: tuple[int, int] | None = None
    while True:
        try:
            with open(f"{proc}/{pid}/environ", "rb") as handle:
                data = handle.read(ENVIRON_CAP)
        except OSError:  # gone, or another user's
            return False
        if data.startswith(entry + b"\0") or (b"\0" + entry + b"\0") in data:
            return True
        extent = _environment_extent(pid, proc)
        if extent is None:
            return False  # gone, a zombie or a kernel thread: no environment to wait for
        start, end = extent
        whole = end != 0 and len(data) == min(end - start, ENVIRON_CAP)
        if whole and (data or extent == previous):
            return False
        previous = extent if whole else None
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


ENVIRON_CAP = 65536
# /proc/PID/stat's flags, env_start and env_end (fields 9, 50 and 51 of proc(5)), counted after the state.
FLAGS_FIELD, ENV_START_FIELD, ENV_END_FIELD = 6, 47, 48
PF_KTHREAD = 0x00200000


def _environment_extent(pid: int, proc: str) -> tuple[int, int] | None:
    """Where the process's environment lies now (env_end 0: an exec is laying it out); None when it has
    none to wait for (gone, a zombie, a kernel thread)."""
    try:
        data = _read(f"{proc}/{pid}/stat", 4096)
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if (len(fields) <= ENV_END_FIELD or fields[0].decode() in GONE_STATES
            or int(fields[FLAGS_FIELD]) & PF_KTHREAD):
        return None
    return int(fields[ENV_START_FIELD]), int(fields[ENV_END_FIELD])


def effective_uid(pid: int, proc: str = "/proc") -> int | None:
    """Effective uid from /proc/PID/status (what ps -o euser shows)."""
    try:
        with open(f"{proc}/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    return int(line.split()[2])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def iter_processes(proc: str = "/proc", comm: str | None = None) -> Iterator[ProcInfo]:
    """Every process (thread-group leader) visible in this pid namespace.

    With `comm`, only those whose comm may be it: each process's comm file is read first, which
    costs half its stat, and the stat only of those that match (or whose comm the kernel escaped).
    """
    # Kernels that escape the comm file write a backslash for what stat shows raw: such a comm goes on to its stat.
    wanted = comm[:COMM_LENGTH].encode() + b"\n" if comm and comm.isascii() else None
    for entry in os.listdir(proc):
        if entry.isdigit():
            if wanted is not None:
                try:
                    line = _read(f"{proc}/{entry}/comm", 64)
                except OSError:  # gone (its stat says so) or unreadable (its stat decides)
                    line = wanted
                if line != wanted and b"\\" not in line:
                    continue
            info = read_stat(int(entry), proc)
            if info is not None:
                yield info


def name_matches(name: str, info: ProcInfo, proc: str = "/proc") -> bool:
    """Does the process carry `name` as killall sees it?

    comm holds at most 15 bytes; for a longer name, as killall does, compare the
    truncated comm and then the basename of argv[0].
    """
    if len(name) <= COMM_LENGTH:
        return info.comm == name
    if info.comm != name[:COMM_LENGTH]:
        return False
    argv = read_cmdline(info.pid, proc)
    return bool(argv) and os.path.basename(argv[0]) == name


TCP_LISTEN = "0A"
TCP_ESTABLISHED = "01"


def find_listener(family: int, address: str, port: int, proc_net: str = "/proc/net") -> str | None:
    """The listening address that serves address:port (itself or a wildcard), or None.

    Read from /proc/net/tcp{,6}, which is this network namespace's socket table.
    An IPv4 address is also served by a dual-stack [::] or a [::ffff:a.b.c.d] socket.
    """
    import socket  # here: a process check, which imports this module, needs no socket

    port_hex = f"{port:04X}"
    if family == socket.AF_INET:
        packed = socket.inet_pton(socket.AF_INET, address)
        accept = {
            "tcp": {_proc_hex(packed): address, _proc_hex(bytes(4)): "0.0.0.0"},
            "tcp6": {_proc_hex(bytes(16)): "[::]",
                     _proc_hex(bytes(10) + b"\xff\xff" + packed): f"[::ffff:{address}]"},
        }
    else:
        packed = socket.inet_pton(socket.AF_INET6, address.split("%")[0])
        accept = {"tcp6": {_proc_hex(packed): f"[{address}]", _proc_hex(bytes(16)): "[::]"}}
    for table, addresses in accept.items():
        for local in _listening_sockets(f"{proc_net}/{table}", port_hex):
            if local in addresses:
                return f"{addresses[local]}:{port}"
    return None


def _proc_hex(packed: bytes) -> str:
    """An address as /proc/net/tcp prints it: each 32-bit word in host byte order, as hex."""
    return "".join(f"{int.from_bytes(packed[i:i + 4], sys.byteorder):08X}" for i in range(0, len(packed), 4))


def _listening_sockets(path: str, port_hex: str) -> list[str]:
    try:
        with open(path) as handle:
            next(handle, None)  # header
            found = []
            for line in handle:
                fields = line.split(None, 4)
                local_address, _, local_port = fields[1].partition(":")
                if local_port == port_hex and fields[3] == TCP_LISTEN:
                    found.append(local_address)
            return found
    except FileNotFoundError:  # no IPv6 in this kernel or namespace
        return []


def established_to(address: str, port: int, proc_net: str = "/proc/net") -> int:
    """Established TCP connections this network namespace holds to address:port: as the server
    (/proc/net/tcp{,6}, local side) and, on an LVS director, through IPVS (/proc/net/ip_vs_conn,
    destination side: the real server)."""
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    wanted = {("tcp6" if family == socket.AF_INET6 else "tcp", _proc_hex(packed))}
    if family == socket.AF_INET:
        wanted.add(("tcp6", _proc_hex(bytes(10) + b"\xff\xff" + packed)))  # a dual-stack server
    port_hex = f"{port:04X}"
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"{proc_net}/{table}") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split(None, 4)
                    local_address, _, local_port = fields[1].partition(":")
                    if local_port == port_hex and fields[3] == TCP_ESTABLISHED and (table, local_address) in wanted:
                        count += 1
        except FileNotFoundError:
            continue
    return count + _ipvs_established(packed, port, f"{proc_net}/ip_vs_conn")


def _ipvs_established(packed: bytes, port: int, path: str) -> int:
    """IPVS connections to a real server: `Pro FromIP FPrt ToIP TPrt DestIP DPrt State ...`, IPv4
    addresses as 8 hex digits (network order), IPv6 written out, ports as 4 hex digits."""
    import ipaddress

    try:
        with open(path) as handle:
            lines = handle.readlines()[1:]
    except (FileNotFoundError, PermissionError):  # no IPVS here
        return 0
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[7] != "ESTABLISHED":
            continue
        try:
            dest = fields[5]
            dest_packed = bytes.fromhex(dest) if len(dest) == 8 else ipaddress.ip_address(dest).packed
            if dest_packed == packed and int(fields[6], 16) == port:
                count += 1
        except ValueError:
            continue
    return count
