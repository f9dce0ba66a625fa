"""ka-check-exec: run a command (`squid -k check`) under a deadline and judge its exit code.

What a hand-written track script gets wrong, done right (the running itself is
kahooks.system.commands, shared with the exec channel and rebind):
- a command that cannot be started is a failure (keepalived counts it a success);
- the command runs in its own session; on timeout the whole group gets SIGTERM,
  then SIGKILL after a short grace;
- nothing it started outlives the check, even what escaped with setsid() and
  cleared its environment: this program (and `kahooks serve`) is a child subreaper,
  so such an orphan is re-parented to it and found; every command also carries a
  token in its environment by which its leftovers are found;
- only the last 64 KiB of its output are kept, and a grandchild holding the
  output open cannot keep the check waiting.
"""

from __future__ import annotations

import signal

from kahooks.checks.base import Check, pattern
from kahooks.deadline import format_seconds
from kahooks.errors import UsageError, os_words
from kahooks.output.result import CheckResult, healthy, unhealthy
from kahooks.settings.options import Option, in_ranges, int_ranges, positive_float
from kahooks.system import commands

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kahooks.deadline import Deadline
    from kahooks.settings.patterns import Pattern

DEFAULT_KILL_GRACE = 0.2


class ExecCheck(Check):
    kind = "exec"
    EXAMPLES = (
        ("ka-check-exec -t 3 -- squid -k check", "squid's own check, killed with everything it started after 3 s"),
        ("ka-check-exec --expect-output running -- systemctl is-active slapd", "exit 0 and the output matches"),
    )
    STARTUP_IMPORTS = frozenset({"signal", "select", "ctypes", "kahooks.system.commands", "kahooks.system.procfs"})
    OPTIONS = (
        Option("COMMAND", rest=True, required=True, help="the command and its arguments (after --)"),
        Option("--ok-codes", convert=int_ranges, default="0", metavar="LIST",
               help="exit codes that mean healthy, e.g. 0 or 0,3-4"),
        Option("--expect-output", convert=pattern, metavar="REGEX",
               help="the last 64 KiB of its output (stdout and stderr) must also match REGEX"),
        Option("--kill-grace", convert=positive_float, default=DEFAULT_KILL_GRACE, metavar="SECONDS",
               help="after SIGTERM, wait this long before SIGKILL"),
    )

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.argv: list[str] = list(values["command"])
        if not self.argv or not self.argv[0]:
            raise UsageError("COMMAND is empty")
        self.ok_codes = values["ok_codes"]
        self.expect_output: Pattern | None = values.get("expect_output")
        self.kill_grace: float = values["kill_grace"]
        self.display = " ".join(_quote(arg) for arg in self.argv)
        if len(self.display) > 60:
            self.display = self.display[:57] + "..."

    def hard_limit(self) -> float:
        return self.timeout + self.kill_grace + 0.3

    def probe(self, deadline: Deadline) -> CheckResult:
        commands.become_subreaper()
        try:
            done = commands.run(self.argv, deadline.require(f"running {self.display}"), kill_grace=self.kill_grace)
        except FileNotFoundError:
            return unhealthy(f"cannot run {self.argv[0]}: command not found")
        except (OSError, ValueError) as exc:
            return unhealthy(f"cannot run {self.argv[0]}: {os_words(exc)}")
        took = format_seconds(deadline.elapsed())
        detail = f": {done.last_line}" if done.last_line else ""
        if done.code is None:
            return unhealthy(f"{self.display} timed out after {format_seconds(deadline.seconds)} "
                             f"(stopped with {done.stopped_with or 'SIGTERM'}){detail}")
        code = done.code
        leftovers = f" (stopped leftover processes with {done.stopped_with})" if done.stopped_with else ""
        if code < 0:
            return unhealthy(f"{self.display} killed by {signal.Signals(-code).name} in {took}{detail}",
                             exit_code=code)
        if not in_ranges(code, self.ok_codes):
            return unhealthy(f"{self.display} exited {code} in {took}{detail}", exit_code=code)
        if self.expect_output is not None:
            # The command's output may echo what others wrote (a log line, a peer's answer): a
            # backtracking match is bounded by the probe's deadline (kahooks.settings.patterns), never a hang.
            from kahooks.settings.patterns import PatternTimeout  # loaded already: the option's converter made the regex

            try:
                matched = self.expect_output.search(done.output, deadline, "the output")
            except PatternTimeout as exc:
                return unhealthy(f"{self.display} exited {code}, but {exc}", exit_code=code)
            if not matched:
                return unhealthy(f"{self.display} exited {code} but its output does not match "
                                 f"/{self.expect_output.pattern}/{detail}", exit_code=code)
        return healthy(f"{self.display} exited {code} in {took}{leftovers}", exit_code=code)


def _quote(arg: str) -> str:
    """Shell-like quoting for messages only (shlex would cost an import of re)."""
    if arg and not any(ch in arg for ch in " \t\n'\"$&;|<>()*?`\\"):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


CHECK = ExecCheck
