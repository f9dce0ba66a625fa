"""Processes, signals and reload of `kahooks serve` and the exec channel: nothing blocks for ever,
nothing outlives its owner, and a reload never kills."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

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
