"""The contract every check implements, and the options all checks share.

A check is built from parsed option values (its constructor validates them and
raises UsageError) and has one job: probe(deadline) -> CheckResult. Judging exit
codes, printing and logging belong to the runner in kahooks.hooks.check_cli, so
the daemon can run the very same objects in-process.
"""

from __future__ import annotations

from kahooks.deadline import Deadline
from kahooks.errors import KahooksError
from kahooks.output.result import CheckResult, unhealthy
from kahooks.settings.options import Option, positive_float, positive_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kahooks.settings.patterns import Pattern

# Below keepalived's default interval (and default timeout) of 1 s, leaving room
# for interpreter start-up and the kill grace.
DEFAULT_TIMEOUT = 0.8

def _range(raw: str) -> Any:
    from kahooks.settings.thresholds import parse_range  # only a --nagios run with thresholds pays for it

    return parse_range(raw)


def pattern(raw: str) -> Pattern:
    """The converter of a check's regex option (--cmdline, --regex, --expect-output): a time-bounded
    kahooks.settings.patterns Pattern. Imported here, not at the top: only a run given a pattern pays for it."""
    from kahooks.settings.patterns import compile_pattern

    return compile_pattern(raw)


def dynamic_weight(raw: str) -> int:
    """keepalived's misc_dynamic reads exit status 2-255 as weight 0-253; a healthy server gets at least 1."""
    value = positive_int(raw)
    if value > 253:
        raise ValueError("must be from 1 to 253 (keepalived reads exit 2+WEIGHT, at most 255)")
    return value


def weight_for(seconds: float, most: int, slow: float) -> int:
    """The weight a healthy real server earns: `most` when it answers at once, 1 at `slow` or later."""
    share = max(0.0, 1.0 - seconds / slow)
    return max(1, round(1 + (most - 1) * share))


COMMON_OPTIONS = (
    Option("-t", "--timeout", convert=positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
           help="give up and fail after this long (fractions allowed)"),
    Option("--maintenance-file", metavar="PATH",
           help="fail while this file exists (drain the node)"),
    Option("--nagios", switch=True,
           help="monitoring-plugins output and exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"),
    Option("-w", "--warning", convert=lambda raw: _range(raw), metavar="RANGE",
           help="with --nagios: WARNING when the response time (seconds) is outside RANGE (10, 10:, ~:10, @10:20)"),
    Option("-c", "--critical", convert=lambda raw: _range(raw), metavar="RANGE",
           help="with --nagios: CRITICAL when the response time (seconds) is outside RANGE"),
    Option("--dynamic-weight", convert=dynamic_weight, metavar="MAX",
           help="for an LVS MISC_CHECK with misc_dynamic: when healthy exit 2+WEIGHT, WEIGHT falling from MAX "
                "(at no response time) to 1 (at --slow)"),
    Option("--slow", convert=positive_float, metavar="SECONDS",
           help="with --dynamic-weight: the response time that earns weight 1 (default: the timeout)"),
    Option("--no-syslog", switch=True, help="do not log failures to syslog"),
    Option("-v", "--verbose", switch=True, help="show a traceback on internal errors"),
)
# The common options that mean something only to a program keepalived starts once: the daemon refuses
# them in a `run` line, saying why. Declared beside COMMON_OPTIONS so a new option decides here.
PROGRAM_ONLY = {"--nagios": "the daemon writes track files, not plugin output",
                "--dynamic-weight": "a weight is for keepalived's MISC_CHECK (misc_dynamic), run as a program",
                "--slow": "it goes with --dynamic-weight, for keepalived's MISC_CHECK",
                "--no-syslog": "the daemon logs state changes, not every run",
                **dict.fromkeys(("-w", "--warning", "-c", "--critical"),
                                "thresholds for --nagios output: the daemon writes track files"),
                "-v": "run `kahooks serve -v` instead", "--verbose": "run `kahooks serve -v` instead",
                **dict.fromkeys(("-h", "--help", "-V", "--version"), "asks the program about itself: not a check")}


class Check:
    """Base of all checks. Subclasses set `kind` and OPTIONS and implement probe().

    A check also declares what the programs, the daemon and the manual need of it, so none of them
    knows a kind by name: EXAMPLES (the man page and --help; `{bin}` is the programs' folder),
    `in_daemon`, `watches_processes` with `pids()`, and `watched_files()`.
    """

    kind = "check"
    OPTIONS: tuple[Option, ...] = ()
    EXAMPLES: tuple[tuple[str, str], ...] = ()  # (command line, what it checks)
    in_daemon = True  # False: only a program keepalived runs (the daemon's own heartbeat guard)
    # True: after a healthy probe `pids()` names the processes it found; the daemon watches them
    # (pidfd) and probes again the moment one exits, so it looks by the clock only rarely.
    watches_processes = False
    # The start-up allow-list (tests/hooks/test_startup.py): what ka-check-KIND may load on its plain probe
    # path beyond a bare interpreter, the runner's own (`check_cli.STARTUP_IMPORTS`) and this module. A
    # standard-library name brings what it imports itself. keepalived may start the program every second:
    # add a name only when the probe cannot work without it, and import the rest where it is used.
    STARTUP_IMPORTS: frozenset[str] = frozenset()

    def __init__(self, values: dict[str, Any]) -> None:
        self.timeout: float = values["timeout"]
        self.maintenance_file: str | None = values.get("maintenance_file")

    def probe(self, deadline: Deadline) -> CheckResult:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The processes the last probe found alive (with `watches_processes`)."""
        return []

    def watched_files(self) -> tuple[str, ...]:
        """Files whose change should make the daemon probe at once (a pidfile), besides maintenance files."""
        return ()

    def hard_limit(self) -> float:
        """Seconds after which the runner interrupts a probe that ignored its deadline."""
        return self.timeout + 0.05


def probe_safely(check: Check, on_bug: Callable[[], None] | None = None,
                 deadline: Deadline | None = None) -> CheckResult:
    """Run check.probe under its own deadline; every exception becomes a failed result.

    A check's own bug must read as a failure, never as a crash (nor, in the daemon,
    as a thread that silently stops checking). `on_bug` runs inside the except
    block, so it can log the traceback. A runner that must stop a stuck probe passes
    the deadline in, to name the step it was stuck in (Deadline.step).
    """
    try:
        return check.probe(deadline or Deadline(check.timeout))
    except KahooksError as exc:  # ProbeTimeout included
        return unhealthy(str(exc))
    except Exception as exc:
        if on_bug is not None:
            on_bug()
        return unhealthy(f"internal error: {type(exc).__name__}: {exc}")
