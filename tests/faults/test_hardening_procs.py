"""Processes, signals and reload of `kahooks serve` and the exec channel: nothing blocks for ever,
nothing outlives its owner, and a reload never kills."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from tests.support.serve import Served, head


def unique_length() -> str:
    """A sleep length no other process on the machine has: `sleep 300.N` is this test's and no one else's."""
    return f"300.{uuid.uuid4().int % 10**9:09d}"


def sleeping(length: str) -> list[int]:
    """Live (not zombie) `sleep LENGTH` processes: argv[0] is sleep and one argument is exactly LENGTH."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if argv[0].endswith(b"sleep") and length.encode() in argv and state != "Z":
            found.append(int(entry))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# sd_notify never blocks ---------------------------------------------------------------------------------

def full_datagram_socket(path: Path) -> socket.socket:
    """A bound AF_UNIX datagram socket nobody reads, its receive queue filled until a send would block."""
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(str(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as writer:
        writer.connect(str(path))
        for _ in range(100_000):
            try:
                writer.send(b"X" * 64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        else:
            raise AssertionError("the socket never filled")
    return reader


def test_a_full_notify_socket_neither_blocks_start_up_nor_deafens_sigterm(tmp_path: Path) -> None:
    reader = full_datagram_socket(tmp_path / "notify")
    config = head(tmp_path) + '\n[checks.up]\nrun = "ka-check-exec -- true"\ninterval = 0.5\n'
    served = Served(tmp_path, config)
    try:
        served.start(env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        served.wait_track("up", "0")
        # Past READY=1: the heartbeat goes on being rewritten by the main loop.
        beat = served.heartbeat()
        wait_for(lambda: served.heartbeat() > beat, 3, "a heartbeat after start-up")
        wait_for(lambda: "notify socket" in served.log_text(), 3, "the dropped READY=1 to be logged")
        started = time.monotonic()
        assert served.stop(timeout=5) == 0, served.log_text()
        assert time.monotonic() - started < 3
    finally:
        served.__exit__()
        reader.close()
    assert "Traceback" not in served.log_text()


# A reload never kills ------------------------------------------------------------------------------------

CHANNEL = """
[channels.page]
type = "exec"
command = ["true"]
body_file = "body.j2"

[checks.up]
run = "ka-check-exec -- true"
interval = 0.3
"""


def break_template(served: Served) -> None:
    (served.directory / "body.j2").write_text("{{ name + 1 }}\n")  # fails only when rendered


def config_is_a_folder(served: Served) -> None:
    served.config.unlink()
    served.config.mkdir()


def config_is_a_fifo(served: Served) -> None:
    served.config.unlink()
    os.mkfifo(served.config)  # nobody writes: a blocking open would wait for ever


def config_vanished(served: Served) -> None:
    served.config.unlink()


@pytest.mark.parametrize("damage, why", [
    (break_template, "channels.page.body_file: template fails on a sample event: TypeError"),
    (config_is_a_folder, "is a folder, not a regular file"),
    (config_is_a_fifo, "is a FIFO"),
    (config_vanished, "does not exist"),
], ids=["template-typo", "folder", "fifo", "vanished"])
def test_a_reload_that_cannot_build_its_configuration_keeps_the_old_one(tmp_path: Path, damage, why: str) -> None:
    (tmp_path / "body.j2").write_text("{{ name }} is {{ state }}\n")
    with Served(tmp_path, head(tmp_path) + CHANNEL) as served:
        served.wait_track("up", "0")
        damage(served)
        served.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in served.log_text(), 5, "the reload to be refused")
        refusals = [line for line in served.log_text().splitlines() if "reload refused" in line]
        assert any(why in line for line in refusals), refusals
        # Still serving the old configuration: alive, heartbeat fresh, its check still running.
        runs = served.runs("up")
        beat = served.heartbeat()
        wait_for(lambda: served.heartbeat() > beat and served.runs("up") > runs, 5, "the old configuration to run on")
        assert served.process.poll() is None
        assert served.track("up") == "0"
        assert served.stop(timeout=5) == 0
    assert "Traceback" not in served.log_text()


# Children never outlive their owner --------------------------------------------------------------------

def test_an_exec_check_in_serve_leaves_no_setsid_env_cleared_child(tmp_path: Path) -> None:
    """`setsid env -i sleep &`: out of the group and the session, without the token: only parentage
    (re-parented to `kahooks serve`, a subreaper) finds it."""
    left, running = unique_length(), unique_length()
    config = head(tmp_path) + f"""
[checks.escapes]
run = ["ka-check-exec", "--", "/bin/sh", "-c", "setsid env -i sleep {left} & exit 0"]
interval = 60

[checks.hangs]
run = ["ka-check-exec", "--timeout", "30", "--", "/bin/sh", "-c", "setsid env -i sleep {running} & sleep {running}"]
interval = 60
"""
    try:
        with Served(tmp_path, config) as served:
            wait_for(lambda: served.runs("escapes") >= 1, 10, "the first run of the check")
            assert sleeping(left) == []
            wait_for(lambda: len(sleeping(running)) == 2, 10, "the hanging check to run")
            assert served.stop(timeout=10) == 0, served.log_text()
            # Stopped with the daemon: the check that was still running, and what it left.
            assert sleeping(running) == []
    finally:
        kill_all(sleeping(left) + sleeping(running))


def test_ka_check_exec_leaves_no_setsid_env_cleared_child() -> None:
    from tests.support.programs import run

    left = unique_length()
    try:
        outcome = run("ka-check-exec", "--", "/bin/sh", "-c", f"setsid env -i sleep {left} & exit 0")
        assert outcome.code == 0, outcome
        assert sleeping(left) == []
    finally:
        kill_all(sleeping(left))


KEEPS_ITS_SERVICE = """
import sys, threading, time
from kahooks.system import commands

kept, left = sys.argv[1], sys.argv[2]
commands.become_subreaper()
# A sweep=True command that started first and ends after a sweep=False one (a rebind) left a
# service behind: the service is not the check's to stop. What the check itself left is.
check = threading.Thread(target=commands.run,
                         args=(["sh", "-c", f"sleep 0.4; setsid env -i sleep {left} & sleep 0.2"], 10))
check.start()
time.sleep(0.1)
commands.run(["sh", "-c", f"setsid env -i sleep {kept} & exit 0"], 10, sweep=False)
check.join()
"""


def test_a_subreaper_stops_what_a_check_left_but_not_the_service_a_rebind_started(tmp_path: Path) -> None:
    import subprocess
    import sys

    kept, left = unique_length(), unique_length()
    try:
        done = subprocess.run([sys.executable, "-c", KEEPS_ITS_SERVICE, kept, left], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert sleeping(left) == []
        assert len(sleeping(kept)) == 1  # re-parented to init when the subreaper exited, still running
    finally:
        kill_all(sleeping(kept) + sleeping(left))


# An attempt returns when its processes are gone ----------------------------------------------------------

def test_a_command_that_keeps_forking_is_gone_when_run_returns() -> None:
    """SIGKILL once is not enough: a shell forking in a loop makes children between the look and
    the kill. run() kills again until none is left, in a bounded wait."""
    from kahooks.system import commands

    length = unique_length()
    try:
        done = commands.run(["sh", "-c", f"trap '' TERM; while :; do sleep {length} & done"], 0.2, kill_grace=0.05)
        assert done.timed_out and done.stopped_with == "SIGKILL"
        assert done.seconds < 0.2 + 0.05 + 2.0 + 0.5  # the timeout, the grace, the bounded wait for the kill
        assert sleeping(length) == []
    finally:
        kill_all(sleeping(length))
