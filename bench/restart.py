"""A killed `kahooks serve` under systemd, against the heartbeat guard that would fault the node.

The Debian package is installed in a fresh Debian root (`./run fresh-root`), booted with systemd in
systemd-nspawn inside a lab node's network, with kahooks.service and keepalived.service enabled and
the packaged haproxy-pair-daemon.conf as it ships (a stand-in haproxy). The daemon is killed with
SIGKILL --kills times; each time: how long until systemd's restart has written a fresh heartbeat,
against the guard's limit (ka-check-heartbeat --max-age 3, run every 2 s by keepalived), and whether
keepalived entered FAULT (the VIP moved) meanwhile. Target: no FAULT; restart well under 3 s.

Run with `./run bench restart` (root; downloads Debian packages into the fresh root). Bounded:
--kills restarts, each followed by --settle seconds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from kahooks.lab.netns import Network, wait_for
from tests.lab.booted import VIP, Booted, prepare_daemon_boot, write_standin
from tests.lab.packaging import CHECKOUT, System, build_package

GUARD_MAX_AGE = 3.0  # the packaged haproxy-pair-daemon.conf's chk_kahooks_alive


def prepare(work: Path) -> System:
    deb = build_package(work)
    made = subprocess.run(["bash", str(CHECKOUT / "run"), "fresh-root", str(work / "root"), str(deb), "systemd-sysv"],
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise SystemExit(f"./run fresh-root failed: {made.stderr[-500:]}")
    root = System(work / "root")
    installed = root.run(["apt-get", "install", "-y", "-qq", f"/tmp/{deb.name}", "systemd-sysv"], timeout=600)
    if installed.returncode != 0:
        raise SystemExit(f"apt-get install failed: {installed.stderr[-500:]}")
    write_standin(root)
    prepare_daemon_boot(root)
    return root


def main_pid(booted: Booted) -> str:
    return booted.run("systemctl", "show", "-p", "MainPID", "--value", "kahooks").stdout.strip()


def beat(booted: Booted) -> float:
    """When the daemon last wrote its heartbeat ("PID TIME"), 0 when there is none yet."""
    try:
        return float((booted.text("/run/kahooks/heartbeat") or "0 0").split()[1])
    except (IndexError, ValueError):
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--settle", type=float, default=4.0, help="seconds watched after each restart")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-restart-"))
    try:
        root = prepare(work)
        with Network("khlbrst") as net:
            node = net.add_node("lb", 14, own_pids=False)
            net.add_link("lb")
            with Booted(root.root, network_namespace=node.namespace) as booted:
                booted.run("systemd-run", "--unit=haproxy", "/usr/local/bin/standin", "/run/haproxy.pid")
                wait_for(lambda: VIP in node.addresses(), 20, "the VIP")
                faults_before = booted.journal("keepalived").count("Entering FAULT STATE")
                restarts, lost = [], 0
                for _ in range(args.kills):
                    old = main_pid(booted)
                    booted.run("systemctl", "kill", "-s", "KILL", "kahooks")
                    killed, killed_at = time.monotonic(), time.time()
                    wait_for(lambda: beat(booted) > killed_at and main_pid(booted) not in ("0", old),  # noqa: B023
                             15, "a fresh heartbeat from the restarted daemon", poll=0.02)
                    restarts.append(time.monotonic() - killed)
                    time.sleep(args.settle)  # deliberate: the window in which a FAULT would show
                    lost += VIP not in node.addresses()
                faults = booted.journal("keepalived").count("Entering FAULT STATE") - faults_before
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"kahooks serve killed {args.kills} times under systemd (Restart=always, RestartSec=1s)")
    print(f"  kill -> fresh heartbeat  {statistics.median(restarts):.2f} s median, {max(restarts):.2f} s max; "
          f"the guard's limit (reference): {GUARD_MAX_AGE:.1f} s ({max(restarts) / GUARD_MAX_AGE:.2f}x at worst)")
    print(f"  keepalived FAULTs        {faults} (target 0); VIP missing after {lost} of {args.kills} restarts")


if __name__ == "__main__":
    main()
