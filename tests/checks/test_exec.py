"""ka-check-exec with real commands: exit codes, hangs, stubborn and escaping children."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from tests.support.programs import assert_one_line_failure, program, quiet_env, run


def marker() -> str:
    """A unique sleep length: `sleep 30.000N` is easy to find in /proc afterwards."""
    return f"30.{uuid.uuid4().int % 10**9:09d}"


def running_with(argument: str) -> list[int]:
    """Pids of live `sleep` processes given this argument (not the check, whose argv holds it too)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"sleep") and argument.encode() in argv:
                found.append(int(entry))
    return found


def test_success_and_failure_codes() -> None:
    ok = run("ka-check-exec", "--", "true")
    assert ok.code == 0 and ok.line.startswith("OK: true exited 0 in "), ok
    assert_one_line_failure(run("ka-check-exec", "--", "false"), "false exited 1")
    assert_one_line_failure(run("ka-check-exec", "--", "sh", "-c", "echo 'FATAL: bad config' >&2; exit 3"),
                            "exited 3", ": FATAL: bad config")


def test_ok_codes() -> None:
    assert run("ka-check-exec", "--ok-codes", "0,3-4", "--", "sh", "-c", "exit 4").code == 0
    assert_one_line_failure(run("ka-check-exec", "--ok-codes", "3-4", "--", "true"), "exited 0")


def test_command_without_dashes() -> None:
    outcome = run("ka-check-exec", "sh", "-c", "exit 0")
    assert outcome.code == 0, outcome


def test_expect_output() -> None:
    assert run("ka-check-exec", "--expect-output", "^up$", "--", "echo", "up").code == 0
    assert_one_line_failure(run("ka-check-exec", "--expect-output", "^up$", "--", "echo", "down"),
                            "output does not match /^up$/", ": down")


def test_command_that_cannot_start_is_a_failure(tmp_path: Path) -> None:
    # keepalived itself counts a failed exec as success; the check must not.
    assert_one_line_failure(run("ka-check-exec", "--", "/nonexistent/squid", "-k", "check"),
                            "cannot run /nonexistent/squid: command not found")
    not_executable = tmp_path / "check.sh"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    assert_one_line_failure(run("ka-check-exec", "--", str(not_executable)), "Permission denied")
    bad_interpreter = tmp_path / "check2.sh"
    bad_interpreter.write_text("#!/nonexistent/interpreter\nexit 0\n")
    bad_interpreter.chmod(0o755)
    assert_one_line_failure(run("ka-check-exec", "--", str(bad_interpreter)), "cannot run")


def test_death_by_signal() -> None:
    assert_one_line_failure(run("ka-check-exec", "--", "sh", "-c", "kill -SEGV $$"), "killed by SIGSEGV")


def test_hanging_command_is_stopped_in_time() -> None:
    length = marker()
    outcome = run("ka-check-exec", "--timeout", "0.3", "--", "sleep", length)
    assert_one_line_failure(outcome, "timed out after 300 ms", "stopped with SIGTERM")
    # From the exec: the interpreter's start counts (0.88 s seen once with two suites in parallel); the
    # command itself would sleep for 30 s.
    assert outcome.seconds < 0.3 + 0.2 + 2.5, outcome.seconds
    assert running_with(length) == []


def test_command_ignoring_sigterm_gets_sigkill_after_the_grace() -> None:
    length = marker()
    outcome = run("ka-check-exec", "--timeout", "0.3", "--kill-grace", "0.2", "--",
                  "sh", "-c", f"trap '' TERM; sleep {length} & wait; wait")
    assert_one_line_failure(outcome, "timed out", "stopped with SIGKILL")
    assert outcome.seconds < 0.3 + 0.2 + 2.5, outcome.seconds  # the interpreter's start counts; the command sleeps 30 s
    assert running_with(length) == []


def test_grandchildren_are_not_left_behind() -> None:
    length = marker()
    outcome = run("ka-check-exec", "--", "sh", "-c", f"sleep {length} & echo started")
    assert outcome.code == 0, outcome
    assert "stopped leftover processes" in outcome.line
    assert running_with(length) == []


def test_grandchildren_that_escape_with_setsid_are_stopped() -> None:
    length = marker()
    outcome = run("ka-check-exec", "--", "sh", "-c", f"setsid -f sleep {length}; sleep 0.05")
    assert outcome.code == 0, outcome
    assert running_with(length) == []


def test_grandchild_holding_the_output_open_does_not_stall_the_check() -> None:
    length = marker()
    # The grandchild keeps stdout open; a pipe-based runner would wait for it until the timeout.
    outcome = run("ka-check-exec", "--timeout", "5", "--", "sh", "-c", f"sleep {length} & exit 0")
    assert outcome.code == 0, outcome
    assert outcome.seconds < 2.5, outcome.seconds  # a runner waiting for the pipe would take the whole 5 s


def test_sigterm_from_keepalived_stops_the_command_too() -> None:
    """keepalived kills an overrunning check's process group; the command runs in its own session,
    so the check itself must pass the stop on."""
    length = marker()
    proc = subprocess.Popen([program("ka-check-exec"), "--timeout", "20", "--", "sleep", length],
                            stdout=subprocess.PIPE, text=True, start_new_session=True,
                            env=quiet_env())
    wait_for(lambda: running_with(length), 5, "the command to run")
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 1, out
    assert out.startswith(f"FAIL: running sleep {length}: stopped by SIGTERM"), out  # where keepalived cut it
    assert running_with(length) == []


@pytest.mark.parametrize("args, fragment", [
    ((), "missing COMMAND"),
    (("--",), "missing COMMAND"),
    (("--ok-codes", "zero", "--", "true"), "is not a number or a range"),
    (("--expect-output", "(", "--", "true"), "bad regular expression"),
    (("--kill-grace", "0", "--", "true"), "must be a positive number"),
    (("--timeout", "-3", "--", "true"), "must be a positive number"),
])
def test_bad_input_is_one_line_and_exit_1(args: tuple[str, ...], fragment: str) -> None:
    assert_one_line_failure(run("ka-check-exec", *args), fragment)
