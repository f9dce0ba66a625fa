"""ka-notify latency: how long keepalived's handler takes to return, and transition -> delivery per channel.

- handler return: wall time of `ka-notify INSTANCE VI_1 MASTER 100` (Python start-up, the
  fsynced spool write, the worker check), with a worker already running; target p99 <= 100 ms.
- transition -> delivery: from the moment the handler is started until the channel's peer
  has the message (a real rsyslogd writing its file; an exec command stamping the time).

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support's real rsyslogd

from tests.support.programs import kill_mentioning  # noqa: E402
from tests.support.rsyslog import Rsyslog  # noqa: E402

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


def wait_until(test, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = test()
        if found:
            return found
        time.sleep(0.0005)
    raise RuntimeError("a delivery did not arrive within 10 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="handler runs (default 200)")
    parser.add_argument("--deliveries", type=int, default=40, help="deliveries per channel (default 40)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-notify-"))
    rsyslog = Rsyslog(work)
    stamps = work / "exec.log"
    config = work / "kahooks.toml"
    config.write_text(f"""spool_dir = "{work / 'spool'}"
[delivery]
flap_window = 0
[channels.syslog]
type = "syslog"
address = "{rsyslog.socket}"
[channels.exec]
type = "exec"
command = ["sh", "-c", "echo $KAHOOKS_EVENT_ID $(date +%s.%N) >> {stamps}"]
[[rules]]
instances = ["VI_1"]
channels = ["syslog"]
[[rules]]
instances = ["VI_2"]
channels = ["exec"]
""")
    try:
        handler(config, "BACKUP")  # starts the worker and validates the config once
        returns = [handler(config, ("MASTER", "BACKUP")[n % 2]) for n in range(args.runs)]

        syslog_latency = []
        for n in range(args.deliveries):
            before = len(rsyslog.lines())
            started = time.time()
            subprocess.run([str(BIN / "ka-notify"), "-c", str(config), "INSTANCE", "VI_1",
                            ("MASTER", "BACKUP")[n % 2], "100"], env=ENV, check=True)
            wait_until(lambda: len(rsyslog.lines()) > before)
            syslog_latency.append((time.time() - started) * 1000)

        exec_latency = []
        for n in range(args.deliveries):
            started = time.time()
            subprocess.run([str(BIN / "ka-notify"), "-c", str(config), "INSTANCE", "VI_2",
                            ("MASTER", "BACKUP")[n % 2], "100"], env=ENV, check=True)
            line = wait_until(lambda: stamps.exists() and len(stamps.read_text().splitlines()) > n
                              and stamps.read_text().splitlines()[n])
            exec_latency.append((float(line.split()[1]) - started) * 1000)
    finally:
        rsyslog.stop()
        kill_mentioning(str(work))  # the delivery worker

    print(f"ka-notify latency ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    print(f"{'what':<42} {'runs':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows = [("handler return (keepalived waits this)", returns),
            ("transition -> syslog (rsyslogd wrote it)", syslog_latency),
            ("transition -> exec channel ran", exec_latency)]
    for label, values in rows:
        print(f"{label:<42} {len(values):>5} {statistics.median(values):8.1f} {percentile(values, 0.99):8.1f} "
              f"{max(values):8.1f}")
    verdict = "met" if percentile(returns, 0.99) <= 100 else "MISSED"
    print(f"target: handler p99 <= 100 ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
