"""The one way kahooks runs a command: ka-check-exec, the exec channel and rebind all come here.

- The command runs in its own session (setsid), stdin on /dev/null, stdout and stderr
  into one pipe of which only the last OUTPUT_TAIL bytes are kept: `yes` cannot grow us.
- Its exit is heard through a pidfd; the pipe is not read to its end, so a grandchild
  that holds it open cannot keep us waiting.
- On timeout, the command and everything it started get SIGTERM, then SIGKILL after a grace.
- `sweep=True` (checks, the exec channel): whatever it left running is stopped too, even
  what escaped with setsid(), found by a token in its environment (and, in a
  program that is a child subreaper, by parentage). `sweep=False` (rebind): a service
  the command started stays up; only a timeout stops anything.
"""

from __future__ import annotations

import os
import select
import signal
import time

from kahooks import procfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

OUTPUT_TAIL = 65536
PR_SET_CHILD_SUBREAPER = 36
TOKEN_VARIABLE = "KAHOOKS_RUN_TOKEN"
# Python ignores SIGPIPE and SIGXFSZ; ignored signals stay ignored across exec, so restore them.
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
CLEANUP_BLOCKED = {signal.SIGTERM, signal.SIGINT, signal.SIGALRM}


class Finished:
    """What became of one command."""

    __slots__ = ("code", "output", "timed_out", "stopped_with", "seconds")

    def __init__(self, code: int | None, output: str, timed_out: bool, stopped_with: str, seconds: float) -> None:
        self.code = code                  # exit status, or -N for death by signal N; None on timeout
        self.output = output              # the tail of stdout and stderr together
        self.timed_out = timed_out
        self.stopped_with = stopped_with  # '' (nothing needed stopping), 'SIGTERM' or 'SIGKILL'
        self.seconds = seconds

    @property
    def last_line(self) -> str:
        text = self.output.strip()
        return text.rsplit("\n", 1)[-1][:200] if text else ""


def run(argv: list[str], timeout: float, env: Mapping[str, str] | None = None, kill_grace: float = 0.2,
        sweep: bool = True) -> Finished:
    """Run argv to its end or `timeout`; raises OSError (FileNotFoundError) when it cannot start."""
    token = os.urandom(8).hex()
    environment = {TOKEN_VARIABLE: token, **(os.environ if env is None else env)}
    marker = f"{TOKEN_VARIABLE}={token}".encode()
    tail = bytearray()
    exited = False
    stopped_with = ""
    wait_status = 0
    started = time.monotonic()
    # SIGTERM (keepalived stopping an overrunning check) may interrupt the wait, and only the
    # wait: blocked until the clean-up is armed, blocked again for the clean-up itself, and
    # handled once everything the command started is stopped and reaped.
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_BLOCKED)
    try:
        pid, read_end = _spawn(argv, environment)
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            exited = _wait(pid, read_end, started + timeout, tail)
        finally:
            # Runs on timeout, on success and on SIGTERM from keepalived alike.
            signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_BLOCKED)
            try:
                if not exited or sweep:
                    stopped_with = stop_process_tree(pid, kill_grace, leader_alive=not exited, marker=marker)
                _, wait_status = os.waitpid(pid, 0)
                _drain(read_end, tail)
            finally:
                os.close(read_end)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)  # a signal that came meanwhile is handled now
    code = None if not exited else os.waitstatus_to_exitcode(wait_status)
    return Finished(code, tail.decode("utf-8", "replace"), not exited, stopped_with, time.monotonic() - started)


def _spawn(argv: list[str], environment: Mapping[str, str]) -> tuple[int, int]:
    """Start argv in a session of its own, stdout and stderr into a pipe: (pid, the pipe's read end)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawnp(argv[0], argv, environment,
                              file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                            (os.POSIX_SPAWN_DUP2, write_end, 1),
                                            (os.POSIX_SPAWN_DUP2, write_end, 2)],
                              # The caller blocks SIGTERM while it starts us: the command starts unblocked.
                              setsid=True, setsigdef=RESET_SIGNALS, setsigmask=())
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return pid, read_end


def _keep_tail(tail: bytearray, chunk: bytes) -> None:
    tail += chunk
    if len(tail) > OUTPUT_TAIL:
        del tail[:len(tail) - OUTPUT_TAIL]


def _wait(pid: int, output: int, deadline: float, tail: bytearray) -> bool:
    """Keep the tail of the output until the command exits (True) or the deadline passes (False)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(output, select.POLLIN)
        reading = True
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for fd, _ in poller.poll(max(1, int(left * 1000))):
                if fd == pidfd:
                    return True
                if fd == output and reading:
                    chunk = os.read(output, 65536)
                    if chunk:
                        _keep_tail(tail, chunk)
                    else:  # every writer closed the pipe: only the exit is left to wait for
                        poller.unregister(output)
                        reading = False
    finally:
        os.close(pidfd)


def _drain(output: int, tail: bytearray) -> None:
    """What is in the pipe now, without waiting for writers that may never close it."""
    os.set_blocking(output, False)
    for _ in range(64):
        try:
            chunk = os.read(output, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        _keep_tail(tail, chunk)


def stop_process_tree(leader: int, grace: float, leader_alive: bool, marker: bytes = b"") -> str:
    """Stop the command and everything it started; say which signal it took ('' if none was needed).

    SIGTERM first, SIGKILL after `grace`. The leader is reaped by the caller.
    """
    targets = _leftovers(leader, leader_alive, marker)
    if not targets:
        return ""
    _signal_all(targets, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        time.sleep(0.005)
        _reap_orphans(leader)
        targets = _leftovers(leader, leader_alive and not _has_exited(leader), marker)
        if not targets:
            return "SIGTERM"
    _signal_all(targets, signal.SIGKILL)
    end = time.monotonic() + 0.5
    while _leftovers(leader, False, marker) and time.monotonic() < end:
        time.sleep(0.005)
        _reap_orphans(leader)
    _reap_orphans(leader)
    return "SIGKILL"


def _leftovers(leader: int, include_leader: bool, marker: bytes) -> list[int]:
    """Live processes the command left: its session and group, its descendants, and any
    process carrying its token in the environment (one that escaped with setsid() and was
    re-parented to init). When this process is a subreaper for a single command (the
    ka-check-exec program), every descendant of this process counts too."""
    own = os.getpid()
    processes = [info for info in procfs.iter_processes() if not info.zombie]
    children: dict[int, list[int]] = {}
    for info in processes:
        children.setdefault(info.ppid, []).append(info.pid)
    found = {info.pid for info in processes if leader in (info.pgrp, info.session)}
    stack = [own if _subreaper else leader]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    if marker:
        # Only what started after the command can carry its token: a few environments to read, not every one.
        leader_info = procfs.read_stat(leader)
        since = leader_info.start if leader_info is not None else 0
        found.update(info.pid for info in processes
                     if info.start >= since and info.pid not in found and info.pid != own
                     and procfs.environ_has(info.pid, marker))
    found.discard(own)
    if not include_leader:
        found.discard(leader)
    return sorted(found)


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _has_exited(pid: int) -> bool:
    info = procfs.read_stat(pid)
    return info is None or info.zombie


def _reap_orphans(leader: int) -> None:
    """Reap re-parented descendants that died, but not the leader (the caller wants its status).

    Only a subreaper has such orphans; a daemon that is not one must never reap: its other
    zombie children are the leaders of commands other threads are waiting for.
    """
    if not _subreaper:
        return
    for info in list(procfs.iter_processes()):
        if info.ppid == os.getpid() and info.pid != leader and info.zombie:
            try:
                os.waitpid(info.pid, os.WNOHANG)
            except ChildProcessError:
                pass


_subreaper = False
# The daemon sets this False: it runs many commands at once and must not claim all orphans.
SUBREAPER_ALLOWED = True


def become_subreaper() -> None:
    """Make orphaned descendants re-parent to this process, so they can be found and stopped."""
    global _subreaper
    if _subreaper or not SUBREAPER_ALLOWED:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False  # the process-group kill and the token still stop what it left
