"""`kahooks serve` at scale: 500 checks and 100 VRRP instances against 10 checks, in the same run.

For each size the daemon runs the same mix (4 in 5 process checks, each watching its own named
process, 1 in 5 port checks against a loopback listener in another process), reads a keepalived.conf
with 100 VRRP instances on `lo` ([wire]) and hears each instance's state on its notify FIFO. Every
service process of the largest size runs during every measurement, so /proc is as big for 10 checks
as for 500 and what differs is the daemon alone. Measured:

- detection: a watched process killed with SIGKILL, until its track file is renamed into place
  (inotify-timed, as keepalived sees it), p50/p99 over --trials deaths of different checks;
- idle CPU per check: the daemon's user + system time from /proc/PID/stat (its wire observer's process
  counted in) over --seconds, divided by
  the checks; target: the same at 500 as at 10 (within 1.5x, and the 10 checks' figure is the reference);
- RSS: VmRSS after the window (the daemon's and its observer's); the growth per check between the sizes is printed.

Run with `./run bench scale` (root: the wire observer opens packet sockets). Bounded: --trials
deaths, --seconds of idle per size; everything on loopback and stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.benches import sibling

INSTANCES = 100
SIZES = (10, 500)
# Idle CPU per check may grow this much from 10 to 500 checks and still count as unchanged (the
# figures are a few tenths of a millisecond a second: a shared machine's noise is that large).
SCALE_SLACK = 1.5


helpers = sibling("daemon")  # its inotify timer, serve/stop, service copies and /proc readers


def listen_forever() -> int:
    """The port checks' peer, in its own process (its accepts are not the daemon's CPU): prints its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1024)
    print(server.getsockname()[1], flush=True)
    while True:
        connection, _ = server.accept()
        connection.close()


def keepalived_conf(path: Path) -> None:
    """100 VRRP instances on lo, the shape the wire observer and the doctor's reader take."""
    text = ""
    for index in range(INSTANCES):
        text += (f"vrrp_instance VI_{index} {{\n    state BACKUP\n    interface lo\n"
                 f"    virtual_router_id {index + 1}\n    priority 100\n    advert_int 1\n"
                 f"    virtual_ipaddress {{\n        192.0.2.{index + 1}/32\n    }}\n}}\n")
    path.write_text(text)


class Fleet:
    """The services the checks look at: one named process per process check of the largest size."""

    def __init__(self, work: Path, processes: int) -> None:
        self.work = work
        self.binaries = [helpers.service_binary(work / "bin", f"khsc{index}") for index in range(processes)]
        self.processes = [subprocess.Popen([binary, "100000"]) for binary in self.binaries]
        self.listener = subprocess.Popen([sys.executable, __file__, "--listen"], stdout=subprocess.PIPE, text=True)
        self.port = int(self.listener.stdout.readline())  # type: ignore[union-attr]  # stdout=PIPE

    def restart(self, index: int) -> None:
        self.processes[index].wait()
        self.processes[index] = subprocess.Popen([self.binaries[index], "100000"])

    def close(self) -> None:
        for process in [*self.processes, self.listener]:
            process.kill()
            process.wait()


def checks_text(count: int, port: int) -> list[tuple[str, str]]:
    """(name, run words) of `count` checks: 4 in 5 process checks (khsc0...), the rest port checks."""
    ports = count // 5
    found = [(f"proc{index}", f"ka-check-process khsc{index}") for index in range(count - ports)]
    found += [(f"port{index}", f"ka-check-port 127.0.0.1:{port}") for index in range(ports)]
    return found


def measure(work: Path, fleet: Fleet, count: int, trials: int, seconds: float) -> dict[str, Any]:
    """Detection latencies (ms), idle share of a core and RSS (MB) of the daemon running `count` checks."""
    work.mkdir(parents=True)
    conf = work / "keepalived.conf"
    keepalived_conf(conf)
    checks = checks_text(count, fleet.port)
    # Process checks at 0.05 s: a failed one looks again that often, so a restarted service is healthy
    # again at once; a healthy, watched one looks only every 30 s (the runner's safety net).
    body = f'notify_fifo = "{work}/state/notify.fifo"\n\n[wire]\nkeepalived_conf = "{conf}"\n\n'
    body += "".join(f'[checks.{name}]\nrun = "{run}"\n'
                    + ("interval = 0.05\n\n" if name.startswith("proc") else "interval = 1\n\n")
                    for name, run in checks)
    track_dir = work / "state" / "track"
    track_dir.mkdir(parents=True)
    watch = helpers.Inotify(track_dir)
    daemon = serve(work, body)
    try:
        fifo = os.open(work / "state" / "notify.fifo", os.O_WRONLY | os.O_NONBLOCK)
        for index in range(INSTANCES):
            os.write(fifo, f'INSTANCE "VI_{index}" {("BACKUP", "MASTER")[index % 2]} 100\n'.encode())
        os.close(fifo)
        wait_healthy(track_dir, [name for name, _ in checks], 20)
        time.sleep(3)  # the first runs, the FIFO's events and their deliveries are not idle
        family = helpers.with_observer(daemon.pid)
        before, started = sum(map(helpers.process_cpu, family)), time.monotonic()
        time.sleep(seconds)
        share = (sum(map(helpers.process_cpu, family)) - before) / (time.monotonic() - started)
        rss, peak = (sum(figures) for figures in zip(*map(helpers.rss_mb, family)))
        processes = count - count // 5
        latencies = []
        for trial in range(trials):
            index = (trial * 7) % processes  # a different check each time, spread over the set
            name = f"proc{index}"
            wait_healthy(track_dir, [name], 10)
            time.sleep(0.05)  # the daemon waits on the pidfd again, as in steady state
            watch.drain()
            killed = time.monotonic()
            fleet.processes[index].kill()
            seen = watch.wait_for(name, 5)
            if seen is None or helpers.read_track(track_dir / name) != "1":
                raise RuntimeError(f"{name}: the track file did not turn to 1")
            latencies.append((seen - killed) * 1000)
            fleet.restart(index)
        wait_healthy(track_dir, [name for name, _ in checks], 10)
    finally:
        helpers.stop(daemon)
    return {"checks": count, "latencies": latencies, "share": share, "rss": rss, "peak": peak}


def serve(work: Path, body: str) -> subprocess.Popen:
    """bench/daemon.py's serve(), with room for 500 checks' first probes on a loaded machine (60 s)."""
    config = work / "kahooks.toml"
    config.write_text(f'spool_dir = "{work}/spool"\n\n[serve]\nstate_dir = "{work}/state"\n\n{body}')
    with open(work / "serve.log", "ab") as log:
        process = subprocess.Popen([str(helpers.BIN / "kahooks"), "serve", "-c", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=log,
                                   env={**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"})
    deadline = time.monotonic() + 60
    while not (work / "state" / "heartbeat").exists():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.wait()
            tail = (work / "serve.log").read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError("kahooks serve did not start: " + " / ".join(tail))
        time.sleep(0.05)
    return process


def wait_healthy(track_dir: Path, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        while helpers.read_track(track_dir / name) != "0":
            if time.monotonic() > deadline:
                raise RuntimeError(f"check {name} is not healthy: the figures would mean nothing")
            time.sleep(0.01)


def run(trials: int, seconds: float, sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    """Every size in turn, with the largest size's services running throughout."""
    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-scale-"))
    fleet = Fleet(work, max(sizes) - max(sizes) // 5)
    try:
        return [measure(work / f"n{count}", fleet, count, trials, seconds) for count in sizes]
    finally:
        fleet.close()
        shutil.rmtree(work, ignore_errors=True)


def verdict(results: list[dict[str, Any]]) -> tuple[bool, bool]:
    """(detection p99 unchanged, idle CPU per check unchanged), the smallest size as the reference."""
    small, large = results[0], results[-1]
    p99 = helpers.percentile(large["latencies"], 0.99) <= SCALE_SLACK * max(helpers.percentile(small["latencies"], 0.99), 1.0)
    cpu = large["share"] / large["checks"] <= SCALE_SLACK * max(small["share"] / small["checks"], 1e-5)
    return p99, cpu


def report(results: list[dict[str, Any]], trials: int, seconds: float) -> list[str]:
    lines = [f"daemon at scale: {INSTANCES} VRRP instances (keepalived.conf on lo, states on the FIFO); "
             f"{trials} deaths and {seconds:g} s idle per size; every size's services run throughout",
             f"   {'checks':>6} {'detect p50':>11} {'p99':>8} {'idle % core':>12} {'ms CPU/s per check':>19} "
             f"{'RSS MB':>7}"]
    for result in results:
        values = result["latencies"]
        lines.append(f"   {result['checks']:>6} {statistics.median(values):8.2f} ms {helpers.percentile(values, 0.99):5.2f} ms "
                     f"{result['share'] * 100:11.2f}% {result['share'] / result['checks'] * 1000:19.3f} "
                     f"{result['rss']:7.1f}")
    small, large = results[0], results[-1]
    if small is large:
        return lines
    growth = (large["rss"] - small["rss"]) * 1024 / (large["checks"] - small["checks"])
    p99, cpu = verdict(results)
    marginal = (large["share"] - small["share"]) * 1000 / (large["checks"] - small["checks"])
    lines.append(f"   each check beyond {small['checks']}: {marginal:.3f} ms CPU/s (the {small['checks']} checks' figure "
                 f"holds the daemon's fixed cost: heartbeat, FIFO, wire)")
    lines.append(f"   RSS growth {growth:.1f} KB per check; target, 500 as 10 (within {SCALE_SLACK}x): "
                 f"detection p99 {'met' if p99 else 'MISSED'}, idle CPU per check {'met' if cpu else 'MISSED'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="deaths timed per size (default 50)")
    parser.add_argument("--seconds", type=float, default=20, help="idle measurement per size (default 20)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help=f"check counts, smallest first: the reference (default {','.join(map(str, SIZES))})")
    parser.add_argument("--listen", action="store_true", help=argparse.SUPPRESS)  # the port checks' peer
    args = parser.parse_args()
    if args.listen:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return listen_forever()
    results = run(args.trials, args.seconds, tuple(int(size) for size in args.sizes.split(",")))
    print("\n".join(report(results, args.trials, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
