"""Entry points of the ka-check-* programs: parse argv, run one probe, exit 0 or 1.

This is the guarded edge: whatever happens inside (bad options, a timeout,
SIGTERM from keepalived, a bug), the program prints one line and exits 0 only
when the probe found the service healthy. keepalived's MISC_CHECK reads 2-255
as healthy, so no other exit code may ever escape. --nagios switches to the
monitoring-plugins convention for standalone use.
"""

from __future__ import annotations

# First, before any other import: from here on keepalived's SIGTERM (a check that overran its
# timeout) ends this program with exit 1 and a line, never by the signal. The C module behind
# `signal` avoids ~3 ms of enum set-up; the functions are the same.
try:
    import _signal as signal
except ImportError:  # pragma: no cover
    import signal  # type: ignore[no-redef]  # the same functions under their public name


class Interrupted(BaseException):
    """Raised from a signal handler: a BaseException so no probe's `except Exception` swallows it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGALRM: "the time limit"}
_probing = False          # True while a probe runs: a signal then interrupts it
_stopped_by: str | None = None  # a signal that came outside a probe: the run ends failed


def _on_signal(signum: int, frame: object) -> None:
    global _stopped_by
    reason = "timed out" if signum == signal.SIGALRM else f"stopped by {_SIGNAL_NAMES[signum]}"
    # Noted first: a raise that lands where Python ignores exceptions (a __del__, or a weakref
    # callback in the import machinery) is lost, and the probe's answer must not stand after it.
    _stopped_by = _stopped_by or reason
    if _probing:
        raise Interrupted(reason)


import sys  # built in: costs nothing

_exit_code: int | None = None  # what main chose: _leave ends the program with it


def _leave() -> None:
    """The last exit handler of a ka-check-* program: flush the output and end the process, skipping the
    interpreter's teardown (freeing every module, object and arena one by one, then a final collection).

    That teardown is about 2-3 ms of CPU in a program that has done its work and whose memory the kernel
    takes back whole; keepalived may start the program every second on every node. Registered first, so
    every other exit handler has run; non-daemon threads were joined before any handler.
    """
    if _exit_code is None:  # main never decided (an import, a test harness): the usual exit
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # closed by the caller: the line is lost either way, the exit code is not
            pass
    os._exit(_exit_code)


# Only in a ka-check-* program: a test runner or the daemon importing this keeps its own handlers.
if sys.argv and sys.argv[0].rpartition("/")[2].startswith("ka-check-"):
    for _signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_signum, _on_signal)
    import atexit  # built in

    atexit.register(_leave)

import os  # after the handlers, on purpose (E402 is allowed for this file in pyproject.toml)
import time

from kahooks.checks import PROGRAM_PREFIX, build
from kahooks.checks.base import probe_safely
from kahooks.deadline import Deadline, format_seconds
from kahooks.errors import UsageError
from kahooks.output import redact
from kahooks.output.result import CheckResult, unhealthy
from kahooks.settings.options import HelpRequested

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from kahooks.checks.base import Check

# What every ka-check-* program may load beyond a bare interpreter (each check adds its own
# `Check.STARTUP_IMPORTS`; tests/hooks/test_startup.py holds both). Everything else is imported where used.
STARTUP_IMPORTS = frozenset({"_signal", "atexit", "time", "__future__", "kahooks", "kahooks.hooks", "kahooks.hooks.check_cli",
                             "kahooks.checks", "kahooks.checks.base", "kahooks.deadline", "kahooks.errors",
                             "kahooks.settings.options", "kahooks.output.redact", "kahooks.output.result"})

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_DYNAMIC_BASE = 2  # keepalived's misc_dynamic: exit 2+W is up with weight W (0-253)
NAGIOS_CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


# The output modes, once argv is parsed: the last-resort handler in main needs them too.
_modes = {"nagios": False, "verbose": False}


def run(kind: str, argv: Sequence[str], prog: str | None = None) -> int:
    """Run one check of `kind` with command-line `argv`; return the exit code.

    --nagios, -v and --no-syslog come from the parsed options only: `-- false --nagios` is a
    command's argument, not ours (a usage error uses what was parsed before it).
    """
    prog = prog or f"ka-check-{kind}"
    try:
        values, check = build(kind, argv, prog, parsed=_output_modes)
    except HelpRequested as help_text:
        print(help_text)
        if not str(help_text).startswith(f"{prog} (kahooks) "):  # -V prints its line alone
            from kahooks.hooks.manual import check_program, help_sections

            print(help_sections(check_program(kind)))
        return EXIT_HEALTHY
    except UsageError as exc:
        partial = getattr(exc, "partial", None) or {}
        _modes.update(nagios=bool(partial.get("nagios")), verbose=bool(partial.get("verbose")))
        # A usage error quotes the word it refused: a URL with its password, a header with its token.
        return _report(kind, "UNKNOWN", redact.in_argv(f"{prog}: {exc}", argv), _modes["nagios"],
                       log=not partial.get("no_syslog"))
    except Exception as exc:  # an import or construction bug is still a failed check
        _trace(_modes["verbose"])
        return _report(kind, "UNKNOWN", f"{prog}: internal error: {type(exc).__name__}: {exc}", _modes["nagios"],
                       log=True)

    nagios, verbose = _modes["nagios"], _modes["verbose"]
    log = not values["no_syslog"]
    maintenance = values["maintenance_file"]
    if maintenance and os.path.exists(maintenance):
        return _report(kind, "CRITICAL", f"maintenance file {maintenance} exists", nagios, log=log)
    if _stopped_by:
        return _report(kind, "CRITICAL", f"{_stopped_by} before the probe started", nagios, log=log)

    started = time.monotonic()
    result = _probe_guarded(check, verbose)
    elapsed = time.monotonic() - started
    result.metrics.setdefault("time", round(elapsed, 6))
    ok = result.ok and not _stopped_by
    status = "OK" if ok else "CRITICAL"
    if ok and nagios:
        status = _threshold_status(values, result.metrics["time"])
    return _report(kind, status,
                   result.summary if not _stopped_by or not result.ok else f"{_stopped_by} after: {result.summary}",
                   nagios, log=log, metrics=result.metrics, weight=_weight(values, check, result) if ok else None,
                   thresholds=(values["warning"], values["critical"], check.timeout))


def _output_modes(values: dict[str, Any]) -> None:
    """The program's own options, checked before the check is built: how it reports, not what it probes."""
    _modes.update(nagios=bool(values["nagios"]), verbose=bool(values["verbose"]))
    if values["dynamic_weight"] and values["nagios"]:
        raise UsageError("--dynamic-weight is for keepalived's MISC_CHECK, not --nagios")
    if values["slow"] and not values["dynamic_weight"]:
        raise UsageError("--slow goes with --dynamic-weight")
    if (values["warning"] or values["critical"]) and not values["nagios"]:
        raise UsageError("-w/-c are for --nagios: keepalived reads only exit 0 or 1")


def _threshold_status(values: dict, seconds: float) -> str:
    """--nagios -w/-c: the response time against monitoring-plugins ranges."""
    if values["critical"] is not None and values["critical"].alerts(seconds):
        return "CRITICAL"
    if values["warning"] is not None and values["warning"].alerts(seconds):
        return "WARNING"
    return "OK"


def _weight(values: dict, check: Check, result: CheckResult) -> int | None:
    """--dynamic-weight: the weight a healthy real server earns from its response time."""
    from kahooks.checks.base import weight_for

    if not values["dynamic_weight"]:
        return None
    return weight_for(result.metrics["time"], values["dynamic_weight"], values["slow"] or check.timeout)


def _probe_guarded(check: Check, verbose: bool) -> CheckResult:
    """Run check.probe under a hard sub-second alarm; SIGTERM, SIGINT and the alarm interrupt it."""
    global _probing

    previous_alarm = signal.signal(signal.SIGALRM, _on_signal)
    deadline = Deadline(check.timeout)
    # The probe keeps its own deadline; the alarm only stops one that ignores it.
    _probing = True
    try:
        if _stopped_by:
            raise Interrupted(_stopped_by)
        signal.setitimer(signal.ITIMER_REAL, check.hard_limit())
        result = probe_safely(check, on_bug=lambda: _trace(verbose), deadline=deadline)
        if _stopped_by:  # a signal came, and its raise was swallowed on the way
            raise Interrupted(_stopped_by)
        return result
    except Interrupted as exc:  # the line says where the probe was: the step keepalived or the alarm cut
        if exc.reason == "timed out":  # the probe's own deadline did not end it
            return unhealthy(deadline.where(f"timed out after {format_seconds(check.timeout)}"))
        return unhealthy(deadline.where(exc.reason))
    finally:
        _probing = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)


def _report(kind: str, status: str, summary: str, nagios: bool, log: bool,
            metrics: dict[str, float] | None = None, weight: int | None = None,
            thresholds: tuple[Any, Any, float] | None = None) -> int:
    """Print the one status line, log failures to syslog, and pick the exit code (2+weight: misc_dynamic)."""
    summary = redact.text(" ".join(summary.split()))  # one line, whatever the probe found, no secret in it
    if nagios:
        perf = _perfdata(metrics or {}, thresholds)
        line = f"{kind.upper()} {status} - {summary}" + (f" | {perf}" if perf else "")
        code = NAGIOS_CODES[status]
    else:
        line = f"{'OK' if status == 'OK' else 'FAIL'}: {summary}" + (f" (weight {weight})" if weight else "")
        code = EXIT_HEALTHY if status == "OK" else EXIT_UNHEALTHY
        if status == "OK" and weight:
            code = EXIT_DYNAMIC_BASE + weight
    try:
        print(line, flush=True)
    except OSError:
        pass  # stdout closed: keepalived discards it anyway
    if status != "OK" and log:
        _syslog(f"{kind}: {line}")
    return code


def _perfdata(metrics: dict[str, float], thresholds: tuple[Any, Any, float] | None) -> str:
    """`label=value[UOM];warn;crit;min;max`, time first as the monitoring plugins print it."""
    warning, critical, timeout = thresholds or (None, None, None)
    parts = []
    for key in sorted(metrics, key=lambda name: (name != "time", name != "size", name)):
        value = metrics[key]
        if key == "time":
            parts.append(f"time={value:.6f}s;{warning.text if warning else ''};{critical.text if critical else ''};"
                         f"0.000000;{timeout:.6f}" if timeout else f"time={value:.6f}s;;;0.000000;")
        elif key == "size":
            parts.append(f"size={int(value)}B;;;0;")
        else:
            parts.append(f"{key}={value:g};;;;")
    return " ".join(parts)


def _syslog(message: str) -> None:
    """keepalived discards a check's output: syslog is where an operator sees why it failed."""
    from kahooks.output import localsyslog

    localsyslog.send("ka-check", message)


def _trace(verbose: bool) -> None:
    if verbose:
        import traceback

        sys.stderr.write(redact.text(traceback.format_exc()))


def main() -> None:
    """Every ka-check-* console script: the kind is the program's name (ka-check-KIND).

    Nothing but 0 or 1 (or Nagios codes with --nagios) may leave.
    """
    global _exit_code
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "ka-check-"
    kind = prog.removeprefix(PROGRAM_PREFIX)
    try:
        code = run(kind, sys.argv[1:], prog=prog)
    except BaseException as exc:  # last resort: even a bug in the runner (or a signal) is a failed check
        if _modes["verbose"]:
            _trace(True)
        reason = exc.reason if isinstance(exc, Interrupted) else f"internal error: {type(exc).__name__}"
        try:
            print(f"FAIL: {reason}", flush=True)
        except BaseException:
            pass
        code = 3 if _modes["nagios"] else EXIT_UNHEALTHY
    _exit_code = code
    sys.exit(code)
