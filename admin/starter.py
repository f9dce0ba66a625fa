"""`kahooks init`: a commented kahooks.toml for this node, from what its keepalived.conf already says.

Each vrrp_instance becomes an [instances.NAME] table with its VIPs; a `notify_fifo` in global_defs
becomes `kahooks serve`'s [serve] notify_fifo; each vrrp_script that kahooks replaces (killall -0,
pidof, curl, a ka-check-*) becomes a [checks.NAME] the daemon can run, with the track_file line to
put in keepalived.conf. Channels: the local syslog always; an email and a Slack channel when the
answers are given (asked on a terminal, nothing asked otherwise). The text is validated with the
same loader as `kahooks validate` before it is written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass

from kahooks.doctor.findings import program_of, script_words
from kahooks.doctor.model import Node

HEADER = """\
# /etc/kahooks/kahooks.toml, written by `kahooks init` from {source}.
# Check it with `kahooks validate`; try a channel with `ka-notify send --instance NAME --state FAULT --dry-run`.

spool_dir = {spool}  # events wait here until every channel has them

[delivery]
max_age = 86400                      # retried for a day, then moved to spool_dir/dead/ (`ka-notify queue`)
flap_window = 10.0                   # transitions closer than this become one summary message
"""


@dataclass
class Answers:
    """What only the operator knows; empty means: leave that channel out."""

    email_to: str = ""
    smtp_server: str = "127.0.0.1:25"
    slack_url: str = ""
    spool: str = "/var/spool/kahooks"


def check_for(command: str) -> str | None:
    """The kahooks check that does what a vrrp_script's command means, or None."""
    words = script_words(command)
    if words is None:
        return None
    program = os.path.basename(program_of(command) or "")
    targets = [word for word in words[1:] if not word.startswith("-")]
    if program.startswith("ka-check-"):
        from kahooks.checks import PROGRAM_PREFIX, load_check_class

        try:
            runs_in_daemon = load_check_class(program.removeprefix(PROGRAM_PREFIX)).in_daemon
        except KeyError:
            return None
        # The heartbeat guard watches the daemon itself: it stays a vrrp_script.
        return " ".join(shlex.quote(word) for word in [program, *words[1:]]) if runs_in_daemon else None
    if program in ("killall", "pidof") and targets:
        return f"ka-check-process {shlex.quote(targets[-1])}"
    if program == "curl":
        url = next((word for word in targets if "://" in word), None)
        return f"ka-check-http {shlex.quote(url)}" if url else None
    if words and words[0].startswith("/"):  # `squid -k check` and the like: run with a time limit
        return "ka-check-exec -- " + " ".join(shlex.quote(word) for word in words)
    return None


def render(node: Node, answers: Answers, secret_file: str = "/etc/kahooks/slack.url") -> str:
    """The kahooks.toml text: every name from keepalived.conf written as a TOML string (or a bare key when
    it can be one), so any name (spaces, quotes, `=`, `[`, `#`, non-ASCII) reads back as it was."""
    parts = [HEADER.format(source=_comment(node.path), spool=toml_string(answers.spool))]
    for instance in node.instances:
        vips = ", ".join(toml_string(vip) for vip in instance.vips)
        parts.append(f"[instances.{toml_key(instance.name)}]\nvips = [{vips}]{' ' * max(1, 28 - len(vips))}"
                     f"# from {_comment(instance.where.where)}\n")
    fifo = node.globals.value("notify_fifo") if node.globals is not None else None
    checks = [(name, check_for(script.command), script) for name, script in node.scripts.items()]
    checks = [(name, run, script) for name, run, script in checks if run]
    if fifo or checks:
        parts.append("[serve]                              # kahooks serve (contrib/systemd/kahooks.service)")
        parts.append('state_dir = "/run/kahooks"')
        if fifo:
            parts.append(f'notify_fifo = {toml_string(fifo)}{" " * max(1, 18 - len(fifo))}# keepalived\'s notify_fifo: '
                         f'the daemon reads it and delivers')
        parts.append("")
    taken: set[str] = set()
    for name, run, script in checks:
        check = check_name(name, taken)
        parts.append(f"# Replaces vrrp_script {_comment(_conf_word(name))} ({_comment(script.where.where)}): "
                     f"`{_comment(script.command)}`. In keepalived.conf:")
        parts.append(f"#   track_file {_comment(_conf_word(name))} {{ file /run/kahooks/track/{check}  weight 0  "
                     f"init_file 1 }}")
        parts.append(f"[checks.{toml_key(check)}]")
        parts.append(f"run = {toml_string(run or '')}")
        parts.append(f"interval = {script.interval:g}")
        parts.append(f"fall = {script.fall}\nrise = {script.rise}\n")
    parts.append("# Every transition, to the local syslog.")
    parts.append('[channels.syslog]\ntype = "syslog"\n')
    channels = ["syslog"]
    if answers.email_to:
        parts.append(f'[channels.email]\ntype = "email"\nserver = {toml_string(answers.smtp_server)}\n'
                     f'security = "starttls"                # "tls" for SMTPS on 465, "none" on a trusted network\n'
                     f'from = {toml_string("keepalived@" + os.uname().nodename)}\nto = [{toml_string(answers.email_to)}]\n')
        channels.append("email")
    else:
        parts.append('# [channels.email]\n# type = "email"\n# server = "smtp.example.net:587"\n'
                     '# to = ["ops@example.net"]\n')
    if answers.slack_url:
        parts.append(f'[channels.slack]\ntype = "slack"\nurl_file = {toml_string(secret_file)}   '
                     '# the webhook URL is a secret: only root reads that file\n')
        channels.append("slack")
    else:
        parts.append('# [channels.slack]\n# type = "slack"\n# url_file = "/etc/kahooks/slack.url"\n')
    parts.append('[[rules]]                            # every event to every channel above')
    parts.append("channels = [" + ", ".join(toml_string(channel) for channel in channels) + "]")
    return "\n".join(parts) + "\n"


BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
CHECK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # as kahooks serve names its track files


def toml_string(text: str) -> str:
    """`text` as a TOML basic string. JSON's escapes are TOML's, but for DEL, which TOML wants escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(name: str) -> str:
    """A TOML table key: bare when it can be, a quoted string otherwise."""
    return name if BARE_KEY.match(name) else toml_string(name)


def check_name(name: str, taken: set[str]) -> str:
    """A check name kahooks serve accepts (it names the track file) for a vrrp_script's name, unique in `taken`."""
    base = name if CHECK_NAME.match(name) else "check_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-") or "script")
    chosen, number = base, 1
    while chosen in taken:
        number += 1
        chosen = f"{base}_{number}"
    taken.add(chosen)
    return chosen


def _conf_word(name: str) -> str:
    """A name as keepalived.conf must write it: quoted when it holds a blank or a comment character."""
    return f'"{name}"' if re.search(r'[\s#!{}]', name) else name


def _comment(text: str) -> str:
    """`text` safe inside a TOML comment: control characters (a newline would end it) as escapes."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
