"""ka-notify latency: how long keepalived's handler takes to return, and transition -> delivery per channel.

- handler return: wall time of `ka-notify INSTANCE VI_1 MASTER 100` (Python start-up, the
  fsynced spool write, the worker check), with a worker already running; target p99 <= 100 ms.
- transition -> delivery: from the moment the handler is started until the channel's peer
  has the message: a real rsyslogd writing its file, an exec command's output, a real SMTP
  server (aiosmtpd, STARTTLS + AUTH), a Slack-contract HTTP server, a generic webhook, and a
  real BIND serving the new A record.

Run with `./run bench notify`. Loops are bounded; everything runs on loopback and is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kahooks.lab.bind import Bind
from kahooks.lab.netns import wait_for
from kahooks.lab.rsyslog import Rsyslog
from tests.support.netservers import make_certificate
from tests.support.programs import kill_mentioning
from tests.support.smtp import SmtpServer
from tests.support.webhooks import WebhookServer

BIN = Path(sys.executable).parent
ENV = {**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def handler(config: Path, state: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "ka-notify"), "-c", str(config), "INSTANCE", "VI_1", state, "100"], env=ENV,
                   check=True, stdin=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="handler runs (default 200)")
    parser.add_argument("--deliveries", type=int, default=40, help="deliveries per channel (default 40)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-notify-"))
    rsyslog = Rsyslog(work)
    cert = make_certificate(work, 30)
    smtp = SmtpServer(cert, "starttls", {"kahooks": "s3cret"})
    slack, hook = WebhookServer(), WebhookServer("/hook")
    (work / "bind").mkdir()
    bind = Bind(work / "bind")
    stamps = work / "exec.log"
    config = work / "kahooks.toml"
    channels = {
        "syslog": f'type = "syslog"\naddress = "{rsyslog.socket}"',
        "exec": f'type = "exec"\ncommand = ["sh", "-c", "echo $KAHOOKS_EVENT_ID >> {stamps}"]',
        "email": (f'type = "email"\nserver = "127.0.0.1:{smtp.port}"\nfrom = "kahooks@lb1.example.test"\n'
                  f'to = "ops@example.test"\nusername = "kahooks"\npassword = "s3cret"\nca = "{cert[0]}"'),
        "slack": f'type = "slack"\nurl = "{slack.url}"',
        "webhook": f'type = "webhook"\nurl = "{hook.url}"',
        "dns": bind.channel().split("\n", 1)[1],
    }
    text = f'spool_dir = "{work / "spool"}"\n[delivery]\nflap_window = 0\n'
    for number, (name, table) in enumerate(channels.items(), 1):
        vips = '"127.0.0.1"' if name == "dns" else '"192.0.2.10"'
        text += f'[instances.VI_{number}]\nvips = [{vips}]\n[channels.{name}]\n{table}\n'
        text += f'[[rules]]\ninstances = ["VI_{number}"]\nchannels = ["{name}"]\n'
    config.write_text(text)

    arrived = {
        "syslog": lambda: len(rsyslog.lines()),
        "exec": lambda: len(stamps.read_text().splitlines()) if stamps.exists() else 0,
        "email": lambda: len(smtp.messages),
        "slack": lambda: len(slack.received),
        "webhook": lambda: len(hook.received),
        "dns": lambda: len(bind.query("rr", "A")),
    }
    latency: dict[str, list[float]] = {name: [] for name in channels}
    try:
        handler(config, "BACKUP")  # starts the worker and validates the config once
        returns = [handler(config, ("MASTER", "BACKUP")[n % 2]) for n in range(args.runs)]
        for number, name in enumerate(channels, 1):
            for n in range(args.deliveries):
                if name == "dns":
                    bind.update("update delete rr.example.test. A 127.0.0.1")
                before = arrived[name]()
                started = time.perf_counter()
                subprocess.run([str(BIN / "ka-notify"), "-c", str(config), "INSTANCE", f"VI_{number}",
                                ("MASTER", "BACKUP")[n % 2] if name != "dns" else "MASTER", "100"],
                               env=ENV, check=True)
                wait_for(lambda: arrived[name]() > before, 10, f"a delivery to {name}", poll=0.0005)
                latency[name].append((time.perf_counter() - started) * 1000)
    finally:
        for server in (rsyslog, smtp, slack, hook, bind):
            server.stop()
        kill_mentioning(str(work))  # the delivery worker

    print(f"ka-notify latency ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    print(f"{'what':<42} {'runs':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    labels = {"syslog": "syslog (rsyslogd wrote it)", "exec": "exec channel ran", "email": "email (SMTP accepted)",
              "slack": "slack (webhook answered ok)", "webhook": "webhook (POST received)",
              "dns": "dns (BIND serves the record)"}
    rows = [("handler return (keepalived waits this)", returns)]
    rows += [(f"transition -> {labels[name]}", values) for name, values in latency.items()]
    for label, values in rows:
        print(f"{label:<42} {len(values):>5} {statistics.median(values):8.1f} {percentile(values, 0.99):8.1f} "
              f"{max(values):8.1f}")
    verdict = "met" if percentile(returns, 0.99) <= 100 else "MISSED"
    print(f"target: handler p99 <= 100 ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
