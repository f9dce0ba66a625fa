"""The wire observer's cost, next to the daemon's own idle cost, measured in the same run (issue 27).

In a lab network (namespaces, tag khlwbench) one node runs `kahooks serve` with no checks and a
keepalived.conf naming VRID 51 on eth0; another node sends VRRPv2 adverts for it at a fixed rate.
1. The daemon idle with [wire] off: CPU share of one core, resident memory.
2. The same daemon with the observer on and nothing to hear: the observer's idle cost.
3. The observer on with --rate adverts a second: CPU per advert, and the share of a core at one
   advert a second per VRID (idle + one advert). Target: under 0.1 % of a core.
Prints figures only. Run as root: `./run bench wire [--seconds S] [--rate N]`. Bounded: each
window lasts --seconds, the sender stops after its window.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kahooks.lab.netns import Network, Node, wait_for

BIN = Path(sys.executable).parent
KEEPALIVED_CONF = """\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.0.2.100/24
    }
}
"""
TOML = """\
spool_dir = "{work}/spool"
[serve]
state_dir = "{work}/state"
[wire]
enabled = {enabled}
keepalived_conf = "{work}/keepalived.conf"
"""
SEND = """
import socket, struct, sys, time
from kahooks.system.vrrp_wire import checksum
body = struct.pack("!BBBBBBH", 0x21, 51, 150, 1, 0, 1, 0) + socket.inet_aton("192.0.2.100") + bytes(8)
body = body[:6] + struct.pack("!H", checksum(body)) + body[8:]
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
sent, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    sock.sendto(body, ("224.0.0.18", 0))
    sent += 1
    time.sleep(max(0.0, start + sent / rate - time.monotonic()))
print(sent)
"""


def cpu_and_rss(node: Node, pid: str) -> tuple[float, int]:
    """CPU seconds the daemon's threads and its wire observer's process have run (schedstat: nanoseconds, not
    sampled ticks), and their RSS in kB."""
    family = f"{pid} $(pgrep -P {pid} -f kahooks.daemon.wire_process)"
    script = (f"for p in {family}; do cat /proc/$p/task/*/schedstat; done | awk '{{s += $1}} END {{print s}}'; "
              f"for p in {family}; do grep VmRSS: /proc/$p/status; done | awk '{{s += $2}} END {{print s}}'")
    ran, rss = node.run(["sh", "-c", script]).stdout.splitlines()[:2]
    return int(ran) / 1e9, int(rss)


def serve(node: Node, work: Path, enabled: bool) -> tuple[subprocess.Popen, str]:
    (work / "kahooks.toml").write_text(TOML.format(work=work, enabled=str(enabled).lower()))
    process = node.popen([str(BIN / "kahooks"), "serve", "-c", str(work / "kahooks.toml")],
                         stdout=open(work / "serve.log", "ab"), stderr=subprocess.STDOUT,
                         env={**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"})
    wait_for(lambda: (work / "state" / "status.json").exists(), 20, "kahooks serve to start")
    time.sleep(1.0)  # deliberate: start-up (imports, first status) is not idle cost
    pid = wait_for(lambda: node.run(["pgrep", "-f", "kahooks serve"], check=False).stdout.split(), 5, "its pid")[0]
    return process, pid


def window(node: Node, pid: str, seconds: float, during: subprocess.Popen | None = None) -> tuple[float, int]:
    """CPU seconds used over `seconds`, and the RSS at the end."""
    before, _ = cpu_and_rss(node, pid)
    time.sleep(seconds)
    if during is not None:
        during.wait(seconds + 10)
    after, rss = cpu_and_rss(node, pid)
    return after - before, rss


def stop(node: Node, process: subprocess.Popen, pid: str) -> None:
    node.run(["kill", "-TERM", pid], check=False)
    process.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measuring window")
    parser.add_argument("--rate", type=int, default=500, help="adverts a second in window 3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kahooks-bench-wire-") as directory, Network("khlwbench") as network:
        work = Path(directory)
        (work / "keepalived.conf").write_text(KEEPALIVED_CONF)
        node, sender = network.add_node("obs", 11), network.add_node("snd", 12)
        sender.run(["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"])

        process, pid = serve(node, work, enabled=False)
        off_cpu, off_rss = window(node, pid, args.seconds)
        stop(node, process, pid)

        process, pid = serve(node, work, enabled=True)
        idle_cpu, idle_rss = window(node, pid, args.seconds)
        sending = sender.popen([sys.executable, "-c", SEND, str(args.rate), str(args.seconds)],
                               stdout=subprocess.PIPE, text=True)
        busy_cpu, busy_rss = window(node, pid, args.seconds, sending)
        sent = int((sending.stdout.read() if sending.stdout else "0").strip() or 0)
        stop(node, process, pid)

    seconds = args.seconds
    observer_idle = (idle_cpu - off_cpu) / seconds
    per_advert = (busy_cpu - idle_cpu) / max(1, sent)
    print(f"daemon idle, [wire] off:        {100 * off_cpu / seconds:.3f} % of a core, RSS {off_rss / 1024:.1f} MB")
    print(f"daemon idle, observer on:       {100 * idle_cpu / seconds:.3f} % of a core, RSS {idle_rss / 1024:.1f} MB"
          f"  (observer idle: {100 * observer_idle:+.3f} %)")
    print(f"observer at {sent / seconds:.0f} adverts/s:    {100 * busy_cpu / seconds:.3f} % of a core, "
          f"RSS {busy_rss / 1024:.1f} MB, {1e6 * per_advert:.1f} us CPU per advert ({sent} adverts)")
    print(f"observer at 1 advert/s per VRID: {100 * (observer_idle + per_advert):.3f} % of a core "
          "(idle + one advert a second; target < 0.1 %)")


if __name__ == "__main__":
    main()
