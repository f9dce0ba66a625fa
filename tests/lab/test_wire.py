"""The wire observer against real keepalived in network namespaces (issue 27): an nftables rule that
drops VRRP, a VIP added by hand, a foreign keepalived on our VRID, a frozen MASTER with nobody to take
over, advert_int 1 against 2, and a flood of forged adverts. One pair (and a third node) for all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kahooks.lab.netns import Network, Node, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed (./run test installs it)")]

VIP, OTHER_VIP = "192.0.2.100", "192.0.2.200"
KEEPALIVED_CONF = """\
global_defs {{
    router_id {name}
    {fifo}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""
KAHOOKS_TOML = """\
host = "{name}"
spool_dir = "{work}/spool"

[delivery]
flap_window = 0
backoff_initial = 0.2

[serve]
state_dir = "{state}"
notify_fifo = "{state}/notify.fifo"
heartbeat_interval = 0.5

[wire]
keepalived_conf = "{work}/keepalived.conf"

[channels.log]
type = "exec"
command = ["/bin/sh", "-c", "printf '%s\\\\n' \\"$KAHOOKS_BODY\\" >> {work}/alerts.log"]

{alertmanager}
[[rules]]
channels = ["log"{am}]
{checks}"""
# lb1's checks, timed with and without the flood, both run in the daemon's own process: a port that listens
# while the file `up` exists, and an exec check of that file, a command started every interval (through
# kahooks/system/commands.py, which lets go of the GIL while the child execs: tests/faults/test_commands.py).
CHECK_INTERVAL = 0.25
CHECKS = ("up", "exec")
CHECK = f"""
[checks.up]
run = "ka-check-port 127.0.0.1:7007"
interval = {CHECK_INTERVAL}
rise = 1

[checks.exec]
run = ["ka-check-exec", "--", "test", "-e", "{{work}}/up"]
interval = {CHECK_INTERVAL}
rise = 1
"""
SERVICE = """
import os, socket, sys, time
listening = None
while True:
    up = os.path.exists(sys.argv[1])
    if up and listening is None:
        listening = socket.create_server(("127.0.0.1", 7007))
        listening.setblocking(False)
    elif not up and listening is not None:
        listening.close()
        listening = None
    while listening is not None:  # each check's connection taken and closed, as a service does
        try:
            listening.accept()[0].close()
        except BlockingIOError:
            break
    time.sleep(0.005)
"""
# An Alertmanager inside lb2's namespace, on its loopback: lb2's findings fire there and resolve.
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
AM_URL = "http://127.0.0.1:9093"
AM_CHANNEL = f'[channels.am]\ntype = "alertmanager"\nurls = ["{AM_URL}"]\ntimeout = 2\n'

# 3.2 s at up to 10,000 a second, niced: the checks are timed over 2.4 s of it. At least 10,000 must go. The
# 4,096 forged packets (half on our VRID, the rest on random ones, each from a random source: more than the
# picture's bounds) are built first, and the loop only sends them: a sender that built each as it went sent
# 8,000 in 3.2 s on a local CI run's trixie leg, the share of two busy cores a niced process gets. This one loads
# the machine more, since it reaches the rate: a vCPU of the lab VM then stops more often (HEARTBEAT_WATCH).
FLOOD_SECONDS = "3.2"
FLOOD = """
import random, socket, struct, sys, time
from kahooks.system.vrrp_wire import checksum
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
rng = random.Random(7)
per_second, seconds = int(sys.argv[1]), float(sys.argv[2])
packets = []
for _ in range(4096):
    body = struct.pack("!BBBBBBH", 0x21, rng.choice((51, rng.randrange(1, 256))), rng.randrange(1, 255), 1, 0, 1, 0)
    body += bytes((10, rng.randrange(256), rng.randrange(256), 1)) + bytes(8)
    body = body[:6] + struct.pack("!H", checksum(body)) + body[8:]
    source = bytes((10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 255, 112, 0, source,
                         socket.inet_aton("224.0.0.18"))
    packets.append(header + body)
sent, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    for _ in range(per_second // 100):
        raw.sendto(packets[sent % len(packets)], ("224.0.0.18", 0))
        sent += 1
    time.sleep(max(0.0, start + sent / per_second - time.monotonic()))
print(sent)
"""

# What any program on the node pays to run the exec check's command every interval during the flood: the
# exec check's reference, measured beside it. The flood's packets cost the kernel's time on every CPU (a
# softirq per copy, one copy per namespace on the bridge), and a command's start waits for that; a loaded
# machine (CI runs two suites at once) adds its own. Fixed-rate, as the daemon schedules its checks.
EXEC_REFERENCE = """
import json, subprocess, sys, time
path, interval, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
runs, due = [], time.monotonic()
end = due + seconds
while time.monotonic() < end:
    started = time.monotonic()
    healthy = subprocess.run(["test", "-e", path]).returncode == 0
    runs.append((started, time.monotonic(), healthy))
    if len(runs) == 1:
        print("ready", flush=True)
    due = max(due + interval, time.monotonic())
    time.sleep(max(0.0, due - time.monotonic()))
print(json.dumps({"gap": (runs[-1][0] - runs[0][0]) / max(1, len(runs) - 1), "runs": runs}))
"""


def reference_detection(runs: list[list], failed: float) -> float | None:
    """When the bare loop first saw the failure made at `failed` (the same monotonic clock: one kernel),
    counted from it; None when it never ran after it."""
    seen = [ended for started, ended, healthy in runs if started >= failed and not healthy]
    return min(seen) - failed if seen else None


# The machine's own stalls are measured on each CPU by a bare process pinned to it: a process that is not pinned
# wakes on whichever CPU runs, and misses one that stops. Seen here (issue 27, a lab VM of 2 vCPUs): during the
# flood, the process pinned to one vCPU stalled 1 to 3.6 s in 12 of 30 runs while the other's stayed under
# 0.1 s, and perf sampled that vCPU once every 190 ms (at its interrupts' return): the hypervisor was not
# running it. Whatever was current there froze with it; the daemon froze when the thread holding its
# interpreter lock was (each of its stalls matched such a vCPU stall; most vCPU stalls missed it).
HEARTBEAT_WATCH = """
import os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
def longest_stall(end):
    stall, last = 0.0, time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        stall, last = max(stall, now - last - 0.02), now
        yield stall
        time.sleep(0.02)
end = time.monotonic() + seconds
cpus = sorted(os.sched_getaffinity(0))
results, report = os.pipe()
for cpu in cpus:
    if os.fork() == 0:
        os.sched_setaffinity(0, {cpu})
        stall = max(longest_stall(end), default=0.0)
        os.write(report, f"cpu{cpu}:{stall:.3f} ".encode())
        os._exit(0)
stamps, stall = [], 0.0
for stall in longest_stall(end):
    try:
        stamp = float(open(path).read().split()[1])
    except (OSError, IndexError, ValueError):  # between the temp file's rename and nothing: read again
        stamp = None
    if stamp is not None and (not stamps or stamps[-1] != stamp):
        stamps.append(stamp)
stamps.append(time.time())  # the silence since the last beat counts too
for _ in cpus:
    os.wait()
os.close(report)
per_cpu = os.read(results, 4096).decode().split()
node = max([stall] + [float(item.split(":")[1]) for item in per_cpu])
print(max(later - earlier for earlier, later in zip(stamps, stamps[1:])), node, *per_cpu)
"""


class Balancer:
    """keepalived and `kahooks serve` on one node, their files under work/NAME."""

    def __init__(self, node: Node, name: str, work: Path, bin_dir: Path, priority: int, vip: str = VIP,
                 serve: bool = True, alertmanager: bool = False, check: bool = False) -> None:
        self.node, self.name, self.dir, self.bin = node, name, work / name, bin_dir
        self.state_dir = work / "run" / name  # the daemon's state_dir, on the tmpfs `run_on_tmpfs` mounts
        self.priority, self.vip, self.serve, self.alertmanager = priority, vip, serve, alertmanager
        self.check = check
        self.service: subprocess.Popen | None = None
        self.dir.mkdir(parents=True)
        self.keepalived: subprocess.Popen | None = None
        self.daemon: subprocess.Popen | None = None
        node.run(["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"], check=False)

    def write_conf(self, advert_int: int = 1) -> None:
        fifo = f"notify_fifo {self.state_dir}/notify.fifo" if self.serve else ""
        (self.dir / "keepalived.conf").write_text(KEEPALIVED_CONF.format(
            name=self.name, fifo=fifo, priority=self.priority, advert_int=advert_int, vip=self.vip))

    def start(self) -> None:
        self.write_conf()
        if self.serve:
            (self.dir / "kahooks.toml").write_text(KAHOOKS_TOML.format(
                name=self.name, work=self.dir, state=self.state_dir, alertmanager=AM_CHANNEL if self.alertmanager else "",
                am=', "am"' if self.alertmanager else "", checks=CHECK.format(work=self.dir) if self.check else ""))
            (self.dir / "up").touch()
            if self.check:
                self.service = self.node.popen([sys.executable, "-c", SERVICE, str(self.dir / "up")])
            self.start_daemon()
        self.start_keepalived()

    def start_daemon(self) -> None:
        started = time.time()
        self.daemon = self.node.popen([str(self.bin / "kahooks"), "serve", "-c", str(self.dir / "kahooks.toml")],
                                      stdout=open(self.dir / "serve.log", "ab"), stderr=subprocess.STDOUT,
                                      env={**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"})
        heartbeat = self.state_dir / "heartbeat"
        wait_for(lambda: heartbeat.exists() and heartbeat.stat().st_mtime >= started, 20, f"kahooks serve on {self.name}")

    def kill_daemon(self) -> None:
        """SIGKILL to `kahooks serve`: it dies with whatever it had alerted still open."""
        assert self.daemon is not None
        self.node.run(["kill", "-KILL", daemon_pid(self)])
        self.daemon.wait(10)

    def start_keepalived(self) -> None:
        self.keepalived = self.node.popen(
            ["keepalived", "-n", "-l", "-D", "-P", "-f", str(self.dir / "keepalived.conf"), "-p", "/run/keepalived.pid",
             "-r", "/run/vrrp.pid"], stdout=open(self.dir / "keepalived.log", "ab"), stderr=subprocess.STDOUT)

    def stop_keepalived(self) -> None:
        """SIGTERM to keepalived itself (nsenter, the process we started, does not pass signals on)."""
        if self.keepalived is not None and self.keepalived.poll() is None:
            self.node.run(["sh", "-c", "kill -TERM $(cat /run/keepalived.pid)"])
            self.keepalived.wait(10)

    def start_alertmanager(self) -> subprocess.Popen:
        (self.dir / "alertmanager.yml").write_text("route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n")
        process = self.node.popen([ALERTMANAGER, f"--config.file={self.dir / 'alertmanager.yml'}",
                                   f"--storage.path={self.dir / 'alertmanager'}", "--web.listen-address=127.0.0.1:9093",
                                   "--cluster.listen-address=", "--log.level=warn"],
                                  stdout=subprocess.DEVNULL, stderr=open(self.dir / "alertmanager.log", "ab"))
        wait_for(lambda: self.node.fetch(f"{AM_URL}/-/ready"), 30, f"Alertmanager in {self.name}", poll=0.2)
        return process

    def wire_alerts(self) -> dict[str, str]:
        """topic -> state of the KahooksAlerts lb2's Alertmanager holds (resolved ones are not listed)."""
        listed = json.loads(self.node.fetch(f"{AM_URL}/api/v2/alerts") or "[]")
        return {alert["labels"].get("topic", ""): alert["status"]["state"] for alert in listed
                if alert["labels"].get("alertname") == "KahooksAlert"}

    def vrrp_pid(self) -> int:
        return int(self.node.run(["cat", "/run/vrrp.pid"]).stdout.strip())

    def status(self) -> dict:
        try:
            return json.loads((self.state_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def state(self) -> str:
        return self.status().get("instances", {}).get("VI_1", {}).get("state", "")

    def finding(self, kind: str) -> dict | None:
        return next((item for item in self.status().get("wire", {}).get("findings", []) if item["kind"] == kind),
                    None)

    def holds_vip(self) -> bool:
        return self.vip in self.node.addresses()

    def track(self, check: str = "up") -> str:
        try:
            return (self.state_dir / "track" / check).read_text().strip()
        except OSError:
            return ""

    def detection(self) -> tuple[float, dict[str, float]]:
        """When the checks' service failed (`up` removed), and the seconds from then to each track file saying
        so; then back."""
        failed = time.monotonic()
        (self.dir / "up").unlink()
        detected: dict[str, float] = {}

        def all_seen() -> bool:
            detected.update((check, time.monotonic()) for check in CHECKS
                            if check not in detected and self.track(check) == "1")
            return len(detected) == len(CHECKS)

        wait_for(all_seen, 5, "the checks' failure", poll=0.002)
        (self.dir / "up").touch()
        wait_for(lambda: all(self.track(check) == "0" for check in CHECKS), 5, "the checks healthy again", poll=0.002)
        return failed, {check: seen - failed for check, seen in detected.items()}

    def last_run(self, check: str) -> tuple[int, float]:
        """The check's runs so far, and when the last one ran (status.json, written each heartbeat)."""
        state = self.status()["checks"][check]
        return state["runs"], state["last"]["time"]


@contextlib.contextmanager
def run_on_tmpfs(work: Path) -> Iterator[None]:
    """work/run on a tmpfs, as /run (the daemon's state_dir in production) is: on the disk, a rename of
    the heartbeat or status.json waited up to 1.05 s (strace) for ext4's journal while the flood's
    fsyncs and logs kept the shared disk busy, and the heartbeat measured the disk, not the daemon.
    Mounted before the nodes are made: each copies the mount table then (and sees this tmpfs)."""
    (work / "run").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs", str(work / "run")], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(work / "run")], check=False)


def test_the_wire_names_blocked_vrrp_duplicates_collisions_mismatches_and_a_master_gone(
        work: Path, lab_bin: Path) -> None:
    with run_on_tmpfs(work), Network("khlwire") as network:
        lb1 = Balancer(network.add_node("lb1", 11), "lb1", work, lab_bin, 150, check=True)
        lb2 = Balancer(network.add_node("lb2", 12), "lb2", work, lab_bin, 100,
                       alertmanager=os.path.exists(ALERTMANAGER))  # ./run test installs it
        lb3 = Balancer(network.add_node("lb3", 13), "lb3", work, lab_bin, 200, OTHER_VIP, serve=False)
        try:
            if lb2.alertmanager:
                lb2.start_alertmanager()
            lb1.start()
            lb2.start()
            wait_for(lambda: lb1.state() == "MASTER" and lb2.state() == "BACKUP" and lb1.holds_vip(), 20,
                     "lb1 MASTER, lb2 BACKUP")
            time.sleep(1.5)  # deliberate: a calm pair, heard for over an advert interval, has no finding
            assert lb1.status()["wire"]["findings"] == [] == lb2.status()["wire"]["findings"]

            # 1. nftables drops VRRP on lb2's input: lb2 becomes MASTER beside lb1.
            lb2.node.run(["nft", "add table inet khlwire"])
            lb2.node.run(["nft", "add chain inet khlwire input { type filter hook input priority 0 ; }"])
            lb2.node.run(["nft", "add rule inet khlwire input ip protocol vrrp drop"])
            wait_for(lambda: lb2.state() == "MASTER", 10, "lb2 MASTER behind its firewall")
            became_master = lb2.status()["instances"]["VI_1"]["since"]
            blocked = wait_for(lambda: lb2.finding("blocked"), 6, "lb2 to report VRRP blocked")
            assert blocked["since"] - became_master <= 3.3, (blocked, became_master)  # 3 advert intervals
            assert "adverts from 192.0.2.11 at priority 150 (ours 100)" in blocked["sentence"]
            assert "nft table inet khlwire chain input: ip protocol vrrp drop" in blocked["sentence"]
            wait_for(lambda: lb1.finding("two_masters"), 8, "lb1 to hear two masters")
            wait_for(lambda: "VRRP blocked locally" in (lb2.dir / "alerts.log").read_text()
                     if (lb2.dir / "alerts.log").exists() else False, 10, "the alert delivered by lb2's channel")
            if lb2.alertmanager:
                wait_for(lambda: lb2.wire_alerts().get("wire blocked") == "active", 10, "the alert firing in Alertmanager")
            shown = lb2.node.run([str(lab_bin / "kahooks"), "status", "-c", str(lb2.dir / "kahooks.toml")],
                                 check=False).stdout
            print(shown)  # the README's recorded `kahooks status`
            assert "BLOCKED since" in shown and "192.0.2.11 priority 150" in shown, shown
            doctor = lb2.node.run([str(lab_bin / "kahooks"), "doctor", "--live", "--no-keepalived-test",
                                   "-f", str(lb2.dir / "keepalived.conf"), "-c", str(lb2.dir / "kahooks.toml")],
                                  check=False).stdout
            # keepalived's view (MASTER) beside the wire's (lb1 heard at a higher priority): the contradiction.
            live, wire = doctor.index("LIVE VI_1: MASTER"), doctor.index("WIRE (kahooks serve's observer):")
            assert live < wire and "192.0.2.11 priority 150" in doctor[wire:] and "BLOCKED since" in doctor, doctor
            lb2.node.run(["nft", "delete table inet khlwire"])
            wait_for(lambda: lb2.state() == "BACKUP" and not lb2.finding("blocked") and not lb1.finding("two_masters"),
                     10, "the findings to clear once the rule goes")
            # The clearing is delivered too (the alertmanager channel resolves the alert with it).
            wait_for(lambda: "Cleared:   wire: VRRP blocked locally" in (lb2.dir / "alerts.log").read_text(), 10,
                     "the clearing delivered by lb2's channel")
            if lb2.alertmanager:
                wait_for(lambda: "wire blocked" not in lb2.wire_alerts(), 10, "the alert resolved in Alertmanager")

            # 4. lb2 takes lb1's VIP by hand and speaks from it: lb1 hears ARP for its VIP from another MAC.
            lb2.node.add_address(f"{VIP}/32")
            lb2.node.run(["ping", "-c", "1", "-W", "1", "-I", VIP, network.host(13)], check=False)
            duplicate = wait_for(lambda: lb1.finding("duplicate_vip"), 5, "lb1 to report the duplicate VIP")
            assert f"{VIP} is held here, and ARP from" in duplicate["sentence"]
            lb2.node.remove_address(f"{VIP}/32")

            # 3. a third keepalived reuses VRID 51 with another address, and wins the election.
            lb3.start()
            collision = wait_for(lambda: lb2.finding("collision"), 10, "lb2 to report the VRID collision")
            assert f"192.0.2.13 advertises our VRID with addresses {OTHER_VIP}, ours are {VIP}" in collision["sentence"]
            lb3.stop_keepalived()
            wait_for(lambda: lb1.state() == "MASTER" and not lb2.finding("collision"), 10, "lb1 MASTER again")

            # A flood of forged adverts on the segment: lb1's heartbeat keeps its pace, its memory its size, its
            # check its schedule and its detection time. The same measure first without the flood.
            wait_for(lambda: all(lb1.track(check) == "0" for check in CHECKS), 5, "lb1's checks healthy")
            calm = timed_check(lb1, 1.2)
            rss_before = rss(lb1)
            # The heartbeat's gaps by the daemon's own stamps, read on lb1 by a bare Python process that also
            # records its own longest stall: what any process on the node suffered (the machine saturated by the
            # flood, a vCPU descheduled) is not the daemon's. A pytest thread polling the file's mtime counted
            # the pytest process's own stalls as the daemon's.
            heartbeat = lb1.node.popen([sys.executable, "-c", HEARTBEAT_WATCH, str(lb1.state_dir / "heartbeat"), "4.0"],
                                       stdout=subprocess.PIPE, text=True)
            sending = lb3.node.popen(["nice", "-n", "19", sys.executable, "-c", FLOOD, "10000", FLOOD_SECONDS],
                                     stdout=subprocess.PIPE, text=True)
            time.sleep(0.3)  # the flood under way
            # The checks and the bare loop, timed over the same 2.4 s of the flood: a stall of the machine's
            # weighs the same on both means (CI's first measure took the checks' over the first 1.2 s only).
            reference = lb1.node.popen([sys.executable, "-c", EXEC_REFERENCE, str(lb1.dir / "up"), str(CHECK_INTERVAL),
                                        "2.4"], stdout=subprocess.PIPE, text=True)
            assert reference.stdout is not None and reference.stdout.readline() == "ready\n"  # running: it sees the failure
            flooded = timed_check(lb1, 2.4)
            sent = int(sending.communicate(timeout=20)[0] or 0)
            # A loop that printed nothing (it died) leaves the interval as the exec check's reference.
            measured = json.loads(reference.communicate(timeout=20)[0] or '{"runs": []}')
            exec_reference = float(measured.get("gap", CHECK_INTERVAL))
            detection_reference = reference_detection(measured["runs"], flooded["failed"]) or CHECK_INTERVAL
            gap_word, stall_word, *per_cpu = heartbeat.communicate(timeout=20)[0].split()
            daemon_gap, node_stall = float(gap_word), float(stall_word)
            # The flood reached lb1's observer: read, or dropped by the kernel over its budget (its figures reach
            # status.json within a judgement and a heartbeat).
            def heard() -> dict | None:
                seen = lb1.status()["wire"]
                return seen if seen["packets"] + seen["dropped"] >= sent // 2 else None

            assert sent >= 10000, f"the flood's sender sent {sent} adverts in {FLOOD_SECONDS} s"
            wire = wait_for(heard, 5, "lb1's observer to count the flood", poll=0.1)
            print("flood:", sent, "sent;", daemon_gap, node_stall, per_cpu, rss(lb1) - rss_before, wire["packets"],
                  wire["dropped"], "calm:", calm, "flooded:", flooded, "bare loop: gap", exec_reference, "detection",
                  detection_reference)
            assert rss(lb1) - rss_before < 8 * 1024, (rss_before, rss(lb1))  # kB
            assert len(wire["vrids"]) <= 65 and all(len(vrid["sources"]) <= 16 for vrid in wire["vrids"])
            # Written every 0.5 s: a steady heartbeat, within five intervals of the node's own stalls (2.5 s here
            # is the README's guard, --max-age 3 at a 1 s heartbeat, crossed). Each check keeps its interval (the
            # mean gap between its runs, by their own times), and sees a failure about as soon as a bare loop
            # running the exec check's command every interval beside it (EXEC_REFERENCE), over the same 2.4 s
            # of the flood: what the machine costs at that moment (CI runs two suites on two cores; the flood's
            # packets take the kernel's time on every CPU) weighs on both. The exec check's probes are longer
            # and vary more (a child to start and wait for, then a sweep that reads /proc): wider margins.
            # History (issue 27): the observer reading a flood in the daemon's own interpreter handed its lock
            # over at every packet's system call, and the daemon's other threads never got it back: the daemon
            # stalled 2.1 to 3.1 s in 5 of 19 runs. The observer is a process of its own now, one thread
            # (daemon/wire_process.py), niced below the daemon. A run that crosses a bound fails with its
            # figures, once every other step of this test has been asserted.
            pace = max(CHECK_INTERVAL, exec_reference)
            seen = max(CHECK_INTERVAL, detection_reference)
            stalls = [problem for problem, holds in (
                (f"heartbeat gap {daemon_gap:.2f} s (node {node_stall:.2f} s: {' '.join(per_cpu)})",
                 daemon_gap < 2.5 + node_stall),
                (f"up's gap (a bare loop's {exec_reference:.3f} s)", flooded["gap"]["up"] < pace * 1.25 + node_stall / 4),
                (f"up's detection (a bare loop's {detection_reference:.3f} s)",
                 flooded["detection"]["up"] < seen + 0.5 + node_stall),
                (f"exec's gap (a bare loop's {exec_reference:.3f} s)", flooded["gap"]["exec"] < pace * 1.5 + node_stall / 4),
                (f"exec's detection (a bare loop's {detection_reference:.3f} s)",
                 flooded["detection"]["exec"] < seen + 0.75 + node_stall)) if not holds]
            # VRRP has no authentication: keepalived itself may yield to a forged higher priority during the
            # flood (seen with 2.3.3), and takes the VIP back once the forgeries stop. Nothing kahooks does moves it.
            wait_for(lambda: lb1.state() == "MASTER", 10, "lb1 MASTER again after the flood")
            assert not lb1.finding("blocked")

            # 6. the MASTER freezes while the BACKUP's keepalived is stopped: nobody advertises VRID 51.
            lb2.stop_keepalived()
            lb1.node.run(["kill", "-STOP", str(lb1.vrrp_pid())])
            gone = wait_for(lambda: lb2.finding("master_gone"), 10, "lb2 to report the master gone")
            assert "local keepalived is STOP, and nobody took over" in gone["sentence"]
            if lb2.alertmanager:
                wait_for(lambda: lb2.wire_alerts().get("wire master_gone") == "active", 10, "master gone firing")
            # lb2's daemon dies with the alert open, and the master comes back meanwhile: the restarted daemon
            # clears what its previous run left open, once it has heard the wire long enough to judge.
            lb2.kill_daemon()
            lb1.node.run(["kill", "-CONT", str(lb1.vrrp_pid())])
            lb2.start_daemon()
            wait_for(lambda: "Cleared:   wire: master gone" in (lb2.dir / "alerts.log").read_text(), 15,
                     "the clearing of the alert the previous daemon left open")
            if lb2.alertmanager:
                wait_for(lambda: "wire master_gone" not in lb2.wire_alerts(), 10, "master gone resolved")
            assert not lb2.finding("master_gone")

            # 5. lb2 is configured with advert_int 2 against lb1's 1 (and its daemon reloaded).
            lb2.write_conf(advert_int=2)
            lb2.start_keepalived()
            lb2.node.run(["kill", "-HUP", daemon_pid(lb2)])  # SIGHUP: the daemon reads keepalived.conf again
            mismatch = wait_for(lambda: lb2.finding("mismatch"), 10, "lb2 to report the interval mismatch")
            assert "192.0.2.11 sends an advert every 1 s, here 2 s" in mismatch["sentence"]
            for balancer in (lb1, lb2):
                assert "Traceback" not in (balancer.dir / "serve.log").read_text()
            assert not stalls, (f"the daemon under the flood: {', '.join(stalls)}; calm {calm}, flooded {flooded}, "
                                f"a bare loop's exec gap {exec_reference:.3f} s")
        finally:
            for balancer in (lb1, lb2, lb3):
                for process in (balancer.keepalived, balancer.daemon, balancer.service):
                    if process is not None and process.poll() is None:
                        process.kill()
                        process.wait(5)


def timed_check(balancer: Balancer, seconds: float) -> dict[str, Any]:
    """For about `seconds`: the mean gap between each check's runs, its detection time of a failure, and the
    moment of that failure."""
    before = {check: balancer.last_run(check) for check in CHECKS}
    failed, detection = balancer.detection()
    wait_for(lambda: all(balancer.last_run(check)[1] - since >= seconds for check, (_, since) in before.items()), 5,
             "the checks' runs", poll=0.05)
    gap = {}
    for check, (runs, since) in before.items():
        later, until = balancer.last_run(check)
        gap[check] = (until - since) / max(1, later - runs)
    return {"gap": gap, "detection": detection, "failed": failed}


def daemon_pid(balancer: Balancer) -> str:
    """The pid of `kahooks serve` in the node's own pid namespace (nsenter, which we started, is its parent)."""
    return balancer.node.run(["pgrep", "-f", "kahooks serve"]).stdout.split()[0]


def observer_pid(balancer: Balancer) -> str:
    """The pid of the daemon's wire observer, a process of its own (daemon/wire_process.py)."""
    return balancer.node.run(["pgrep", "-f", "kahooks.daemon.wire_process"]).stdout.split()[0]


def rss(balancer: Balancer) -> int:
    """The daemon's resident memory with its observer's, in kB."""
    total = 0
    for pid in (daemon_pid(balancer), observer_pid(balancer)):
        status = balancer.node.run(["cat", f"/proc/{pid}/status"]).stdout
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return total
