"""What each program is, in one place: the prose of --help, the man pages and shell completion.

Options are never written twice: they are read from the programs' own specs
(kahooks.settings.options.Option tuples for ka-check-* and ka-notify, click's commands for
`kahooks`), so a new option shows up in --help, man and completion alike. This
module adds what specs do not say: a description, examples and the exit status (a check's
description is its module's docstring and its examples are its class's EXAMPLES).
`python3 -m kahooks.hooks.manual man|bash|zsh DIR` writes the files a package installs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

CHECK_EXIT_STATUS = [
    ("0", "the service is healthy"),
    ("1", "anything else: unhealthy, timed out, stopped by a signal, a bad option, an internal error "
          "(keepalived reads 2-255 as success, so nothing else ever escapes)"),
    ("2+W", "with --dynamic-weight: healthy with weight W, for an LVS MISC_CHECK with misc_dynamic"),
    ("0-3", "with --nagios: OK, WARNING, CRITICAL, UNKNOWN as monitoring plugins do"),
]

NOTIFY_DESCRIPTION = [
    "keepalived's notify handler. It records the transition durably in the spool, makes sure a "
    "delivery worker runs, and returns at once; it never waits for a mail server. The worker "
    "delivers each event to the channels the rules pick (rebind, DNS, email, Slack, syslog, "
    "webhooks, commands), in order, retrying with backoff, and moves what cannot be delivered "
    "to the dead-letter directory, where `ka-notify queue` shows it.",
    "WORDS is what keepalived passes (TYPE NAME STATE PRIORITY), or one of the commands "
    "fifo PATH, send, worker, queue, retry-dead, purge.",
]
NOTIFY_EXAMPLES = [
    ('notify "{bin}/ka-notify"', "in a vrrp_instance: keepalived appends TYPE NAME STATE PRIORITY"),
    ('notify_master "{bin}/ka-notify --instance VI_1 --state MASTER"', "one handler per state"),
    ('notify_down "{bin}/ka-notify --real-server 10.0.0.1:80 --virtual-server 192.0.2.50:80 --state DOWN"',
     "a real server of an LVS virtual server"),
    ('vrrp_notify_fifo_script "{bin}/ka-notify fifo"', "in global_defs: keepalived appends the FIFO's path"),
    ("ka-notify send --instance VI_1 --state MASTER --dry-run", "try a configuration by hand; sends nothing"),
    ("ka-notify worker --foreground", "the delivery worker (ka-notify starts it for you)"),
    ("ka-notify queue", "what waits, per channel, why, and the next attempt; dead letters"),
    ("ka-notify retry-dead --channel mail", "send a channel's dead letters again"),
    ("ka-notify purge --older-than 7d", "delete dead letters older than a week"),
]
NOTIFY_EXIT_STATUS = [
    ("0", "recorded (or delivered, for send)"),
    ("1", "a configuration or runtime problem (the event is still recorded when it could be)"),
    ("2", "bad arguments"),
]

KAHOOKS_DESCRIPTION = [
    "The operator's command. `kahooks serve` runs the checks in-process, tells keepalived through "
    "track files within milliseconds of a failure, reads keepalived's notify FIFO and delivers "
    "notifications; `status` shows what it does; `validate` checks /etc/kahooks/kahooks.toml and "
    "its conf.d/*.toml drop-ins; `init` writes a starting configuration from keepalived.conf; "
    "`doctor` finds a keepalived pair's mistakes; `drain` and `undrain` take an LVS real server out and back.",
]
KAHOOKS_EXAMPLES = [
    ("kahooks init", "a commented /etc/kahooks/kahooks.toml from this node's keepalived.conf"),
    ("kahooks validate", "every problem of the configuration, as FILE:LINE: key: what is wrong"),
    ("systemctl enable --now kahooks", "run kahooks serve under systemd"),
    ("kahooks status", "each check's state and why, keepalived's view, the spool"),
    ("kahooks doctor --peer lb2.conf", "this node's keepalived.conf and its peer's, together"),
    ("kahooks drain 10.0.0.1:80 --wait-connections", "out of every pool, then wait for connections to end"),
]
KAHOOKS_EXIT_STATUS = [
    ("0", "success (status: running and every check healthy; doctor: no error found)"),
    ("1", "a problem was found or the command failed; the message says which"),
    ("2", "bad arguments"),
]
FILES = [
    ("/etc/kahooks/kahooks.toml", "the configuration (channels, rules, instances, [serve], [checks])"),
    ("/etc/kahooks/conf.d/*.toml", "drop-ins, merged after it in name order"),
    ("/var/spool/kahooks", "events waiting for delivery, and dead letters"),
    ("/run/kahooks", "kahooks serve's status, heartbeat, track files and notify FIFO"),
]


@dataclass
class Opt:
    """One option or positional argument, as help, man and completion need it."""

    names: tuple[str, ...]            # ("-t", "--timeout"); a positional has its metavar alone
    metavar: str | None               # None: a switch
    help: str = ""
    default: str | None = None
    choices: tuple[str, ...] = ()
    positional: bool = False
    repeat: bool = False

    @property
    def completes(self) -> str:
        """What a value completes to: 'file', 'dir', 'command', 'choice' or '' (free text)."""
        meta = (self.metavar or "").upper()
        if self.choices:
            return "choice"
        if meta in ("FILE", "PATH") or meta.endswith(".CONF") or {"--config", "--file", "--output"} & set(self.names):
            return "file"
        if meta == "DIR" or {"--dir", "--spool"} & set(self.names):
            return "dir"
        if meta == "COMMAND":
            return "command"
        return ""


@dataclass
class Program:
    name: str
    summary: str
    description: list[str]
    options: list[Opt]
    examples: list[tuple[str, str]] = field(default_factory=list)
    exit_status: list[tuple[str, str]] = field(default_factory=list)
    commands: list[Program] = field(default_factory=list)  # click subcommands (and theirs)

    @property
    def flags(self) -> list[Opt]:
        return [opt for opt in self.options if not opt.positional]

    @property
    def positionals(self) -> list[Opt]:
        return [opt for opt in self.options if opt.positional]


def _from_specs(specs: Any) -> list[Opt]:
    options = []
    for spec in specs:
        default = None if spec.default in (None, False, [], ()) or not isinstance(spec.default, (str, int, float)) \
            else str(spec.default)
        options.append(Opt(spec.names, None if spec.switch else spec.metavar, spec.help, default,
                            positional=spec.positional, repeat=spec.repeat or spec.rest))
    options.append(Opt(("-h", "--help"), None, "this help"))
    options.append(Opt(("-V", "--version"), None, "the version"))
    return options


def check_program(kind: str) -> Program:
    from kahooks.checks import PROGRAM_PREFIX, load_check_class
    from kahooks.checks.base import COMMON_OPTIONS

    check_class = load_check_class(kind)
    module = sys.modules[check_class.__module__]
    first, _, rest = (module.__doc__ or "").partition("\n\n")
    summary = first.split(":", 1)[1].strip() if ":" in first else first.strip()
    return Program(f"{PROGRAM_PREFIX}{kind}", " ".join(summary.split()), _paragraphs(rest),
                   _from_specs((*COMMON_OPTIONS, *check_class.OPTIONS)), list(check_class.EXAMPLES), CHECK_EXIT_STATUS)


def notify_program() -> Program:
    from kahooks.hooks.notify_cli import OPTIONS

    return Program("ka-notify", "keepalived's notify handler: durable, ordered, never blocking",
                   NOTIFY_DESCRIPTION, _from_specs(OPTIONS), NOTIFY_EXAMPLES, NOTIFY_EXIT_STATUS)


def kahooks_program() -> Program:
    from kahooks.admin.kahooks_cli import cli

    program = _from_click("kahooks", cli)
    program.summary = "the kahooks daemon and the operator's commands for keepalived"
    program.description = KAHOOKS_DESCRIPTION
    program.examples, program.exit_status = KAHOOKS_EXAMPLES, KAHOOKS_EXIT_STATUS
    return program


def _from_click(name: str, command: Any) -> Program:
    import click

    options: list[Opt] = []
    for param in command.params:
        if isinstance(param, click.Argument):
            options.append(Opt((param.human_readable_name,), param.human_readable_name, "",
                               positional=True, repeat=param.nargs != 1))
            continue
        choices = tuple(param.type.choices) if isinstance(param.type, click.Choice) else ()
        metavar = None if param.is_flag else (param.metavar or param.type.name.upper())
        default = None if param.is_flag or param.default in (None, "", ()) or not param.show_default else str(param.default)
        option = Opt(tuple(param.opts) + tuple(param.secondary_opts), metavar, param.help or "", default, choices)
        if metavar == "TEXT" and option.completes in ("file", "dir"):  # click's generic name for a str
            option.metavar = option.completes.upper()
        options.append(option)
    if not any("--help" in opt.names for opt in options):
        options.append(Opt(("-h", "--help"), None, "this help"))
    commands = []
    for sub_name, sub in sorted(getattr(command, "commands", {}).items()):
        commands.append(_from_click(sub_name, sub))
    help_text = (command.help or "").strip()
    summary, _, rest = help_text.partition("\n\n")
    return Program(name, " ".join(summary.split()), _paragraphs(rest), options, commands=commands)


def _paragraphs(text: str) -> list[str]:
    """Docstring text as paragraphs; each "- " item of a list is a paragraph of its own (starting "- ")."""
    paragraphs = []
    for part in text.split("\n\n"):
        for index, piece in enumerate(part.split("\n- ")):
            words = " ".join(piece.split())
            if words:
                paragraphs.append(f"- {words}" if index else words)
    return paragraphs


def program(name: str) -> Program:
    from kahooks.checks import PROGRAM_PREFIX

    if name.startswith(PROGRAM_PREFIX):
        return check_program(name[len(PROGRAM_PREFIX):])
    return notify_program() if name == "ka-notify" else kahooks_program()


def programs() -> list[Program]:
    from kahooks.checks import kinds

    return [kahooks_program(), notify_program(), *(check_program(kind) for kind in kinds())]


def bin_dir() -> str:
    """Where this program is installed (for examples a user copies into keepalived.conf)."""
    return os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else "/usr/bin"


def help_sections(page: Program, bindir: str | None = None, width: int = 100) -> str:
    """The description, examples and exit status that --help prints after the options."""
    import textwrap

    bindir = bindir or bin_dir()
    out = ["", "description:"]
    for paragraph in [page.summary, *page.description]:
        indent = "    " if paragraph.startswith("- ") else "  "
        out.extend(textwrap.wrap(paragraph, width, initial_indent="  ", subsequent_indent=indent))
    if page.examples:
        out += ["", "examples:"]
        for command, what in page.examples:
            out.append(f"  # {what}")
            out.extend(f"  {line}" for line in command.replace("{bin}", bindir).splitlines())
    if page.exit_status:
        out += ["", "exit status:"]
        for code, meaning in page.exit_status:
            out.extend(textwrap.wrap(meaning, width, initial_indent=f"  {code:<5} ", subsequent_indent=" " * 8))
    out += ["", f"More in man {page.name} and in the README (/usr/share/doc/kahooks)."]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """`python3 -m kahooks.hooks.manual man|bash|zsh DIR`: write the pages or the completion files."""
    from pathlib import Path

    from kahooks.hooks import completion, manpage

    if len(argv) != 2 or argv[0] not in ("man", "bash", "zsh"):
        print("usage: python3 -m kahooks.hooks.manual man|bash|zsh DIR", file=sys.stderr)
        return 2
    kind, directory = argv[0], Path(argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    every = programs()
    if kind == "man":
        for page in every:
            (directory / f"{page.name}.1").write_text(manpage.render(page))
    elif kind == "bash":
        for page in every:
            (directory / page.name).write_text(completion.bash(page))
    else:
        (directory / "_kahooks").write_text(completion.zsh(every))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
