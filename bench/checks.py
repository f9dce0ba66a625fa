"""Per-check cost: each ka-check-* next to a minimal stdlib probe and the C tools, in one run.

keepalived may start a check every second on every node, so what matters is the
whole program's wall time and CPU, start-up included. Every figure is a median
over --runs fresh processes (CPU from wait4's rusage), the rows taken in turn one
run each, so that a machine shared with others slows every row alike. The ratio
columns compare each row with the minimal standard-library script doing the same
probe, measured in the same rounds; the target for kahooks' checks is <= 1.05x.

Run with `./run bench` (installs monitoring-plugins and curl when missing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PYTHON = sys.executable
PLUGINS = Path("/usr/lib/nagios/plugins")
TARGET_RATIO = 1.05

# The same probe as ka-check-process (and pidof, killall -0): every process of that name, so the whole table
# is read. The first-match script below stops early, so its cost depends on where the target's pid falls
# in /proc's order (0.96x to 1.12x against it within an hour on this machine): shown, not the reference.
STDLIB_PROCESS = """\
import os, sys
name = sys.argv[1]
found = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == name:
                    found.append(pid)
        except OSError:
            pass
sys.exit(0 if found else 1)
"""
STDLIB_PROCESS_FIRST = """\
import os, sys
name = sys.argv[1]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == name:
                    sys.exit(0)
        except OSError:
            pass
sys.exit(1)
"""
STDLIB_PORT = """\
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.8).close()
"""
STDLIB_HTTP = """\
import http.client, sys
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=0.8)
connection.request("GET", "/health")
sys.exit(0 if 200 <= connection.getresponse().status < 400 else 1)
"""
STDLIB_EXEC = """\
import subprocess, sys
sys.exit(subprocess.run(sys.argv[1:], timeout=0.8, stdin=subprocess.DEVNULL, capture_output=True).returncode)
"""


def run_once(argv: list[str]) -> tuple[float, float, int]:
    """(wall ms, CPU ms, exit code) of one fresh process."""
    env = {**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent"}
    with open(os.devnull, "wb") as null:
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1),
                                           (os.POSIX_SPAWN_DUP2, null.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
    return wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000, os.waitstatus_to_exitcode(status)


def measure_in_turn(rows: list[list[str]], runs: int, warmup: int = 3) -> list[tuple[float, float, int]]:
    """(median wall ms, median CPU ms, last exit code) of every row over `runs` fresh processes, the rows
    taken in turn one run each (drift falls on all alike)."""
    for _ in range(warmup):
        for argv in rows:
            run_once(argv)
    results: list[list[tuple[float, float, int]]] = [[] for _ in rows]
    for _ in range(runs):
        for argv, taken in zip(rows, results):
            taken.append(run_once(argv))
    return [(statistics.median(wall for wall, _, _ in taken), statistics.median(cpu for _, cpu, _ in taken),
             taken[-1][2]) for taken in results]


class Services:
    """What the probes look at: a named process, and an HTTP server on loopback."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="kahooks-bench-"))
        program = self.workdir / "kh-bench-svc"
        shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
        self.process_name = program.name
        self.process = subprocess.Popen([str(program), "600"])
        (self.workdir / "health").write_text("OK\n")
        self.port = _free_port()
        self.http = subprocess.Popen([PYTHON, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                                      "--directory", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while run_once([PYTHON, "-c", STDLIB_PORT, str(self.port)])[2] != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark's HTTP server did not start")
            time.sleep(0.05)
        self.scripts = {}
        for name, text in (("process", STDLIB_PROCESS), ("process_first", STDLIB_PROCESS_FIRST),
                           ("port", STDLIB_PORT), ("http", STDLIB_HTTP), ("exec", STDLIB_EXEC)):
            path = self.workdir / f"stdlib_{name}.py"
            path.write_text(text)
            self.scripts[name] = str(path)

    def close(self) -> None:
        for proc in (self.process, self.http):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cases(services: Services) -> list[tuple[str, str, list[str]]]:
    """(group, label, argv); the row labelled 'stdlib probe' is each group's reference."""
    name, port = services.process_name, str(services.port)
    url = f"http://127.0.0.1:{port}/health"
    true = shutil.which("true") or "/bin/true"
    rows = [
        ("baseline", "python -c pass", [PYTHON, "-c", "pass"]),
        ("process", "stdlib probe", [PYTHON, services.scripts["process"], name]),
        ("process", "ka-check-process", [str(BIN / "ka-check-process"), name]),
        ("process", "stdlib, first match only", [PYTHON, services.scripts["process_first"], name]),
        ("process", "killall -0", [shutil.which("killall") or "", "-0", name]),
        ("process", "pidof", [shutil.which("pidof") or "", name]),
        ("port", "stdlib probe", [PYTHON, services.scripts["port"], port]),
        ("port", "ka-check-port", [str(BIN / "ka-check-port"), f"127.0.0.1:{port}"]),
        ("port", "ka-check-port --listening", [str(BIN / "ka-check-port"), f"127.0.0.1:{port}", "--listening"]),
        ("port", "check_tcp", [str(PLUGINS / "check_tcp"), "-H", "127.0.0.1", "-p", port]),
        ("http", "stdlib probe", [PYTHON, services.scripts["http"], port]),
        ("http", "ka-check-http", [str(BIN / "ka-check-http"), url]),
        ("http", "check_http", [str(PLUGINS / "check_http"), "-H", "127.0.0.1", "-p", port, "-u", "/health"]),
        ("http", "curl", [shutil.which("curl") or "", "-fsS", "-o", "/dev/null", url]),
        ("exec", "stdlib probe", [PYTHON, services.scripts["exec"], true]),
        ("exec", "ka-check-exec", [str(BIN / "ka-check-exec"), "--", true]),
    ]
    return [(group, label, argv) for group, label, argv in rows if argv[0] and os.access(argv[0], os.X_OK)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="fresh processes per row (default 40)")
    args = parser.parse_args()
    services = Services()
    try:
        rows = cases(services)
        measured = measure_in_turn([argv for _, _, argv in rows], args.runs)
        results = [(group, label, wall, cpu, code) for (group, label, _), (wall, cpu, code) in zip(rows, measured)]
    finally:
        services.close()
    reference = {group: (wall, cpu) for group, label, wall, cpu, _ in results if label == "stdlib probe"}
    print(f"kahooks check cost: median of {args.runs} runs each, rows in turn, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")
    print(f"{'probe':<9} {'program':<27} {'wall ms':>8} {'cpu ms':>7} {'exit':>4} {'vs stdlib':>9} {'cpu vs':>6}")
    verdicts = []
    for group, label, wall, cpu, code in results:
        ratio = cpu_ratio = ""
        if group in reference:
            ratio, cpu_ratio = f"{wall / reference[group][0]:.2f}x", f"{cpu / reference[group][1]:.2f}x"
        print(f"{group:<9} {label:<27} {wall:8.1f} {cpu:7.1f} {code:>4} {ratio:>9} {cpu_ratio:>6}")
        if label.startswith("ka-check") and group in reference:
            verdicts.append((label, wall / reference[group][0]))
    missed = [f"{label} {ratio:.2f}x" for label, ratio in verdicts if ratio > TARGET_RATIO]
    print(f"target: every ka-check within {TARGET_RATIO}x of its stdlib probe: "
          + ("met" if not missed else "MISSED by " + ", ".join(missed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
