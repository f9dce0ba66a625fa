"""ka-notify latency: how long keepalived's handler takes to return, and transition -> delivery per channel.

- handler return: wall and CPU time of `ka-notify INSTANCE VI_1 MASTER 100` (Python start-up, the
  fsynced spool write, the worker check), with a worker already running, in turn with its reference:
  a minimal stdlib durable recorder (bench/notify_reference.py: one file, fsynced with its folder) run
  by the same interpreter. Target: handler p90 <= 1.3x the reference's p90, in the same run.
- FIFO line -> exec channel started, in `kahooks serve`: a line written to its notify FIFO as keepalived
  writes it, until the exec channel's command has written its output, each line once the delivery
  before it is over. Target p99 <= 10 ms. Set TMPDIR=/dev/shm to see it without the disk's fsyncs.
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
from tests.support.serve import KeepalivedFifo, Served, fifo_config, tmpfs_parent
from tests.support.smtp import SmtpServer
from tests.support.webhooks import WebhookServer

BIN = Path(sys.executable).parent
REFERENCE = Path(__file__).with_name("notify_reference.py")
ENV = {**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def timed(argv: list[str]) -> tuple[float, float]:
    """Run `argv` to its end: its wall time and its own CPU time (user + system), in ms."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=ENV, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv} exited {process.returncode}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def handler(config: Path, state: str) -> tuple[float, float]:
    return timed([str(BIN / "ka-notify"), "-c", str(config), "INSTANCE", "VI_1", state, "100"])


def handler_and_reference(config: Path, reference_spool: Path, runs: int) -> dict[str, list[tuple[float, float]]]:
    """The handler and its reference in turn (A B A B ...), so both see the same machine."""
    reference_spool.mkdir(exist_ok=True)
    found: dict[str, list[tuple[float, float]]] = {"handler": [], "reference": []}
    for n in range(runs):
        state = ("MASTER", "BACKUP")[n % 2]
        found["handler"].append(handler(config, state))
        found["reference"].append(timed([sys.executable, str(REFERENCE), str(reference_spool), "INSTANCE", "VI_1",
                                         state, "100"]))
    return found


def fifo_to_exec(work: Path, lines: int) -> list[float]:
    """`kahooks serve` reading its notify FIFO: from a line written until its exec channel has run, in ms.

    Each line is written once the delivery before it is over (its queue entry removed): the channel
    sends one delivery at a time, and a line written while the one before is still finishing (the
    command's process group swept, its entry removed) would time that delivery's tail, not its own."""
    served = Served(work, fifo_config(work, command='echo "$KAHOOKS_EVENT_ID" >> {out}')).start()
    out = work / "delivered"
    queued = work / "spool" / "queue" / "log"
    try:
        writer = KeepalivedFifo(work / "state" / "notify.fifo")
        timings = []
        for n in range(lines + 1):
            wait_for(lambda: not queued.is_dir() or not any(queued.iterdir()), 10, "the delivery before to end",
                     poll=0.0005)
            before = len(out.read_text().splitlines()) if out.exists() else 0
            started = time.perf_counter()
            writer.write([f'INSTANCE "VI_1" {("MASTER", "BACKUP")[n % 2]} 100'])
            wait_for(lambda: out.exists() and len(out.read_text().splitlines()) > before, 10,
                     "the exec channel to run", poll=0.0002)
            if n:  # the first starts the delivery thread's channel: not a steady state
                timings.append((time.perf_counter() - started) * 1000)
        writer.close()
        return timings
    finally:
        served.stop()
        import shutil

        shutil.rmtree(tmpfs_parent(), ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="handler runs (default 200)")
    parser.add_argument("--deliveries", type=int, default=40, help="deliveries per channel (default 40; 0: none)")
    parser.add_argument("--fifo-lines", type=int, default=100, help="FIFO lines through kahooks serve (default 100)")
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
        paired = handler_and_reference(config, work / "reference-spool", args.runs)
        (work / "serve").mkdir()
        fifo = fifo_to_exec(work / "serve", args.fifo_lines) if args.fifo_lines else []
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

    print(f"ka-notify latency ({os.cpu_count()} CPUs: {cpu_model()}; Python {sys.version.split()[0]})")
    print(f"{'what':<48} {'runs':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu p50':>8}")
    labels = {"syslog": "syslog (rsyslogd wrote it)", "exec": "exec channel ran", "email": "email (SMTP accepted)",
              "slack": "slack (webhook answered ok)", "webhook": "webhook (POST received)",
              "dns": "dns (BIND serves the record)"}
    walls = {what: [wall for wall, _ in pairs] for what, pairs in paired.items()}
    cpus = {what: [cpu for _, cpu in pairs] for what, pairs in paired.items()}
    rows: list[tuple[str, list[float], list[float] | None]] = [
        ("handler return (keepalived waits this)", walls["handler"], cpus["handler"]),
        ("  reference: stdlib durable recorder", walls["reference"], cpus["reference"])]
    if fifo:
        rows.append(("FIFO line -> exec channel started (serve)", fifo, None))
    rows += [(f"transition -> {labels[name]}", values, None) for name, values in latency.items() if values]
    for label, values, cpu in rows:
        used = f"{statistics.median(cpu):8.1f}" if cpu else f"{'':>8}"
        print(f"{label:<48} {len(values):>5} {statistics.median(values):8.1f} {percentile(values, 0.9):8.1f} "
              f"{percentile(values, 0.99):8.1f} {max(values):8.1f} {used}".rstrip())
    ratio = percentile(walls["handler"], 0.9) / percentile(walls["reference"], 0.9)
    cpu_ratio = statistics.median(cpus["handler"]) / statistics.median(cpus["reference"])
    print(f"handler / reference: wall p90 {ratio:.2f}x, cpu p50 {cpu_ratio:.2f}x; "
          f"target wall p90 <= 1.3x: {'met' if ratio <= 1.3 else 'MISSED'}")
    if fifo:
        print(f"target: FIFO line -> exec channel started p99 <= 10 ms: "
              f"{'met' if percentile(fifo, 0.99) <= 10 else 'MISSED'}")
    return 0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown model"


if __name__ == "__main__":
    sys.exit(main())
