"""Fleet scale: kahooks' metrics scraped by a real Prometheus, and /metrics under load in a real daemon.

1. A fleet of --nodes simulated nodes (default 200: 100 pairs), each node's exposition rendered at
   every scrape by the daemon's own metrics code (kahooks.daemon.metrics.render) from a snapshot of
   fleet-like cardinality: 8 checks, 4 VRRP instances, 4 channels. One HTTP server serves them all
   (a path per node); Debian's Prometheus scrapes each every --interval seconds with
   contrib/prometheus/kahooks-rules.yml loaded. Printed: series and scrape time per node,
   Prometheus' memory per node against the same Prometheus with no targets (the reference, measured
   first in this run), and the rule group's evaluation time.
2. One real `kahooks serve` with 50 checks (port, HTTP and process, at 1 s) and 20 VRRP instances
   (their transitions written to its notify FIFO): GET /metrics time, with the render alone timed on
   the daemon's own status snapshot (target: p99 <= 2 ms; reference: prometheus_client's generate_latest
   on the same families, alternated with it); and the checks' mean probe time while nobody
   scrapes (the reference) against while /metrics is scraped every second, then 20 times a second.

Run with `./run bench fleet` (root not needed). Everything is on loopback; every phase is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kahooks.daemon.metrics import render
from kahooks.daemon.verdict import LATENCY_BUCKETS
from kahooks.lab.netns import free_port
from tests.support.benches import sibling

BIN = Path(sys.executable).parent
RULES = Path(__file__).resolve().parents[1] / "contrib" / "prometheus" / "kahooks-rules.yml"
PROMETHEUS = "/usr/bin/prometheus"


def node_snapshot(node: int, now: float) -> tuple[dict, dict]:
    """A snapshot and spool depth like a busy node's: counters that grow with time, one check failing."""
    ticks = int(now - START)
    checks = {}
    for index in range(8):
        runs = 1000 + ticks
        buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        buckets[2], buckets[3] = runs - 10, 10
        checks[f"check_{index}"] = {"ok": not (index == 7 and node % 10 == 0), "value": 0,
                                    "track_file": f"/run/kahooks/track/c{index}", "last": {"latency": 0.004},
                                    "latency_buckets": buckets, "latency_total": runs * 0.004,
                                    "runs": runs, "failures": 3, "changes": 2}
    pair_side = node % 2
    instances = {f"VI_{index}": {"state": "MASTER" if (index + pair_side) % 2 == 0 else "BACKUP", "since": START}
                 for index in range(4)}
    snapshot = {"checks": checks, "maintenance": False, "instances": instances, "started": START, "heartbeat": now,
                "transition_counts": [{"instance": name, "state": state, "count": 3}
                                      for name in instances for state in ("MASTER", "BACKUP")],
                "delivery_counts": [{"channel": channel, "outcome": outcome, "count": 40 + ticks}
                                    for channel in ("syslog", "mail", "chat", "am") for outcome in ("delivered", "retry")],
                "threads": {name: {"state": "running", "restarts": 0} for name in ("delivery", "fifo", "pidfd-watcher")}}
    spool = {"incoming": 0, "queued": {channel: 0 for channel in ("syslog", "mail", "chat", "am")}, "dead": 0,
             "dead_by_channel": {channel: 0 for channel in ("syslog", "mail", "chat", "am")}, "oldest": None}
    return snapshot, spool


START = time.time()


class FleetHandler(BaseHTTPRequestHandler):
    renders: list[float] = []

    def do_GET(self) -> None:
        match = re.fullmatch(r"/node/(\d+)/metrics", self.path)
        if not match:
            self.send_error(404)
            return
        started = time.perf_counter()
        body = render(*node_snapshot(int(match.group(1)), time.time())).encode()
        FleetHandler.renders.append(time.perf_counter() - started)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def query(port: int, expression: str) -> list[dict]:
    from urllib.parse import quote

    url = f"http://127.0.0.1:{port}/api/v1/query?query={quote(expression)}"
    return json.loads(urllib.request.urlopen(url, timeout=10).read())["data"]["result"]


def value(port: int, expression: str) -> float:
    result = query(port, expression)
    return float(result[0]["value"][1]) if result else float("nan")


def run_prometheus(directory: Path, config: str, seconds: float) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (directory / "prometheus.yml").write_text(config)
    shutil.copy(RULES, directory / "kahooks-rules.yml")
    process = subprocess.Popen([PROMETHEUS, f"--config.file={directory / 'prometheus.yml'}",
                                f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=open(directory / "log", "ab"))
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"prometheus did not start: {(directory / 'log').read_text()[-2000:]}") from None
            time.sleep(0.2)
    time.sleep(seconds)
    return process, port


def fleet(nodes: int, interval: float, seconds: float) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FleetHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-fleet-"))
    head = f"global:\n  scrape_interval: {interval}s\n  evaluation_interval: {interval}s\nrule_files: [kahooks-rules.yml]\n"
    try:
        (work / "base").mkdir()
        base, base_port = run_prometheus(work / "base", head, seconds)
        base_rss = rss_mb(base.pid)
        base.terminate()
        base.wait(10)
        targets = "".join(f'      - targets: ["127.0.0.1:{port}"]\n        labels: {{__metrics_path__: "/node/{node}/metrics", '
                          f'instance: "lb{node}", cluster: "pair{node // 2}"}}\n' for node in range(nodes))
        config = head + f"scrape_configs:\n  - job_name: kahooks\n    static_configs:\n{targets}"
        (work / "fleet").mkdir()
        prometheus, prom_port = run_prometheus(work / "fleet", config, seconds)
        fleet_rss = rss_mb(prometheus.pid)
        up = value(prom_port, 'count(up{job="kahooks"} == 1)')
        series = value(prom_port, 'avg(scrape_samples_scraped{job="kahooks"})')
        scrape = value(prom_port, 'avg(avg_over_time(scrape_duration_seconds{job="kahooks"}[1m]))')
        scrape_max = value(prom_port, 'max(max_over_time(scrape_duration_seconds{job="kahooks"}[1m]))')
        rules = value(prom_port, 'max(prometheus_rule_group_last_duration_seconds)')
        if rules != rules:  # not self-scraped: read Prometheus' own metrics
            own = urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=5).read().decode()
            found = re.search(r"^prometheus_rule_group_last_duration_seconds\{[^}]*\} (\S+)$", own, re.M)
            rules = float(found.group(1)) if found else float("nan")
        firing = len(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/alerts",
                                                       timeout=5).read())["data"]["alerts"])
        prometheus.terminate()
        prometheus.wait(10)
        renders = sorted(FleetHandler.renders)
        print(f"fleet: {nodes} nodes ({int(up)} up), scraped every {interval:g} s for {seconds:g} s by Prometheus "
              f"{subprocess.run([PROMETHEUS, '--version'], capture_output=True, text=True).stdout.split()[2]}")
        print(f"  series per node          {series:.0f}")
        print(f"  scrape time per node     {scrape * 1000:.1f} ms mean, {scrape_max * 1000:.1f} ms max")
        print(f"  render per scrape        {statistics.median(renders) * 1000:.2f} ms median, "
              f"{renders[int(len(renders) * 0.99)] * 1000:.2f} ms p99 ({len(renders)} renders)")
        print(f"  Prometheus memory        {fleet_rss:.0f} MB with the fleet, {base_rss:.0f} MB with no target "
              f"(reference): {(fleet_rss - base_rss) * 1024 / nodes:.0f} KB per node")
        print(f"  rule evaluation          {rules * 1000:.2f} ms for the kahooks group ({firing} alerts pending or firing)")
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def daemon(seconds: float) -> dict[str, float]:
    """The daemon's part: printed, and its render figures returned (ms) for `./run bench all`."""
    helpers: Any = sibling("daemon")  # its HTTP server, service stand-ins and daemon stop
    service_binary, start_http_server, stop = helpers.service_binary, helpers.start_http_server, helpers.stop

    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-metrics-"))
    http_process, http_port = start_http_server()
    services = [subprocess.Popen([service_binary(work, f"svc{index}"), "3600"]) for index in range(10)]
    metrics_port = free_port()
    checks = ""
    for index in range(50):
        kind = index % 3
        run = (f"ka-check-port 127.0.0.1:{http_port}" if kind == 0 else
               f"ka-check-http http://127.0.0.1:{http_port}/" if kind == 1 else f"ka-check-process svc{index % 10}")
        checks += f'[checks.c{index}]\nrun = "{run}"\ninterval = 1\n\n'
    config = work / "kahooks.toml"
    config.write_text(f'spool_dir = "{work}/spool"\n\n[serve]\nstate_dir = "{work}/state"\n'
                      f'metrics_listen = "127.0.0.1:{metrics_port}"\nnotify_fifo = "{work}/state/notify.fifo"\n\n{checks}')
    served = subprocess.Popen([str(BIN / "kahooks"), "serve", "-c", str(config)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "ab"),
                              env={**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"})
    try:
        fifo = work / "state" / "notify.fifo"
        deadline = time.monotonic() + 15
        while not fifo.exists():
            if time.monotonic() > deadline:
                raise RuntimeError((work / "serve.log").read_text())
            time.sleep(0.05)
        descriptor = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        for index in range(20):
            os.write(descriptor, f'INSTANCE "VI_{index}" {"MASTER" if index % 2 else "BACKUP"} 100\n'.encode())
        os.close(descriptor)
        time.sleep(3)  # every check has run

        def probe_mean(status: dict) -> tuple[float, int]:
            checks = status["checks"].values()
            return sum(check["latency_total"] for check in checks), sum(check["runs"] for check in checks)

        def phase(scrapes_per_second: float, seconds: float) -> tuple[float, list[float]]:
            status = json.loads((work / "state" / "status.json").read_text())
            total0, runs0 = probe_mean(status)
            timings: list[float] = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if scrapes_per_second:
                    started = time.perf_counter()
                    urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
                    timings.append(time.perf_counter() - started)
                    time.sleep(max(0.0, 1 / scrapes_per_second - (time.perf_counter() - started)))
                else:
                    time.sleep(0.1)
            total1, runs1 = probe_mean(json.loads((work / "state" / "status.json").read_text()))
            return (total1 - total0) / max(1, runs1 - runs0), timings

        # Alternated in short windows, so that drift in the machine's speed falls on both alike.
        rounds = max(1, int(seconds // 5))
        quiet = scraped = hammered = 0.0
        timings: list[float] = []
        hammer_timings: list[float] = []
        for _ in range(rounds):
            quiet += phase(0, 5)[0] / rounds
            mean, more = phase(1, 5)
            scraped += mean / rounds
            timings += more
            mean, more = phase(20, 5)
            hammered += mean / rounds
            hammer_timings += more
        status = json.loads((work / "state" / "status.json").read_text())
        from kahooks.notify.spool import Spool

        spool = Spool(str(work / "spool")).depth() if (work / "spool").is_dir() else None
        from prometheus_client import CollectorRegistry, generate_latest

        from kahooks.daemon.metrics import SnapshotCollector

        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(status, spool))  # type: ignore[arg-type]
        renders, references, render_cpus = [], [], []
        for _ in range(200):  # alternated: the machine's drift falls on both alike
            cpu, started = time.thread_time(), time.perf_counter()
            body = render(status, spool)
            renders.append(time.perf_counter() - started)
            render_cpus.append(time.thread_time() - cpu)  # without the time other processes held the core
            started = time.perf_counter()
            generate_latest(registry)
            references.append(time.perf_counter() - started)
        renders.sort()
        render_cpus.sort()
        families = len(re.findall(r"^# TYPE", body, re.M))
        print(f"daemon: 50 checks at 1 s, 20 instances; /metrics has {body.count(chr(10))} lines in {families} families")
        print(f"  render (status snapshot) {statistics.median(renders) * 1000:.2f} ms median, "
              f"{renders[int(len(renders) * 0.99)] * 1000:.2f} ms p99 (this thread's CPU: "
              f"{statistics.median(render_cpus) * 1000:.2f} ms median, {render_cpus[int(len(render_cpus) * 0.99)] * 1000:.2f}"
              f" ms p99)   (target <= 2 ms); prometheus_client's "
              f"generate_latest on the same families (reference): {statistics.median(references) * 1000:.2f} ms "
              f"({statistics.median(references) / statistics.median(renders):.1f}x)")
        print(f"  GET /metrics, 1/s        {statistics.median(timings) * 1000:.2f} ms median; at 20/s "
              f"{statistics.median(hammer_timings) * 1000:.2f} ms median, {max(hammer_timings) * 1000:.2f} ms max")
        print(f"  mean probe time          {quiet * 1000:.2f} ms unscraped (reference), {scraped * 1000:.2f} ms scraped "
              f"every second ({scraped / quiet:.2f}x), {hammered * 1000:.2f} ms at 20 scrapes/s ({hammered / quiet:.2f}x)")
        return {"render_p50": statistics.median(renders) * 1000, "render_p99": renders[int(len(renders) * 0.99)] * 1000,
                "cpu_p99": render_cpus[int(len(render_cpus) * 0.99)] * 1000,
                "reference_p50": statistics.median(references) * 1000,
                "reference_p99": sorted(references)[int(len(references) * 0.99)] * 1000}
    finally:
        stop(served)
        for service in services:
            service.kill()
            service.wait()
        http_process.kill()
        http_process.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200, help="simulated nodes (default 200)")
    parser.add_argument("--interval", type=float, default=5, help="their scrape and rule interval, s (default 5)")
    parser.add_argument("--seconds", type=float, default=40, help="length of each phase, s (default 40)")
    args = parser.parse_args()
    if not os.path.exists(PROMETHEUS):
        print("needs Debian's prometheus (./run bench fleet installs it)", file=sys.stderr)
        return 1
    fleet(args.nodes, args.interval, args.seconds)
    daemon(min(args.seconds, 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
