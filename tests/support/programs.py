"""Run the installed kahooks programs as keepalived would: a fresh process, argv, an exit status."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

BIN = Path(sys.executable).parent


def quiet_env(**extra: str) -> dict[str, str]:
    """This process's environment with kahooks' syslog pointed nowhere (a test's failures are not news)."""
    return {**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log", **extra}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def line(self) -> str:
        return self.stdout.strip()


def program(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}: run the test command"
    return str(path)


def run(name: str, *args: str, timeout: float = 30, env: dict[str, str] | None = None) -> Outcome:
    started = time.monotonic()
    full_env = quiet_env(**(env or {}))
    proc = subprocess.run([program(name), *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, stdin=subprocess.DEVNULL)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def assert_one_line_failure(outcome: Outcome, *fragments: str) -> None:
    """A check failed the keepalived way: exit 1, one line starting FAIL:, no traceback."""
    assert outcome.code == 1, outcome
    assert outcome.stdout.count("\n") == 1 and outcome.line.startswith("FAIL: "), outcome
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome
    for fragment in fragments:
        assert fragment in outcome.line, (fragment, outcome.line)


def assert_timed_out(outcome: Outcome, seconds: float, *probe_fragments: str, where: tuple[str, ...] = ()) -> None:
    """A check failed at its --timeout: with the probe's own words, or with the runner's backstop alarm's.

    The alarm fires 50 ms after the probe's deadline (hooks/check_cli.py); on a loaded machine (CI's two
    legs at once) the process can wake later than that, and the alarm answers first. A `regex` match's
    timeout counts CPU time, not wall time (kahooks/settings/patterns.py), so on a busy machine the alarm
    ends it. Both are the same budget, both are one line, and both say where the probe was: every
    fragment of `where` is in either.
    """
    from kahooks.deadline import format_seconds

    assert_one_line_failure(outcome, *where)
    alarm = f"timed out after {format_seconds(seconds)}"
    assert alarm in outcome.line or all(fragment in outcome.line for fragment in probe_fragments), (
        probe_fragments, outcome.line)


def _command_lines() -> Iterator[tuple[int, bytes]]:
    """Each live process's pid and raw argv (NUL-separated); one that ends while /proc is read is skipped
    (its files vanish between the listing and the read)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        yield int(entry), argv


def pids_mentioning(*fragments: str) -> list[int]:
    """Live processes whose argv contains every fragment (as a substring of some word)."""
    return [pid for pid, argv in _command_lines() if all(fragment.encode() in argv for fragment in fragments)]


def running(command: str) -> bool:
    """Is a process running whose command line (its argv joined by spaces) contains `command`?"""
    wanted = command.encode()
    return any(wanted in argv.replace(b"\0", b" ") for _, argv in _command_lines())


def kill_mentioning(*fragments: str) -> None:
    """SIGKILL what a test started in the background (a delivery worker, say), found by its argv."""
    import signal

    for pid in pids_mentioning(*fragments):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
