"""A check exits exactly 0 or 1 whatever happens to it: signals at any moment, hostile argv, huge output."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time

from tests.support.programs import assert_one_line_failure, program, run


def bare_interpreter_start() -> float:
    samples = []
    for _ in range(5):
        started = time.monotonic()
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
        samples.append(time.monotonic() - started)
    return statistics.median(samples)


def test_sigterm_at_any_moment_after_start_up_is_exit_1_not_death_by_signal() -> None:
    """Until Python itself is up the default action stands (keepalived reads that as a failure
    too); from the first line of kahooks on, SIGTERM is a failed check with its line."""
    floor = bare_interpreter_start()
    for factor in (2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0):
        process = subprocess.Popen([program("ka-check-exec"), "--timeout", "5", "--no-syslog", "--", "sleep", "3"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(floor * factor)  # deliberate: the signal comes at a chosen moment of start-up
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
        assert process.returncode == 1, (factor, floor, process.returncode, out, err)
        assert out.startswith("FAIL: ") and "SIGTERM" in out and "Traceback" not in err, (out, err)


def test_flags_after_the_double_dash_belong_to_the_command() -> None:
    outcome = run("ka-check-exec", "--", "false", "--nagios")
    assert_one_line_failure(outcome, "exited 1")
    outcome = run("ka-check-exec", "--", "false", "-v")
    assert_one_line_failure(outcome, "exited 1")


def test_a_usage_error_keeps_the_mode_given_before_it() -> None:
    assert run("ka-check-exec", "--nagios", "--bogus", "--", "true").code == 3
    assert_one_line_failure(run("ka-check-exec", "--bogus", "--", "true", "--nagios"), "unknown option --bogus")


def test_an_empty_command_is_a_usage_error() -> None:
    assert_one_line_failure(run("ka-check-exec", "--", ""), "COMMAND is empty")


def test_huge_output_keeps_only_its_tail() -> None:
    """`yes` for a second used to keep 600 MB in memory; now a 64 KiB tail."""
    import os

    started = time.monotonic()
    process = subprocess.Popen([program("ka-check-exec"), "--timeout", "1", "--no-syslog", "--expect-output", "y$",
                                "--", "yes"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 1 and "timed out" in out, out
    assert usage.ru_maxrss < 60_000, f"peak RSS {usage.ru_maxrss} KiB"
    assert time.monotonic() - started < 5
