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
