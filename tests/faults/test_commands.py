"""Commands kahooks runs and processes it looks at: nothing left behind, nothing unbounded, nothing stalled."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from kahooks.lab.netns import wait_for
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
from kahooks.config import load
from kahooks.delivery import Worker
from kahooks.event import Event
from kahooks.notifiers import channel_types
from kahooks.spool import Spool
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
