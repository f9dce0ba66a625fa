"""The exec channel: run any command with the transition in its environment.

The command runs through kahooks.system.commands: its own session, a timeout (the
whole group is stopped when it overruns), only the tail of its output kept (a
background grandchild cannot hold the channel hostage, `yes` cannot fill
memory), and what it leaves running is stopped. Exit 0 is success. Other exit codes are retried, except those listed as permanent.
"""

from __future__ import annotations

import os
import shutil

from kahooks.errors import os_words
from kahooks.notifiers.base import Channel, ChannelConfigError, Contract, Message, PermanentFailure, TemporaryFailure

KILL_GRACE = 2.0


class ExecChannel(Channel):
    kind = "exec"
    SETTINGS = frozenset({"command", "timeout", "env", "permanent_exit_codes"})
    # A command that cannot be run is permanent; a timeout or any exit code but 0 is retried, unless listed.
    CONTRACT = Contract("command", {"command": "{command}", "timeout": "{timeout}", "permanent_exit_codes": [3]},
                        failures={"unreachable": "permanent", "hang": "temporary", "later": "temporary",
                                  "never": "permanent"})

    def configure(self, settings: dict) -> None:
        self.command = split_command(settings.get("command"), "command")
        self.timeout = self.number(settings, "timeout", 30.0)
        env = settings.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ChannelConfigError("env", "must be a table of strings")
        self.extra_env = env
        codes = settings.get("permanent_exit_codes", [])
        if not isinstance(codes, list) or not all(isinstance(c, int) and 0 < c < 256 for c in codes):
            raise ChannelConfigError("permanent_exit_codes", "must be a list of exit codes 1-255")
        self.permanent_codes = set(codes)

    def environment(self, message: Message) -> dict[str, str]:
        return {**os.environ, **self.extra_env, **message.transition.environment(),
                "KAHOOKS_SUBJECT": message.subject, "KAHOOKS_BODY": message.body}

    def send(self, message: Message) -> None:
        code, last = run_command(self.command, self.timeout, self.environment(message))
        if code == 0:
            return
        why = f"{self.command[0]} exited {code}" + (f": {last}" if last else "")
        if code in self.permanent_codes:
            raise PermanentFailure(why)
        raise TemporaryFailure(why)


def split_command(command: object, key: str) -> list[str]:
    """A command setting, as a list of words or a string split like a shell would (no shell runs it)."""
    if isinstance(command, str):
        import shlex

        command = shlex.split(command)
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise ChannelConfigError(key, "must be a command line or a list of words")
    if shutil.which(command[0]) is None:
        raise ChannelConfigError(key, f"{command[0]}: no such executable")
    return command


def run_command(command: list[str], timeout: float, env: dict[str, str] | None,
                sweep: bool = True) -> tuple[int, str]:
    """Run `command` (kahooks.system.commands: own session, output tail only); (exit code, last line of output).

    On timeout the command and what it started are stopped and TemporaryFailure raised.
    `sweep=False` leaves running what the command started once it exits (a service).
    """
    from kahooks.system import commands

    try:
        done = commands.run(command, timeout, env, kill_grace=KILL_GRACE, sweep=sweep)
    except OSError as exc:
        raise PermanentFailure(f"cannot run {command[0]}: {os_words(exc)}") from None
    if done.code is None:
        raise TemporaryFailure(f"{command[0]} timed out after {timeout:g} s")
    return done.code, done.last_line


CHANNEL = ExecChannel
