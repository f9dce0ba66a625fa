"""`kahooks serve` against its targets, each next to a reference measured in the same run.

1. Process death -> track file: a service (a copy of `sleep` under its own name)
   is killed with SIGKILL; the time until the daemon's track file is renamed into
   place holding the failed value, seen through inotify as keepalived sees it.
   Target: p99 <= 20 ms. Reference: a poller at interval 1 s (keepalived running
   ka-check-process) notices after 0-1 s plus the check's own run time.
2. CPU per in-process port and HTTP probe (the daemon runs the checks' own code),
   against one fresh ka-check-port/-http process, the cost keepalived pays per run.
   Target: <= 1 ms.
3. Idle cost of the daemon with 10 checks at 1 s (4 process, 3 port, 3 HTTP):
   CPU share of one core and resident memory, against keepalived forking the same
   10 ka-check-* programs every second. Targets: < 1 % of a core, RSS < 50 MB.

Run with `./run bench daemon` (root not needed). Everything is on loopback and
bounded: --kills deaths, --probes probes, --seconds of idle measurement.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from kahooks.lab.netns import free_port

BIN = Path(sys.executable).parent
IN_MOVED_TO = 0x80
IN_CLOSE_WRITE = 0x08


class Inotify:
    """Just enough inotify to see a file renamed into a directory, as keepalived does."""

    def __init__(self, directory: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.libc.inotify_add_watch(self.fd, str(directory).encode(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def wait_for(self, name: str, timeout: float) -> float | None:
        """The monotonic time `name` was next renamed into place (or closed after writing); None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.fd], [], [], left)[0]:
                return None
            stamp = time.monotonic()
            data = os.read(self.fd, 65536)
            offset = 0
            while offset < len(data):
                _, _, _, length = struct.unpack_from("iIII", data, offset)
                found = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode()
                offset += 16 + length
                if found == name:
                    return stamp
        return None

    def drain(self) -> None:
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def start_http_server() -> tuple[subprocess.Popen, int]:
    """An HTTP server in its own process, so its CPU is not counted as the client's."""
    # One thread, each connection handled and closed before the next accept. With the threaded
    # http.server, about 1 connect in 300 of back-to-back connect-and-close probes waited for the
    # kernel's 1 s SYN retry here (none in 1000 this way): a cost of the harness, not of the probe.
    process = subprocess.Popen([sys.executable, __file__, "--serve-health"], stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())  # type: ignore[union-attr]  # started with stdout=PIPE
    return process, port


def serve_health() -> int:
    """The HTTP server of start_http_server, in the process it starts; prints its port, serves until killed."""
    from http.server import HTTPServer

    HTTPServer.request_queue_size = 256
    server = HTTPServer(("127.0.0.1", 0), Health)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def serve(directory: Path, checks: str) -> subprocess.Popen:
    config = directory / "kahooks.toml"
    config.write_text(f'spool_dir = "{directory}/spool"\n\n[serve]\nstate_dir = "{directory}/state"\n\n{checks}')
    process = subprocess.Popen([str(BIN / "kahooks"), "serve", "-c", str(config)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=open(directory / "serve.log", "ab"),
                               env={**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"})
    deadline = time.monotonic() + 15
    while not (directory / "state" / "heartbeat").exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"kahooks serve did not start: {(directory / 'serve.log').read_text()}")
        time.sleep(0.02)
    return process


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def service_binary(directory: Path, name: str) -> str:
    """A copy of sleep under its own name: a process check matches it by name, as it would haproxy."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    shutil.copy(shutil.which("sleep") or "/bin/sleep", path)
    return str(path)


def read_track(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def death_to_track_file(directory: Path, kills: int) -> list[float]:
    binary = service_binary(directory, "khbenchsvc")
    track_dir = directory / "state" / "track"
    track_dir.mkdir(parents=True)
    watch = Inotify(track_dir)
    service = subprocess.Popen([binary, "100000"])
    daemon = serve(directory, '[checks.svc]\nrun = "ka-check-process khbenchsvc"\ninterval = 0.05\n')
    latencies = []
    try:
        for _ in range(kills):
            deadline = time.monotonic() + 10
            while read_track(track_dir / "svc") != "0":
                if time.monotonic() > deadline:
                    raise RuntimeError("the service was never seen healthy")
                time.sleep(0.005)
            time.sleep(0.05)  # the daemon is now waiting on the pidfd, as in steady state
            watch.drain()
            killed = time.monotonic()
            service.kill()
            seen = watch.wait_for("svc", 5)
            if seen is None or read_track(track_dir / "svc") != "1":
                raise RuntimeError("the track file did not turn to 1")
            latencies.append(seen - killed)
            service.wait()
            service = subprocess.Popen([binary, "100000"])
    finally:
        service.kill()
        service.wait()
        stop(daemon)
    return latencies


def probe_cpu(kind_words: str, probes: int) -> float:
    """CPU seconds per probe of a check object in this process (what the daemon spends per run)."""
    from kahooks.checks.base import probe_safely
    from kahooks.daemon.settings import build_check

    def problem(key: str, message: str) -> None:
        raise SystemExit(f"{key}: {message}")

    _, _, check = build_check(kind_words, problem)
    for _ in range(20):
        result = probe_safely(check)
        if not result.ok:
            raise RuntimeError(f"{kind_words}: {result.summary}")
    started = time.process_time()
    for _ in range(probes):
        if not probe_safely(check).ok:
            raise RuntimeError(f"{kind_words}: a probe failed; the figure would be a failure's cost")
    return (time.process_time() - started) / probes


def program_cpu(argv: list[str], runs: int) -> float:
    """CPU seconds per run of a fresh check program (user + system, from the children's rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        if subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"}).returncode != 0:
            raise RuntimeError(f"{argv} failed")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / runs


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_observer(pid: int) -> list[int]:
    """The daemon and its wire observer's process (daemon/wire_process.py): the daemon's cost is both."""
    family = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                if b"kahooks.daemon.wire_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                    family.append(int(child))
            except OSError:
                continue
    return family


def rss_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def idle_cost(directory: Path, http_port: int, listen_port: int, seconds: float) -> tuple[float, float, float]:
    """(share of a core, RSS MB, peak RSS MB) of the daemon running 10 checks at 1 s."""
    services = [subprocess.Popen([service_binary(directory, f"khidle{index}"), "100000"]) for index in range(4)]
    checks = "".join(f'[checks.proc{index}]\nrun = "ka-check-process khidle{index}"\n\n' for index in range(4))
    checks += "".join(f'[checks.port{index}]\nrun = "ka-check-port 127.0.0.1:{listen_port}"\n\n' for index in range(3))
    checks += "".join(f'[checks.http{index}]\nrun = "ka-check-http http://127.0.0.1:{http_port}/health"\n\n'
                      for index in range(3))
    daemon = serve(directory, checks)
    try:
        time.sleep(3)  # start-up and the first runs are not idle
        before, started = process_cpu(daemon.pid), time.monotonic()
        time.sleep(seconds)
        share = (process_cpu(daemon.pid) - before) / (time.monotonic() - started)
        rss, peak = rss_mb(daemon.pid)
        for check in ("proc0", "port0", "http0"):
            if (directory / "state" / "track" / check).read_text().strip() != "0":
                raise RuntimeError(f"check {check} is not healthy: the idle figure would mean nothing")
    finally:
        stop(daemon)
        for service in services:
            service.kill()
            service.wait()
    return share, rss, peak


def failed_cost(directory: Path, dead_port: int, seconds: float) -> float:
    """Share of a core of the daemon while the same 10 checks all fail, as after `kill -9 haproxy`:
    process checks by pidfile with the pidfile left naming a dead pid, port and HTTP checks refused.
    Reading the pidfile once made the file watch wake the check again, at a full core."""
    directory.mkdir(parents=True, exist_ok=True)
    checks = ""
    for index in range(4):
        service = subprocess.Popen([service_binary(directory, f"khdead{index}"), "100000"])
        (directory / f"dead{index}.pid").write_text(f"{service.pid}\n")
        service.kill()
        service.wait()  # the pidfile stays behind, naming a dead pid
        checks += f'[checks.proc{index}]\nrun = "ka-check-process --pidfile {directory}/dead{index}.pid"\n\n'
    checks += "".join(f'[checks.port{index}]\nrun = "ka-check-port 127.0.0.1:{dead_port}"\n\n' for index in range(3))
    checks += "".join(f'[checks.http{index}]\nrun = "ka-check-http http://127.0.0.1:{dead_port}/health"\n\n'
                      for index in range(3))
    daemon = serve(directory, checks)
    try:
        time.sleep(3)
        before, started = process_cpu(daemon.pid), time.monotonic()
        time.sleep(seconds)
        share = (process_cpu(daemon.pid) - before) / (time.monotonic() - started)
        for check in ("proc0", "port0", "http0"):
            if (directory / "state" / "track" / check).read_text().strip() != "1":
                raise RuntimeError(f"check {check} is not failed: the failed-state figure would mean nothing")
    finally:
        stop(daemon)
    return share


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="service deaths to time (default 200)")
    parser.add_argument("--probes", type=int, default=2000, help="in-process probes per kind (default 2000)")
    parser.add_argument("--seconds", type=float, default=20, help="idle measurement length (default 20)")
    parser.add_argument("--serve-health", action="store_true", help=argparse.SUPPRESS)  # the bench's own server
    args = parser.parse_args()
    if args.serve_health:
        return serve_health()
    http_server, http_port = start_http_server()
    listen_port = http_port  # a port check connects and closes; the server's process accepts, off our CPU
    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-daemon-"))
    try:
        latencies = death_to_track_file(work / "death", args.kills)
        port_cpu = probe_cpu(f"ka-check-port 127.0.0.1:{listen_port}", args.probes)
        http_cpu = probe_cpu(f"ka-check-http http://127.0.0.1:{http_port}/health", args.probes)
        port_fork = program_cpu([str(BIN / "ka-check-port"), f"127.0.0.1:{listen_port}"], 30)
        http_fork = program_cpu([str(BIN / "ka-check-http"), f"http://127.0.0.1:{http_port}/health"], 30)
        reference = subprocess.Popen([service_binary(work, "khref"), "100000"])
        try:
            process_fork = program_cpu([str(BIN / "ka-check-process"), "khref"], 30)
        finally:
            reference.kill()
            reference.wait()
        share, rss, peak = idle_cost(work / "idle", http_port, listen_port, args.seconds)
        failed_share = failed_cost(work / "failed", free_port(), args.seconds)
    finally:
        http_server.kill()
        http_server.wait()
        shutil.rmtree(work, ignore_errors=True)

    milli = [value * 1000 for value in latencies]
    print(f"1. process death -> track file renamed into place ({len(milli)} kills, inotify-timed)")
    print(f"   p50 {statistics.median(milli):.2f} ms   p99 {percentile(milli, 0.99):.2f} ms   "
          f"max {max(milli):.2f} ms   target p99 <= 20 ms: {'met' if percentile(milli, 0.99) <= 20 else 'MISSED'}")
    print(f"   reference, keepalived polling ka-check-process at interval 1: 0-1000 ms + one run "
          f"({process_fork * 1000:.1f} ms CPU), mean about {500 + process_fork * 1000:.0f} ms")
    print("2. CPU per probe                     in-process   fresh program   ratio")
    for label, inside, fork in (("port", port_cpu, port_fork), ("http", http_cpu, http_fork)):
        print(f"   {label:<32} {inside * 1000:8.3f} ms  {fork * 1000:10.1f} ms  {fork / inside:7.0f}x   "
              f"target <= 1 ms: {'met' if inside <= 0.001 else 'MISSED'}")
    forked = (4 * process_fork + 3 * port_fork + 3 * http_fork) * 100  # per second, as % of a core
    print(f"3. idle, 10 checks at 1 s for {args.seconds:g} s")
    print(f"   kahooks serve: {share * 100:.2f} % of a core, RSS {rss:.1f} MB (peak {peak:.1f} MB)   "
          f"targets < 1 %: {'met' if share < 0.01 else 'MISSED'}, < 50 MB: {'met' if peak < 50 else 'MISSED'}")
    print(f"   the same 10 checks all failed (pidfiles left by kill -9, ports refused): "
          f"{failed_share * 100:.2f} % of a core   target < 1 %: {'met' if failed_share < 0.01 else 'MISSED'}")
    print(f"   reference, keepalived forking the same 10 programs each second: {forked:.1f} % of a core "
          f"({forked / max(share * 100, 1e-9):.0f}x the daemon)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
