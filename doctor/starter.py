"""`kahooks init`: a commented kahooks.toml for this node, from what its keepalived.conf already says.

Each vrrp_instance becomes an [instances.NAME] table with its VIPs; a `notify_fifo` in global_defs
becomes `kahooks serve`'s [serve] notify_fifo; each vrrp_script that kahooks replaces (killall -0,
pidof, curl, a ka-check-*) becomes a [checks.NAME] the daemon can run, with the track_file line to
put in keepalived.conf. Channels: the local syslog always; an email and a Slack channel when the
answers are given (asked on a terminal, nothing asked otherwise). The text is validated with the
same loader as `kahooks validate` before it is written.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from kahooks.doctor.findings import program_of
from kahooks.doctor.model import Node

HEADER = """\
# /etc/kahooks/kahooks.toml, written by `kahooks init` from {source}.
# Check it with `kahooks validate`; try a channel with `ka-notify send --instance NAME --state FAULT --dry-run`.

spool_dir = "{spool}"  # events wait here until every channel has them

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
    extra_notes: list[str] = field(default_factory=list)


def check_for(command: str) -> str | None:
    """The kahooks check that does what a vrrp_script's command means, or None."""
    try:
        words = shlex.split(command)
    except ValueError:
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


def render(node: Node, answers: Answers) -> str:
    parts = [HEADER.format(source=node.path, spool=answers.spool)]
    for instance in node.instances:
        vips = ", ".join(f'"{vip}"' for vip in instance.vips)
        parts.append(f"[instances.{_key(instance.name)}]\nvips = [{vips}]{' ' * max(1, 28 - len(vips))}"
                     f"# from {instance.where.where}\n")
    fifo = node.globals.value("notify_fifo") if node.globals is not None else None
    checks = [(name, check_for(script.command), script) for name, script in node.scripts.items()]
    checks = [(name, run, script) for name, run, script in checks if run]
    if fifo or checks:
        parts.append("[serve]                              # kahooks serve (contrib/systemd/kahooks.service)")
        parts.append('state_dir = "/run/kahooks"')
        if fifo:
            parts.append(f'notify_fifo = "{fifo}"{" " * max(1, 20 - len(fifo))}# keepalived\'s notify_fifo: '
                         f'the daemon reads it and delivers')
        parts.append("")
    for name, run, script in checks:
        parts.append(f"# Replaces vrrp_script {name} ({script.where.where}): `{script.command}`. In keepalived.conf:")
        parts.append(f"#   track_file {name} {{ file /run/kahooks/track/{name}  weight 0  init_file 1 }}")
        parts.append(f"[checks.{_key(name)}]")
        parts.append(f'run = "{run}"')
        parts.append(f"interval = {script.interval:g}")
        parts.append(f"fall = {script.fall}\nrise = {script.rise}\n")
    parts.append("# Every transition, to the local syslog.")
    parts.append('[channels.syslog]\ntype = "syslog"\n')
    channels = ["syslog"]
    if answers.email_to:
        parts.append(f'[channels.email]\ntype = "email"\nserver = "{answers.smtp_server}"\n'
                     f'security = "starttls"                # "tls" for SMTPS on 465, "none" on a trusted network\n'
                     f'from = "keepalived@{os.uname().nodename}"\nto = ["{answers.email_to}"]\n')
        channels.append("email")
    else:
        parts.append('# [channels.email]\n# type = "email"\n# server = "smtp.example.net:587"\n'
                     '# to = ["ops@example.net"]\n')
    if answers.slack_url:
        parts.append('[channels.slack]\ntype = "slack"\nurl_file = "/etc/kahooks/slack.url"   '
                     '# the webhook URL is a secret: only root reads that file\n')
        channels.append("slack")
    else:
        parts.append('# [channels.slack]\n# type = "slack"\n# url_file = "/etc/kahooks/slack.url"\n')
    parts.append('[[rules]]                            # every event to every channel above')
    parts.append("channels = [" + ", ".join(f'"{channel}"' for channel in channels) + "]")
    return "\n".join(parts) + "\n"


def _key(name: str) -> str:
    """A TOML table key: bare when it can be, quoted otherwise."""
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
