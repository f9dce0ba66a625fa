"""Commands kahooks runs and processes it looks at: nothing left behind, nothing unbounded, nothing stalled."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kahooks.lab.netns import wait_for
from kahooks.system import procfs
from tests.support.notify import write_config
from tests.support.programs import kill_mentioning, pids_mentioning
from tests.support.serve import Served, head


def test_the_daemon_leaves_no_setsid_escapee_of_an_exec_check_running(tmp_path: Path) -> None:
    marker = f"{random.randint(10**8, 10**9)}.5"
    config = head(tmp_path) + f"""
[checks.escapes]
run = ["ka-check-exec", "--", "/bin/sh", "-c", "setsid sleep {marker} & exit 0"]
interval = 0.2
"""
    try:
        with Served(tmp_path, config) as served:
            served.wait_track("escapes", "0")
            wait_for(lambda: served.runs("escapes") >= 10, 10, "ten runs")
            assert pids_mentioning("sleep", marker) == []
    finally:
        kill_mentioning("sleep", marker)


def test_a_huge_argv_does_not_freeze_the_daemon(tmp_path: Path) -> None:
    """An unprivileged user's 880 KB command line against a --cmdline regex held the interpreter ~70 s."""
    hostile = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *["a" * 110_000] * 8])
    config = head(tmp_path) + """
[checks.byline]
run = "ka-check-process --cmdline 'aaaa.*Z9Q'"
interval = 0.2
"""
    try:
        with Served(tmp_path, config) as served:
            served.wait_track("byline", "1")
            gaps = served.heartbeat_gaps(3)
            assert len(gaps) >= 4 and max(gaps) < 1.0, gaps
    finally:
        hostile.kill()
        hostile.wait()


def test_the_exec_channel_keeps_only_the_tail_of_a_flood(tmp_path: Path) -> None:
    """400 MB of output used to be read whole into the worker; now its last 64 KiB."""
    config = write_config(tmp_path, """[channels.flood]
type = "exec"
command = ["/bin/sh", "-c", "head -c 400000000 /dev/zero | tr '\\\\0' x; echo; echo the-last-line; exit 3"]
timeout = 20
""", delivery="flap_window = 0\nmax_attempts = 1")
    script = f"""
from kahooks.settings.config import load
from kahooks.notify.delivery import Worker
from kahooks.events.event import Event
from kahooks.notifiers import channel_types
from kahooks.notify.spool import Spool
config = load({str(config)!r}, channel_types())
spool = Spool(config.spool_dir).ensure()
worker = Worker(config, spool)
spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
worker.drain(30)
dead = next((spool.dead_dir / "flood").glob("*.json")).read_text()
assert "the-last-line" in dead, dead[-300:]
# VmHWM, this program's own peak: ru_maxrss also holds the parent's peak (the test runner's), which Linux
# carries over a vfork+exec (subprocess's), and an xdist worker's grew to 190 MB in CI's parallel legs.
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) < 100_000, f"worker peak RSS {result.stdout.split()[-1]} KiB"


def test_rebind_leaves_a_service_that_did_not_detach_running(tmp_path: Path) -> None:
    from kahooks.notifiers.exec import run_command

    marker = f"{random.randint(10**8, 10**9)}.25"
    try:
        code, _ = run_command(["/bin/sh", "-c", f"sleep {marker} & exit 0"], 5, None, sweep=False)
        assert code == 0
        time.sleep(0.3)  # deliberate: a moment in which nothing may stop the service
        assert pids_mentioning("sleep", marker), "the service rebind started was killed with its command"
        code, _ = run_command(["/bin/sh", "-c", f"sleep {marker}1 & exit 0"], 5, None)
        wait_for(lambda: not pids_mentioning("sleep", f"{marker}1"), 5, "the exec channel to stop its command's child")
    finally:
        kill_mentioning("sleep", marker)


# Under strace, which delays every exec of /bin/sh by EXEC_DELAY: three threads of one subreaper (as `kahooks
# serve` is).
SLOW_EXECS = """
import sys, threading, time
from kahooks.system import commands

assert commands.become_subreaper()
ticks, results, stop = [], {}, threading.Event()

def tick() -> None:  # the daemon's heartbeat: a beat, and a reap of what it adopted, every 10 ms
    while not stop.wait(0.01):
        ticks.append(time.monotonic())
        commands.reap()

def run(name: str, wait: float) -> None:
    time.sleep(wait)
    results[name] = commands.run(["/bin/sh", "-c", "exit 7"], 30)

ticker = threading.Thread(target=tick)
ticker.start()
time.sleep(0.2)
first = threading.Thread(target=run, args=("first", 0))
second = threading.Thread(target=run, args=("second", float(sys.argv[1]) / 3))
for thread in (first, second):
    thread.start()
for thread in (first, second):
    thread.join()
stop.set()
ticker.join()
gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
print(max(gaps), *(f"{result.code} {result.seconds:.2f}" for result in results.values()))
"""
EXEC_DELAY = 2.0


def test_a_slow_exec_freezes_no_other_thread() -> None:
    """os.posix_spawnp held the GIL (and commands.py its lock) until the child had exec'd: with exec slow under
    load, every thread of the daemon stood still meanwhile (a 2.8 s stall of its heartbeat in CI). And a
    command being started is not another command's orphan: the first command's sweep, while the second's
    leader still waits in its exec, leaves it alone, and the heartbeat's reap never takes its exit status."""
    strace = shutil.which("strace")
    assert strace, "strace is one of ./run's APT_PACKAGES"
    # Only execve("/bin/sh"), only that stopping in strace (seccomp-bpf): the interpreter starts at its own pace.
    result = subprocess.run([strace, "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null", "-P", "/bin/sh", "-e", "trace=execve",
                             "-e", f"inject=execve:delay_enter={int(EXEC_DELAY * 1e6)}",
                             sys.executable, "-c", SLOW_EXECS, str(EXEC_DELAY)],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    stall, *runs = result.stdout.split()
    # Both commands ran to their own exit, each after its slow exec (the delay did happen).
    assert runs[0::2] == ["7", "7"], result.stdout
    assert all(float(seconds) >= EXEC_DELAY * 0.9 for seconds in runs[1::2]), result.stdout
    # Ticking every 10 ms: a generous bound (0.26 s seen under a load of 13 on 2 cores), far below the exec's
    # delay, which the old os.posix_spawnp stalled it for (2.16 s).
    assert float(stall) < EXEC_DELAY / 2, result.stdout


def test_a_token_is_read_from_a_process_caught_in_an_exec(tmp_path: Path) -> None:
    """A sweep looks for its token in an orphan's environment, and `setsid cmd` execs twice: read while
    the exec replaced the image it was opened on, or while the loader laid the new one out, the environment
    read empty or cut short (2 reads in 100 of a process that keeps exec'ing; a CI run's sweep left such an
    orphan running). The token is seen on every read; a process with no environment, or a kernel thread,
    is still a prompt no."""
    chain = tmp_path / "reexec"
    chain.write_text('#!/bin/sh\n[ "$1" -gt 0 ] && exec "$0" $(($1 - 1))\nexec sleep 30\n')
    chain.chmod(0o755)
    marker = f"KAHOOKS_TEST_TOKEN={random.randint(10**8, 10**9)}"
    name, value = marker.split("=")
    execing = subprocess.Popen([str(chain), "3000"], env={name: value, "PATH": "/usr/bin:/bin"})
    bare = subprocess.Popen(["env", "-i", "sleep", "30"])
    try:
        reads, missed = 0, 0
        end = time.monotonic() + 20  # bounded, whatever the machine's pace
        while time.monotonic() < end:
            info = procfs.read_stat(execing.pid)
            if info is None or info.comm == "sleep":
                break
            reads += 1
            missed += not procfs.environ_has(execing.pid, marker.encode())
        assert reads >= 1000 and missed == 0, (reads, missed)
        wait_for(lambda: procfs.read_stat(bare.pid).comm == "sleep", 10, "env -i to exec sleep")
        assert not procfs.environ_has(bare.pid, marker.encode())
        assert not procfs.environ_has(2, marker.encode())  # kthreadd
    finally:
        for process in (execing, bare):
            process.kill()
            process.wait()


# A subreaper (as `kahooks serve` and ka-check-exec are) with procfs counting the processes it reads.
SWEEP_COST = """
import os, sys, threading, time
from kahooks.system import commands, procfs

assert commands.become_subreaper()
marker = sys.argv[1]
touched = []
def counting(name):
    real = getattr(procfs, name)
    def wrapper(pid, *args, **kwargs):
        touched.append(pid)
        return real(pid, *args, **kwargs)
    setattr(procfs, name, wrapper)
for name in ("read_stat", "environ_has", "children", "read_cmdline", "effective_uid"):
    if hasattr(procfs, name):
        counting(name)
whole = procfs.iter_processes
procfs.iter_processes = lambda *args, **kwargs: (touched.append("every process"), whole(*args, **kwargs))[1]

def alive(length):  # not through procfs: what is counted is commands' reading
    found = []
    for entry in os.listdir("/proc"):
        try:
            argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\\0")
        except OSError:
            continue
        if argv[0].endswith(b"sleep") and f"{marker}{length}".encode() in argv:
            found.append(int(entry))
    return found

def measured(name, argv, timeout=10.0, thread=False, **kwargs):
    touched.clear()
    if thread:  # a command run by another thread than the main one (a check's, a channel's)
        done = []
        worker = threading.Thread(target=lambda: done.append(commands.run(argv, timeout, **kwargs)))
        worker.start()
        worker.join()
        result = done[0]
    else:
        result = commands.run(argv, timeout, **kwargs)
    print(name, result.code, result.stopped_with or "-", len(set(touched)), "every process" in touched)

measured("true", ["/bin/true"])
measured("thread", ["/bin/sh", "-c", "exit 3"], thread=True)
# Re-parented to us while its command still runs (the subshell that started it is gone), found at its end.
measured("orphaned", ["/bin/sh", "-c", f"(setsid env -i sleep {marker}1 &); sleep 0.3"], thread=True)
print("orphaned-left", len(alive(1)))
# Still running at the timeout: the leader, and the orphan on the main thread's list.
measured("timeout", ["/bin/sh", "-c", f"(setsid env -i sleep {marker}2 &); sleep {marker}2"], timeout=0.5, thread=True)
print("timeout-left", len(alive(2)))

# During a sweep=False command (a rebind) whose service starts after the check did: that service is kept,
# while what the check left with its token (setsid, same environment) is stopped.
rebind = threading.Thread(target=commands.run, kwargs=dict(
    argv=["/bin/sh", "-c", f"sleep 0.2; setsid env -i sleep {marker}3 & sleep 1"], timeout=10, sweep=False))
rebind.start()
time.sleep(0.1)
measured("token", ["/bin/sh", "-c", f"sleep 0.3; setsid sleep {marker}4 & exit 0"], thread=True)
print("token-left", len(alive(4)))
rebind.join()
print("kept", len(alive(3)))
# A shell forking while it is killed: its children come to us as it dies, each round finds the new ones.
measured("forking", ["/bin/sh", "-c", f"trap '' TERM; while :; do sleep {marker}6 & done"], timeout=0.3,
         thread=True, kill_grace=0.05)
print("forking-left", len(alive(6)))

# A kernel without children lists (CONFIG_PROC_CHILDREN): every process is looked at, as before.
procfs._children_files = False
measured("scanned", ["/bin/sh", "-c", f"setsid env -i sleep {marker}5 & exit 0"])
print("scanned-left", len(alive(5)))
"""


def test_a_subreaper_sweep_reads_the_commands_tree_not_every_process() -> None:
    """A subreaper's sweep after each command read every process in /proc (stat, and environ of the newer
    ones), 600 of them on a busy host, ~50 ms per command: now the command's own tree and our own children.
    Each leftover is still stopped: an orphan re-parented to us while its command runs, one still running at
    a timeout (found on the main thread's list though its command ran on another), and one whose start falls
    in a rebind's window but carries the command's token; the rebind's service is left running."""
    marker = f"{random.randint(10**8, 10**9)}.4"
    try:
        result = subprocess.run([sys.executable, "-c", SWEEP_COST, marker], capture_output=True, text=True,
                                timeout=60, cwd="/")
        assert result.returncode == 0, result.stderr[-2000:]
        rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
        assert rows["true"][:2] == ["0", "-"] and rows["thread"][:2] == ["3", "-"], result.stdout
        # The leader, our main thread's few children: a handful of /proc entries, whatever the machine runs.
        for name in ("true", "thread"):
            assert int(rows[name][2]) <= 4 and rows[name][3] == "False", result.stdout
        for name in ("orphaned", "timeout", "token"):
            assert rows[name][1] in ("SIGTERM", "SIGKILL") and rows[name][3] == "False", result.stdout
            assert int(rows[name][2]) <= 8, result.stdout
        assert rows["forking"][1] == "SIGKILL" and rows["forking"][3] == "False", result.stdout
        for name in ("orphaned", "timeout", "forking", "token"):
            assert rows[f"{name}-left"] == ["0"], result.stdout
        assert rows["kept"] == ["1"], result.stdout
        assert rows["scanned"][3] == "True" and rows["scanned-left"] == ["0"], result.stdout
    finally:
        kill_mentioning("sleep", marker)

HELPER_AND_KEPT_COMMANDS = """
import socket
from kahooks.system import commands
ours, theirs = socket.socketpair()
helper = commands.start_helper(["sleep", "30"], theirs.fileno())
for _ in range(3):
    commands.run(["true"], 5, sweep=False)
print(len(commands._kept_ended))
commands.end_helper(helper, 0.0)
"""


def test_a_helper_running_for_good_does_not_keep_every_ended_commands_window() -> None:
    # The windows of ended sweep=False commands are kept while a command that started before them runs; a
    # helper (the wire observer's process) runs as long as the daemon: it kept each window for good (3 here).
    out = subprocess.run([sys.executable, "-c", HELPER_AND_KEPT_COMMANDS], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["0"], (out.stdout, out.stderr)
