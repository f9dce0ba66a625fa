"""The guarded edge: failures reach syslog, bugs still exit 1, nothing but 0/1 ever leaves."""

from __future__ import annotations

import pytest

from kahooks import checks
from kahooks.hooks import check_cli
from kahooks.lab.rsyslog import Rsyslog
from tests.support.programs import run


def test_failures_are_logged_to_syslog(rsyslog: Rsyslog) -> None:
    outcome = run("ka-check-process", "kh-not-running-x", env={"KAHOOKS_SYSLOG_SOCKET": str(rsyslog.socket)})
    assert outcome.code == 1
    line = rsyslog.wait_for("kh-not-running-x")
    assert line.startswith("daemon.warning ka-check ")
    assert "process: FAIL: kh-not-running-x not running" in line


def test_no_syslog_and_successes_stay_quiet(rsyslog: Rsyslog) -> None:
    env = {"KAHOOKS_SYSLOG_SOCKET": str(rsyslog.socket)}
    run("ka-check-process", "kh-quiet-one", "--no-syslog", env=env)
    run("ka-check-exec", "--", "true", env=env)
    run("ka-check-process", "kh-marker-last", env=env)  # logged: proves rsyslog was listening
    rsyslog.wait_for("kh-marker-last")
    assert not [line for line in rsyslog.lines() if "kh-quiet-one" in line or "exec:" in line]


def test_bad_arguments_are_logged_too(rsyslog: Rsyslog) -> None:
    """A typo in keepalived.conf fails every run: the operator must be able to see why."""
    run("ka-check-port", "localhost", env={"KAHOOKS_SYSLOG_SOCKET": str(rsyslog.socket)})
    assert "missing :PORT" in rsyslog.wait_for("ka-check-port")


class _BrokenCheck:
    """A check whose probe has a bug."""

    kind = "broken"
    OPTIONS = ()

    def __init__(self, values: dict) -> None:
        self.timeout = 0.5

    def hard_limit(self) -> float:
        return 1.0

    def probe(self, deadline: object) -> None:
        return 1 / 0


CHECK = _BrokenCheck


@pytest.fixture
def broken_kind(monkeypatch: pytest.MonkeyPatch) -> str:
    real = checks.load_check_class
    monkeypatch.setattr(checks, "load_check_class", lambda kind: _BrokenCheck if kind == "broken" else real(kind))
    monkeypatch.setenv("KAHOOKS_SYSLOG_SOCKET", "/nonexistent")
    return "broken"


def test_a_bug_in_a_probe_is_a_failed_check(broken_kind: str, capsys: pytest.CaptureFixture) -> None:
    assert check_cli.run(broken_kind, []) == 1
    out, err = capsys.readouterr()
    assert out == "FAIL: internal error: ZeroDivisionError: division by zero\n"
    assert "Traceback" not in err


def test_verbose_shows_the_traceback(broken_kind: str, capsys: pytest.CaptureFixture) -> None:
    assert check_cli.run(broken_kind, ["-v"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("FAIL: internal error")
    assert "Traceback" in err and "ZeroDivisionError" in err


def test_nagios_unknown_for_a_bug(broken_kind: str, capsys: pytest.CaptureFixture) -> None:
    assert check_cli.run(broken_kind, ["--nagios"]) == 2  # the probe ran and failed: CRITICAL
    assert capsys.readouterr().out.startswith("BROKEN CRITICAL - internal error")


def _programs() -> list[str]:
    return [f"{checks.PROGRAM_PREFIX}{kind}" for kind in checks.kinds()]


def _needs_words(name: str) -> bool:
    """A kind with a positional that has no default: run bare, it is a usage error (ka-check-heartbeat is not)."""
    check_class = checks.load_check_class(name.removeprefix(checks.PROGRAM_PREFIX))
    return any(option.positional and option.default is None for option in check_class.OPTIONS)


@pytest.mark.parametrize("name", _programs())
def test_help_and_usage_errors(name: str) -> None:
    helped = run(name, "--help")
    assert helped.code == 0 and helped.stdout.startswith(f"usage: {name} [options]"), helped
    for args in (["--no-such-option"], ["--timeout"], *([[]] if _needs_words(name) else [])):
        outcome = run(name, *args)
        assert outcome.code == 1 and outcome.line.startswith(f"FAIL: {name}: "), outcome


def test_every_program_tells_its_version_and_help_lists_it() -> None:
    import tomllib
    from pathlib import Path

    from kahooks import __version__

    scripts = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    for name in scripts:
        for flag in ("-V", "--version"):
            outcome = run(name, flag)
            assert outcome.code == 0 and outcome.line == f"{name} (kahooks) {__version__}", (name, outcome)
    assert "-V, --version" in run("ka-check-port", "--help").stdout
    assert "-V, --version" in run("ka-notify", "--help").stdout


# Set up in the program's interpreter before kahooks (a sitecustomize on PYTHONPATH): an object whose
# finalizer speaks only when the interpreter tears its modules down.
TEARDOWN_WITNESS = """\
import sys


class Witness:
    def __del__(self):
        sys.stderr.write("interpreter teardown\\n")


witness = Witness()
"""


@pytest.mark.parametrize("args, code, line", [
    (("kh-not-running-x",), 1, "FAIL: kh-not-running-x not running"),
    (("--nagios", "kh-not-running-x"), 2, "PROCESS CRITICAL - kh-not-running-x not running"),
    (("--no-such-option",), 1, "FAIL: ka-check-process: "),
])
def test_a_program_ends_without_the_interpreters_teardown(tmp_path, args: tuple[str, ...], code: int,
                                                          line: str) -> None:
    """The teardown is CPU a program keepalived starts every second need not spend: the line (in a pipe,
    flushed) and the exit code are main's, and the interpreter never frees its modules one by one."""
    (tmp_path / "sitecustomize.py").write_text(TEARDOWN_WITNESS)
    outcome = run("ka-check-process", *args, "--no-syslog", env={"PYTHONPATH": str(tmp_path)})
    assert outcome.code == code, outcome
    assert outcome.stdout.count("\n") == 1 and outcome.line.startswith(line), outcome
    assert "interpreter teardown" not in outcome.stderr, outcome
