"""ka-check-exec: run a command (`squid -k check`) under a deadline and judge its exit code.

What a hand-written track script gets wrong, done right:
- a command that cannot be started is a failure (keepalived counts it a success);
- the command runs in its own session; on timeout the whole group gets SIGTERM,
  then SIGKILL after a short grace;
- nothing it started outlives the check: this process becomes a child
  subreaper, so even descendants that escaped with setsid() are re-parented
  here and stopped;
- output goes to a memfd, not a pipe, so a grandchild holding the pipe open
  cannot keep the check waiting.
"""

from __future__ import annotations

import os
import select
import signal
import time

from kahooks.checks import procfs
from kahooks.checks.base import Check
from kahooks.deadline import format_seconds
from kahooks.options import Option, in_ranges, int_ranges, positive_float, regex
from kahooks.result import CheckResult, healthy, unhealthy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kahooks.deadline import Deadline

OUTPUT_LIMIT = 65536
PR_SET_CHILD_SUBREAPER = 36
DEFAULT_KILL_GRACE = 0.2
# Python ignores SIGPIPE and SIGXFSZ; ignored signals stay ignored across exec, so restore them.
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
CLEANUP_BLOCKED = {signal.SIGTERM, signal.SIGINT, signal.SIGALRM}


class ExecCheck(Check):
    kind = "exec"
    OPTIONS = (
        Option("COMMAND", rest=True, required=True, help="the command and its arguments (after --)"),
        Option("--ok-codes", convert=int_ranges, default="0", metavar="LIST",
               help="exit codes that mean healthy, e.g. 0 or 0,3-4"),
        Option("--expect-output", convert=regex, metavar="REGEX",
               help="its output (stdout and stderr) must also match REGEX"),
        Option("--kill-grace", convert=positive_float, default=DEFAULT_KILL_GRACE, metavar="SECONDS",
               help="after SIGTERM, wait this long before SIGKILL"),
    )

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.argv: list[str] = list(values["command"])
        codes = values.get("ok_codes") or "0"
        self.ok_codes = int_ranges(codes) if isinstance(codes, str) else codes
        self.expect_output = values.get("expect_output")
        self.kill_grace: float = values.get("kill_grace") or DEFAULT_KILL_GRACE
        self.display = " ".join(_quote(arg) for arg in self.argv)
        if len(self.display) > 60:
            self.display = self.display[:57] + "..."

    def hard_limit(self) -> float:
        return self.timeout + self.kill_grace + 0.3

    def probe(self, deadline: Deadline) -> CheckResult:
        become_subreaper()
        output_fd = os.memfd_create("ka-check-exec", os.MFD_CLOEXEC)
        try:
            return self._run(output_fd, deadline)
        finally:
            os.close(output_fd)

    def _run(self, output_fd: int, deadline: Deadline) -> CheckResult:
        try:
            pid = os.posix_spawnp(
                self.argv[0], self.argv, os.environ,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                              (os.POSIX_SPAWN_DUP2, output_fd, 1),
                              (os.POSIX_SPAWN_DUP2, output_fd, 2)],
                setsid=True, setsigdef=RESET_SIGNALS)
        except FileNotFoundError:
            return unhealthy(f"cannot run {self.argv[0]}: command not found")
        except OSError as exc:
            return unhealthy(f"cannot run {self.argv[0]}: {exc.strerror or exc}")
        exited = False
        stopped_with = ""
        try:
            exited = wait_for_exit(pid, deadline.remaining())
        finally:
            # Runs on timeout, on success and on SIGTERM from keepalived alike.
            previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_BLOCKED)
            try:
                stopped_with = stop_process_tree(pid, self.kill_grace, leader_alive=not exited)
                _, wait_status = os.waitpid(pid, 0)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        took = format_seconds(deadline.elapsed())
        output = read_tail(output_fd)
        last_line = output.strip().rsplit("\n", 1)[-1][:200] if output.strip() else ""
        detail = f": {last_line}" if last_line else ""
        if not exited:
            return unhealthy(f"{self.display} timed out after {format_seconds(deadline.seconds)} "
                             f"(stopped with {stopped_with or 'SIGTERM'}){detail}")
        code = os.waitstatus_to_exitcode(wait_status)
        leftovers = f" (stopped leftover processes with {stopped_with})" if stopped_with else ""
        if code < 0:
            return unhealthy(f"{self.display} killed by {signal.Signals(-code).name} in {took}{detail}",
                             exit_code=code)
        if not in_ranges(code, self.ok_codes):
            return unhealthy(f"{self.display} exited {code} in {took}{detail}", exit_code=code)
        if self.expect_output is not None and not self.expect_output.search(output):
            return unhealthy(f"{self.display} exited {code} but its output does not match "
                             f"/{self.expect_output.pattern}/{detail}", exit_code=code)
        return healthy(f"{self.display} exited {code} in {took}{leftovers}", exit_code=code)


def _quote(arg: str) -> str:
    """Shell-like quoting for messages only (shlex would cost an import of re)."""
    if arg and not any(ch in arg for ch in " \t\n'\"$&;|<>()*?`\\"):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` for the child to exit, without reaping it (so its pid stays reserved)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(pidfd)


def stop_process_tree(leader: int, grace: float, leader_alive: bool) -> str:
    """Stop the command and everything it started; say which signal it took ('' if none was needed).

    SIGTERM first, SIGKILL after `grace`. The leader is reaped by the caller.
    """
    targets = _leftovers(leader, include_leader=leader_alive)
    if not targets:
        return ""
    _signal_all(targets, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        time.sleep(0.005)
        _reap_orphans(leader)
        targets = _leftovers(leader, include_leader=leader_alive and not _has_exited(leader))
        if not targets:
            return "SIGTERM"
    _signal_all(targets, signal.SIGKILL)
    end = time.monotonic() + 0.5
    while _leftovers(leader, include_leader=False) and time.monotonic() < end:
        time.sleep(0.005)
        _reap_orphans(leader)
    _reap_orphans(leader)
    return "SIGKILL"


def _leftovers(leader: int, include_leader: bool) -> list[int]:
    """Live processes the command left: its session and group, and its descendants.

    When this process became a subreaper for a single command (the ka-check-exec
    program), orphans that escaped with setsid() were re-parented here, so every
    descendant of this process counts; a daemon running several commands at
    once only sweeps the leader's own tree.
    """
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


def read_tail(fd: int) -> str:
    size = os.fstat(fd).st_size
    os.lseek(fd, max(0, size - OUTPUT_LIMIT), os.SEEK_SET)
    return os.read(fd, OUTPUT_LIMIT).decode("utf-8", "replace")


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
        _subreaper = False  # the process-group kill still stops what stayed in the group


CHECK = ExecCheck
