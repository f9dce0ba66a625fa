"""The one way kahooks runs a command: ka-check-exec, the exec channel and rebind all come here.

- The command runs in its own session (setsid), stdin on /dev/null, stdout and stderr
  into one pipe of which only the last OUTPUT_TAIL bytes are kept: `yes` cannot grow us.
- Its exit is heard through a pidfd; the pipe is not read to its end, so a grandchild
  that holds it open cannot keep us waiting.
- On timeout, the command and everything it started get SIGTERM, then SIGKILL after a grace,
  and run() returns once they are gone (a bounded wait, KILL_WAIT): never while they still die.
- `sweep=True` (checks, the exec channel): whatever it left running is stopped too, even
  what escaped with setsid(), found by a token in its environment, and, in a program that
  is a child subreaper (ka-check-exec, `kahooks serve`), by parentage: what was re-parented
  to us, even with a cleared environment. A subreaper finds all of it in the command's own
  tree (a few /proc reads for a command that left nothing); another process looks at every one.
  `sweep=False` (rebind): a service the command started stays up; only a timeout stops anything.
- Every wait has a deadline, the leader's reaping included; stop_all() ends every wait at once.
- A command starts with neither the GIL nor a lock held (posix_spawnp through ctypes): an exec that is
  slow under load pauses no other thread of the daemon.
- start_helper()/end_helper(): a long-lived helper of the daemon (the wire observer's process), started
  the same way and registered as a running command, so that no sweep takes it for an orphan.
"""

from __future__ import annotations

import _thread
import os
import select
import signal
import time

from kahooks.system import procfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

OUTPUT_TAIL = 65536
PR_SET_CHILD_SUBREAPER = 36
TOKEN_VARIABLE = "KAHOOKS_RUN_TOKEN"
# After SIGKILL, how long an attempt waits for its processes to be gone (one stuck in the kernel, D state,
# may take a while; the wait is bounded all the same).
KILL_WAIT = 2.0
# Python ignores SIGPIPE and SIGXFSZ; ignored signals stay ignored across exec, so restore them.
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
CLEANUP_BLOCKED = {signal.SIGTERM, signal.SIGINT, signal.SIGALRM}

# The commands running now, leader pid -> (its start in clock ticks since boot, sweep), and the
# windows (start, end) of sweep=False commands an adopted orphan may belong to. One lock, taken by
# a start and by a reap: a leader is registered before anyone could reap it. (_thread, not threading:
# ka-check-exec's start-up imports no threading.)
_lock = _thread.allocate_lock()
_running: dict[int, tuple[int, bool]] = {}
# Commands being started: a token -> a clock tick at or before the start of their leader, whose pid is not
# known until it has exec'd (see _spawn).
_starting: dict[object, int] = {}
_kept_ended: list[tuple[int, int]] = []
_helpers: set[int] = set()  # leaders in _running started by start_helper
FOREVER = 1 << 62
# Written to by stop_all(): every wait returns at once (its command stopped as on a timeout), nothing new starts.
_abort_read, _abort_write = -1, -1


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
    wait_status: int | None = None
    started = time.monotonic()
    if stopping():
        return Finished(None, "not started: stopping", True, "", 0.0)
    # SIGTERM (keepalived stopping an overrunning check) may interrupt the wait, and only the
    # wait: blocked until the clean-up is armed, blocked again for the clean-up itself, and
    # handled once everything the command started is stopped and reaped.
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_BLOCKED)
    try:
        pid, read_end = _spawn(argv, environment, sweep)
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            exited = _wait(pid, read_end, started + timeout, tail)
        finally:
            # Runs on timeout, on success and on SIGTERM from keepalived alike.
            signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_BLOCKED)
            try:
                if not exited or sweep:
                    stopped_with = stop_process_tree(pid, kill_grace, leader_alive=not exited, marker=marker)
                wait_status = _reap_leader(pid)
                _drain(read_end, tail)
            finally:
                os.close(read_end)
                _forget(pid, sweep)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)  # a signal that came meanwhile is handled now
    code = None if not exited or wait_status is None else os.waitstatus_to_exitcode(wait_status)
    return Finished(code, tail.decode("utf-8", "replace"), not exited, stopped_with, time.monotonic() - started)


def _reap_leader(pid: int) -> int | None:
    """The leader's wait status, waiting at most KILL_WAIT (it was killed, or has exited); None when it
    is stuck in the kernel still: then it is left to reap() (a subreaper) or to init."""
    end = time.monotonic() + KILL_WAIT
    while True:
        with _lock:  # no child of ours is reaped while another thread reads our children lists (_own_children)
            reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped or time.monotonic() >= end:
            return status if reaped else None
        time.sleep(0.005)


def _forget(pid: int, sweep: bool) -> None:
    with _lock:
        begin, _ = _running.pop(pid, (0, True))
        if not sweep:
            _kept_ended.append((begin, _now_ticks()))
        # A window matters while a command that started before it ended runs: only those can be given its orphans.
        # A helper (start_helper) runs as long as the daemon and starts nothing: it would keep every window.
        oldest = min((*(start for leader, (start, _) in _running.items() if leader not in _helpers),
                      *_starting.values()), default=FOREVER)
        _kept_ended[:] = [window for window in _kept_ended if window[1] >= oldest]


def _kept_windows() -> list[tuple[int, int]]:
    """(start, end) of every sweep=False command running now or lately (the lock held)."""
    return [*_kept_ended, *((start, FOREVER) for start, sweep in _running.values() if not sweep)]


def _abort_fd() -> int:
    """The pipe stop_all() writes to, made once per process."""
    global _abort_read, _abort_write
    with _lock:
        if _abort_read < 0:
            _abort_read, _abort_write = os.pipe2(os.O_CLOEXEC)
        return _abort_read


def stopping() -> bool:
    """Whether stop_all() was called."""
    return bool(select.select([_abort_fd()], [], [], 0)[0])


def stop_all() -> None:
    """Stop every command running now as on a timeout, and start none from now on (`kahooks serve`
    stopping: nothing it started may outlive it). Each caller's run() returns once its command is gone."""
    _abort_fd()
    os.write(_abort_write, b"x")  # never read: every poll sees it from now on


def _spawn(argv: list[str], environment: Mapping[str, str], sweep: bool) -> tuple[int, int]:
    """Start argv in a session of its own, stdout and stderr into a pipe: (pid, the pipe's read end)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _registered_spawn(argv, environment, sweep, write_end)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return pid, read_end


def _registered_spawn(argv: list[str], environment: Mapping[str, str], sweep: bool, output: int,
                      stdin: int | None = None) -> int:
    """Start argv, registered as a running command.

    Neither the GIL nor the lock is held while the child starts (glibc's posix_spawn waits until it has
    exec'd, and an exec waits for a CPU under load): the start is announced in _starting first, and the
    leader moves to _running under the same hold of the lock that ends that announcement, so reap() never
    takes its exit status and no other command's sweep takes it for an orphan (see _orphans_of)."""
    key = object()
    with _lock:
        _starting[key] = _now_ticks() - 2  # at or before the child's start time, in /proc's unit
    try:
        pid = _posix_spawnp(argv, environment, output, stdin)
        info = procfs.read_stat(pid)
    except BaseException:
        with _lock:
            del _starting[key]
        raise
    with _lock:
        del _starting[key]
        _running[pid] = (info.start if info is not None else _now_ticks(), sweep)
    return pid


def start_helper(argv: list[str], channel: int, env: Mapping[str, str] | None = None) -> int:
    """Start a helper process that outlives this call (the wire observer's): stdin, stdout and stderr on
    `channel` (one end of a socket pair), its own session. It is registered as a running command, so no
    check's sweep takes it for an orphan and reap() leaves its exit status to end_helper()."""
    pid = _registered_spawn(argv, os.environ if env is None else env, True, channel, stdin=channel)
    with _lock:
        _helpers.add(pid)
    return pid


def end_helper(pid: int, wait: float) -> int | None:
    """Wait at most `wait` s for a helper to exit by itself (it was told to), then SIGKILL it; reap it and
    return its wait status (None: stuck in the kernel still, left to reap())."""
    deadline = time.monotonic() + wait
    try:
        while True:
            with _lock:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped:
                return status
            if time.monotonic() >= deadline:
                _signal_all([pid], signal.SIGKILL)
                return _reap_leader(pid)
            time.sleep(0.01)
    except ChildProcessError:
        return None
    finally:
        with _lock:
            _helpers.discard(pid)
        _forget(pid, True)


# glibc's <spawn.h> (musl's values are the same).
POSIX_SPAWN_SETSIGDEF, POSIX_SPAWN_SETSIGMASK, POSIX_SPAWN_SETSID = 0x04, 0x08, 0x80
# Room for glibc's posix_spawnattr_t (336 bytes on x86-64), posix_spawn_file_actions_t (80) and sigset_t (128).
OPAQUE_SIZE = 1024
_libc: Any = None


def _libc_spawn() -> Any:
    """libc, with the prototypes _posix_spawnp calls (loaded once)."""
    global _libc
    if _libc is None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pointer, string = ctypes.c_void_p, ctypes.c_char_p
        libc.posix_spawnp.argtypes = [ctypes.POINTER(ctypes.c_int), string, pointer, pointer, pointer, pointer]
        libc.posix_spawn_file_actions_addopen.argtypes = [pointer, ctypes.c_int, string, ctypes.c_int, ctypes.c_uint]
        libc.posix_spawn_file_actions_adddup2.argtypes = [pointer, ctypes.c_int, ctypes.c_int]
        libc.posix_spawnattr_setflags.argtypes = [pointer, ctypes.c_short]
        for name in ("posix_spawn_file_actions_init", "posix_spawn_file_actions_destroy", "posix_spawnattr_init",
                     "posix_spawnattr_destroy", "sigemptyset"):
            getattr(libc, name).argtypes = [pointer]
        for name in ("posix_spawnattr_setsigdefault", "posix_spawnattr_setsigmask"):
            getattr(libc, name).argtypes = [pointer, pointer]
        libc.sigaddset.argtypes = [pointer, ctypes.c_int]
        _libc = libc
    return _libc


def _c_strings(items: list[bytes]) -> Any:
    """A NULL-terminated char *[] of items (they must outlive the call)."""
    import ctypes

    for item in items:
        if b"\0" in item:
            raise ValueError("embedded null byte")
    return (ctypes.c_char_p * (len(items) + 1))(*items, None)


def _posix_spawnp(argv: list[str], environment: Mapping[str, str], output: int, stdin: int | None = None) -> int:
    """posix_spawnp(3) through ctypes, which lets go of the GIL for the call: os.posix_spawnp holds it until
    the child has exec'd, freezing every other thread of the daemon (heartbeat, checks, the wire observer)
    for as long as an exec waits under load (0.7 s of stall per 0.7 s of exec, strace-delayed). The child:
    stdin on /dev/null (or `stdin`), stdout and stderr into `output`, its own session, RESET_SIGNALS at their default,
    no signal blocked (the caller blocks SIGTERM while it starts us), fds closed by their O_CLOEXEC."""
    import ctypes

    if not argv:
        raise ValueError("argv must not be empty")
    for key in environment:
        if not key or "=" in key:
            raise ValueError(f"illegal environment variable name: {key!r}")
    c_argv = _c_strings([os.fsencode(arg) for arg in argv])
    c_env = _c_strings([os.fsencode(key) + b"=" + os.fsencode(value) for key, value in environment.items()])
    libc = _libc_spawn()
    actions, attributes = ctypes.create_string_buffer(OPAQUE_SIZE), ctypes.create_string_buffer(OPAQUE_SIZE)
    default, mask = ctypes.create_string_buffer(OPAQUE_SIZE), ctypes.create_string_buffer(OPAQUE_SIZE)
    pid = ctypes.c_int(0)
    if libc.posix_spawn_file_actions_init(actions):
        raise MemoryError
    try:
        if libc.posix_spawnattr_init(attributes):
            raise MemoryError
        try:
            libc.sigemptyset(default)
            libc.sigemptyset(mask)
            for signum in RESET_SIGNALS:
                libc.sigaddset(default, signum)
            failed = ((libc.posix_spawn_file_actions_addopen(actions, 0, os.fsencode(os.devnull), os.O_RDONLY, 0)
                       if stdin is None else libc.posix_spawn_file_actions_adddup2(actions, stdin, 0))
                      or libc.posix_spawn_file_actions_adddup2(actions, output, 1)
                      or libc.posix_spawn_file_actions_adddup2(actions, output, 2)
                      or libc.posix_spawnattr_setsigdefault(attributes, default)
                      or libc.posix_spawnattr_setsigmask(attributes, mask)
                      or libc.posix_spawnattr_setflags(attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF
                                                       | POSIX_SPAWN_SETSIGMASK)
                      or libc.posix_spawnp(ctypes.byref(pid), c_argv[0], actions, attributes, c_argv, c_env))
        finally:
            libc.posix_spawnattr_destroy(attributes)
    finally:
        libc.posix_spawn_file_actions_destroy(actions)
    if failed:
        raise OSError(failed, os.strerror(failed), argv[0])
    return pid.value


def _keep_tail(tail: bytearray, chunk: bytes) -> None:
    tail += chunk
    if len(tail) > OUTPUT_TAIL:
        del tail[:len(tail) - OUTPUT_TAIL]


def _wait(pid: int, output: int, deadline: float, tail: bytearray) -> bool:
    """Keep the tail of the output until the command exits (True) or the deadline passes (False)."""
    pidfd = os.pidfd_open(pid)
    abort = _abort_fd()
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(output, select.POLLIN)
        poller.register(abort, select.POLLIN)
        reading = True
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for fd, _ in poller.poll(max(1, int(left * 1000))):
                if fd == pidfd:
                    return True
                if fd == abort:
                    return False
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

    SIGTERM first, SIGKILL after `grace`, then a bounded wait (KILL_WAIT) until none of it is left
    alive: the caller's attempt ends when its processes have, not while they are still dying.
    The leader is reaped by the caller.
    """
    targets = _leftovers(leader, leader_alive, marker)
    if not targets:
        return ""
    _signal_all(targets, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        time.sleep(0.005)
        _reap_orphans()
        targets = _leftovers(leader, leader_alive and not _has_exited(leader), marker)
        if not targets:
            return "SIGTERM"
    end = time.monotonic() + KILL_WAIT
    while targets and time.monotonic() < end:
        # Again each round: a process may have forked between the look and the kill.
        _signal_all(targets, signal.SIGKILL)
        time.sleep(0.005)
        _reap_orphans()
        targets = _leftovers(leader, leader_alive and not _has_exited(leader), marker)
    return "SIGKILL"


def _leftovers(leader: int, include_leader: bool, marker: bytes) -> list[int]:
    """Live processes the command left: its session and group, its descendants, any process
    carrying its token in the environment (one that escaped with setsid() and was re-parented
    to init), and, in a subreaper, the orphans it left (see _orphans_of) with their descendants.

    A subreaper that can read children lists walks the command's own tree (_leftovers_in_tree): a few
    /proc reads for a command that left nothing. Otherwise every process is looked at (_leftovers_scanned)."""
    if _subreaper and procfs.has_children_files():
        return _leftovers_in_tree(leader, include_leader, marker)
    return _leftovers_scanned(leader, include_leader, marker)


def _since(leader: int, leader_info: procfs.ProcInfo | None) -> int:
    """When the command started, in /proc's clock ticks."""
    return leader_info.start if leader_info is not None else _running.get(leader, (0, True))[0]


def _leftovers_scanned(leader: int, include_leader: bool, marker: bytes) -> list[int]:
    """_leftovers by a look at every process on the machine (not a subreaper, or no children lists)."""
    own = os.getpid()
    processes = [info for info in procfs.iter_processes() if not info.zombie]
    children: dict[int, list[int]] = {}
    for info in processes:
        children.setdefault(info.ppid, []).append(info.pid)
    found = {info.pid for info in processes if leader in (info.pgrp, info.session)}
    since = _since(leader, procfs.read_stat(leader))
    stack = [leader, *_orphans_of(since, [info for info in processes if info.ppid == own])]
    found.update(stack)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    if marker:
        # Only what started after the command can carry its token: a few environments to read, not every one.
        found.update(info.pid for info in processes
                     if info.start >= since and info.pid not in found and info.pid != own
                     and procfs.environ_has(info.pid, marker))
    found.discard(own)
    if not include_leader:
        found.discard(leader)
    return sorted(found)


# How many times _leftovers_in_tree reads our children lists before it gives up on the tree and looks at
# every process (a command that keeps orphaning processes faster than we read).
TREE_ROUNDS = 16


def _leftovers_in_tree(leader: int, include_leader: bool, marker: bytes) -> list[int]:
    """_leftovers in a subreaper, from the command's own tree: its cost follows what the command left,
    not how many processes the machine runs.

    Why the tree holds everything: a process the command started descends from its leader, and we are a
    subreaper above the leader, so when any of its ancestors dies it is re-parented to the nearest living
    subreaper among them, or to us: it is always under the leader, under a subreaper in the tree, or one of
    our adopted children (started after the command did: _orphans_of). Its session and group are the
    leader's or new ones it made (a session or group cannot be joined from outside), and its token came
    from its parent: so no whole-/proc search by group, session or token is needed.

    Why no race hides a live process (proc(5): a children list may miss entries while children are reaped
    or threads exit under it), when the answer is "nothing left":
    - every process found has its stat read, and a live one is a target, so an answer is empty only when
      each process found was dead: and a dead (zombie) process has no children, they were moved to a
      reaper before it became one;
    - a list that hides a child is one whose owner was reaping it (or whose thread was exiting), so that
      owner was alive when its stat was read, just before its list: it is a target;
    - what moves to us while we walk is caught by reading our own lists again until they bring nothing new;
      our own lists change under us only by our reaps, which take _lock, as this read does;
    - an orphan goes to our first living thread (find_new_reaper(): find_alive_thread() of the subreaper;
      kernels before 2015 gave it to the subreaper's thread it descends from, the one that started the
      command), and so do the children of a thread of ours that exits: the main thread's list and the
      calling thread's are read, not one per thread of the daemon (one per check); another thread's
      children are its own commands' leaders, none of them ours.
    Past TREE_ROUNDS reads that keep bringing new orphans, every process is looked at as before.
    """
    leader_info = procfs.read_stat(leader)
    since = _since(leader, leader_info)
    live: set[int] = set()
    visited: set[int] = set()
    _walk([leader], visited, live, {leader: leader_info})
    seen = {leader}
    for _ in range(TREE_ROUNDS):
        with _lock:
            adopted = [pid for pid in _own_children() if pid not in seen and pid not in _running]
        if not adopted:
            break
        seen.update(adopted)
        infos = {pid: procfs.read_stat(pid) for pid in adopted}
        orphans = _orphans_of(since, [info for info in infos.values() if info is not None and not info.zombie],
                              leader, marker)
        _walk(orphans, visited, live, infos)
    else:
        return _leftovers_scanned(leader, include_leader, marker)
    live.discard(os.getpid())
    if include_leader:
        live.add(leader)
    else:
        live.discard(leader)
    return sorted(live)


def _own_children() -> list[int]:
    """This process's children on the lists of its main thread (where orphans go) and of the calling one
    (its own command's leader; an older kernel's orphans). Read with _lock held."""
    own, tid = os.getpid(), _thread.get_native_id()
    return procfs.children(own, [own] if tid == own else [own, tid])


def _walk(roots: list[int], visited: set[int], live: set[int], known: dict[int, procfs.ProcInfo | None]) -> None:
    """Add to `live` the live processes among roots and their descendants (children lists, every task's)."""
    stack = list(roots)
    for _ in range(1 << 22):  # bounded: pid_max
        if not stack:
            return
        pid = stack.pop()
        if pid in visited:
            continue
        visited.add(pid)
        info = known[pid] if pid in known else procfs.read_stat(pid)
        if info is None:
            continue
        if not info.zombie:
            live.add(pid)
        elif info.threads <= 1:
            continue  # a dead process has no children left: they were re-parented when it died
        # One list when it has one thread; with several, each thread's (a thread's children are its own).
        stack.extend(procfs.children(pid, [pid] if info.threads == 1 else None))


def _orphans_of(since: int, adopted: list[procfs.ProcInfo], leader: int = 0, marker: bytes = b"") -> list[int]:
    """Which of this subreaper's adopted children a command that started at `since` left behind.

    An orphan re-parented to us carries nothing of its command (setsid left the group, `env -i` the
    token), but when it started: it is the command's when it started after the command did and no
    command that keeps what it starts (sweep=False: a service a rebind started) ran at that moment.
    A child that started while another command was being started may be that command's leader, not yet
    registered (_spawn): it is judged once those starts are over, waiting for them at most KILL_WAIT; one
    still unsure then is left alone. With `leader` and `marker` (the tree walk, which does not search the
    whole of /proc for them), one that started in such a window or is still unsure is the command's all
    the same when it is in the leader's group or session or carries the token (its descendants inherit
    those, or lost them as it did).
    """
    if not _subreaper:
        return []
    deadline = time.monotonic() + KILL_WAIT
    while True:
        with _lock:
            leaders = set(_running)
            kept = _kept_windows()
            starting = min(_starting.values(), default=FOREVER)
        found, unsure, doubtful = [], False, []
        for info in adopted:
            if info.pid in leaders or info.start < since:
                continue
            if any(begin <= info.start <= end for begin, end in kept):
                doubtful.append(info)  # maybe a service a sweep=False command started: never ours to stop
                continue
            if info.start >= starting:
                unsure = True
                doubtful.append(info)
                continue
            found.append(info.pid)
        if not unsure or time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    if leader:
        found.extend(info.pid for info in doubtful if info.pid not in leaders
                     and (leader in (info.pgrp, info.session) or (marker and procfs.environ_has(info.pid, marker))))
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _has_exited(pid: int) -> bool:
    info = procfs.read_stat(pid)
    return info is None or info.zombie


def _reap_orphans() -> None:
    """Reap adopted children that died, never a running command's leader (its caller wants its status).

    Only a subreaper has such orphans. The registry of leaders is held while reaping, and a command is
    announced in it before it starts, so no other thread's leader is ever reaped here: not one that is
    registered, nor one started since a start still under way began (left to the next round).
    """
    if not _subreaper:
        return
    own = os.getpid()
    with _lock:
        starting = min(_starting.values(), default=FOREVER)
        if procfs.has_children_files():  # our own children, not every process (see _own_children)
            infos = [procfs.read_stat(pid) for pid in _own_children() if pid not in _running]
        else:
            infos = [info for info in procfs.iter_processes() if info.ppid == own]
        for info in infos:
            if info is not None and info.zombie and info.pid not in _running and info.start < starting:
                try:
                    os.waitpid(info.pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def reap() -> None:
    """Reap what this subreaper adopted and is now dead (the daemon calls it every heartbeat)."""
    _reap_orphans()


def _now_ticks() -> int:
    """Now, in the unit of /proc/PID/stat's start time (clock ticks since boot)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")) + 1


_subreaper = False


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process, so they can be found and stopped.

    The daemon is one too: it runs many commands at once, so an orphan is given to a command by
    when it started (_orphans_of), and what it adopted and is dead is reaped by reap()."""
    global _subreaper
    if _subreaper:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False  # the process-group kill and the token still stop what it left
    return _subreaper
