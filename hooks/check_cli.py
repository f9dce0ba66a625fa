"""Entry points of the ka-check-* programs: parse argv, run one probe, exit 0 or 1.

This is the guarded edge: whatever happens inside (bad options, a timeout,
SIGTERM from keepalived, a bug), the program prints one line and exits 0 only
when the probe found the service healthy. keepalived's MISC_CHECK reads 2-255
as healthy, so no other exit code may ever escape. --nagios switches to the
monitoring-plugins convention for standalone use.
"""

from __future__ import annotations

import os
import sys
import time

from kahooks.checks import load_check_class
from kahooks.checks.base import COMMON_OPTIONS, probe_safely
from kahooks.errors import UsageError
from kahooks.options import HelpRequested, parse_argv
from kahooks.result import CheckResult, unhealthy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from kahooks.checks.base import Check

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
NAGIOS_CODES = {"OK": 0, "CRITICAL": 2, "UNKNOWN": 3}


class Interrupted(BaseException):
    """Raised from a signal handler: a BaseException so no probe's `except Exception` swallows it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run(kind: str, argv: Sequence[str], prog: str | None = None) -> int:
    """Run one check of `kind` with command-line `argv`; return the exit code."""
    prog = prog or f"ka-check-{kind}"
    nagios = "--nagios" in argv
    verbose = "-v" in argv or "--verbose" in argv
    try:
        check_class = load_check_class(kind)
        values = parse_argv(COMMON_OPTIONS + check_class.OPTIONS, argv, prog)
        check = check_class(values)
    except HelpRequested as help_text:
        print(help_text)
        return EXIT_HEALTHY
    except UsageError as exc:
        return _report(kind, "UNKNOWN", f"{prog}: {exc}", nagios, log="--no-syslog" not in argv)
    except Exception as exc:  # an import or construction bug is still a failed check
        _trace(verbose)
        return _report(kind, "UNKNOWN", f"{prog}: internal error: {type(exc).__name__}: {exc}", nagios, log=True)

    log = not values["no_syslog"]
    maintenance = values["maintenance_file"]
    if maintenance and os.path.exists(maintenance):
        return _report(kind, "CRITICAL", f"maintenance file {maintenance} exists", nagios, log=log)

    started = time.monotonic()
    result = _probe_guarded(check, verbose)
    elapsed = time.monotonic() - started
    result.metrics.setdefault("time", round(elapsed, 6))
    return _report(kind, "OK" if result.ok else "CRITICAL", result.summary, nagios, log=log,
                   metrics=result.metrics)


def _probe_guarded(check: Check, verbose: bool) -> CheckResult:
    """Run check.probe under a hard sub-second alarm and a SIGTERM handler."""
    try:
        # The C module behind `signal`, which wraps it in enums at a cost of ~3 ms of
        # start-up (a fifth of a bare interpreter); the functions are the same.
        import _signal as signal
    except ImportError:
        import signal

    def interrupt(signum: int, frame: object) -> None:
        if signum == signal.SIGALRM:
            raise Interrupted(f"timed out after {check.timeout:g} s")
        raise Interrupted(f"stopped by {'SIGTERM' if signum == signal.SIGTERM else 'SIGINT'}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    # The probe keeps its own deadline; the alarm only stops one that ignores it.
    signal.setitimer(signal.ITIMER_REAL, check.hard_limit())
    try:
        return probe_safely(check, on_bug=lambda: _trace(verbose))
    except Interrupted as exc:
        return unhealthy(exc.reason)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(kind: str, status: str, summary: str, nagios: bool, log: bool,
            metrics: dict[str, float] | None = None) -> int:
    """Print the one status line, log failures to syslog, and pick the exit code."""
    summary = " ".join(summary.split())  # one line, whatever the probe found
    if nagios:
        perf = " ".join(f"{key}={_perf_value(key, value)}" for key, value in (metrics or {}).items())
        line = f"{kind.upper()} {status} - {summary}" + (f" | {perf}" if perf else "")
        code = NAGIOS_CODES[status]
    else:
        line = f"{'OK' if status == 'OK' else 'FAIL'}: {summary}"
        code = EXIT_HEALTHY if status == "OK" else EXIT_UNHEALTHY
    try:
        print(line, flush=True)
    except OSError:
        pass  # stdout closed: keepalived discards it anyway
    if status != "OK" and log:
        _syslog(f"{kind}: {line}")
    return code


def _perf_value(key: str, value: float) -> str:
    return f"{value:.6f}s" if key == "time" else f"{value:g}"


def _syslog(message: str) -> None:
    """keepalived discards a check's output: syslog is where an operator sees why it failed."""
    from kahooks import localsyslog

    localsyslog.send("ka-check", message)


def _trace(verbose: bool) -> None:
    if verbose:
        import traceback

        traceback.print_exc()


def _main(kind: str) -> None:
    """Console-script body: nothing but 0 or 1 (or Nagios codes with --nagios) may leave."""
    argv = sys.argv[1:]
    try:
        code = run(kind, argv, prog=os.path.basename(sys.argv[0]) or None)
    except BaseException as exc:  # last resort: even a bug in the runner is a failed check
        if "-v" in argv or "--verbose" in argv:
            import traceback

            traceback.print_exc()
        print(f"FAIL: internal error: {type(exc).__name__}", flush=True)
        code = 3 if "--nagios" in argv else EXIT_UNHEALTHY
    sys.exit(code)


def process_main() -> None:
    _main("process")


def port_main() -> None:
    _main("port")


def http_main() -> None:
    _main("http")


def exec_main() -> None:
    _main("exec")


def heartbeat_main() -> None:
    _main("heartbeat")
