"""The README's main job: a real keepalived pair fails over, and every notification arrives, timed.

Brings the lab up (two balancers with keepalived, haproxy and kahooks' checks and
notify handler; a client; BIND, SMTP, Slack and rsyslog peers), kills haproxy on
the MASTER with kill -9, and prints what happened with each step's offset; then
starts haproxy again, prints the failback, and tears everything down.
Run as root: `./run demo` (or `kahooks lab demo` from a checkout). `./run demo daemon`
does the same with `kahooks serve` on each balancer: keepalived follows its track
file, and notifications go through keepalived's notify FIFO to the daemon.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from kahooks.lab.install import ensure_installed, find_checkout
from kahooks.lab.netns import LabError, wait_for
from kahooks.lab.pair import VIP, Pair, PairOptions


def timeline(pair: Pair, start: float, until: float) -> list[tuple[float, str, str]]:
    """(time, node, what) for everything seen between start and until, in order."""
    rows: list[tuple[float, str, str]] = []
    for name, stamped in pair.keepalived.items():
        for stamp, line in list(stamped.lines):
            if not start <= stamp <= until:
                continue
            text = line.split(": ", 1)[-1]
            if "now returning" in text or "succeeded" in text and "VRRP_Script" in text \
                    or "kahooks_haproxy" in text:
                rows.append((stamp, name, f"keepalived: {text}"))
            elif "(VI_1) Entering " in text:
                rows.append((stamp, name, f"keepalived: VI_1 -> {text.split('Entering ')[1].split()[0]}"))
    for seen in pair.seen():
        if start <= seen["t"] <= until:
            node = seen.get("node") if seen["kind"] in ("vip", "dns") else "peer"
            rows.append((seen["t"], node or "-", seen["what"]))
    for stamp, host, line in pair.rsyslog.stamped_lines() if pair.rsyslog else []:
        if start <= stamp <= until and 'state="' in line:
            state = line.split('state="')[1].split('"')[0]
            rows.append((stamp, "peer", f"syslog: {host} VI_1 is {state}"))
    return sorted(rows)


def print_timeline(title: str, rows: list[tuple[float, str, str]], start: float) -> None:
    print(f"\n{title}")
    for stamp, node, what in rows:
        print(f"  +{stamp - start:7.3f} s  {node:<5} {what}")


def wait_quietly(test, timeout: float) -> bool:
    """Like wait_for, but a demo goes on (and shows what it saw) when something is late."""
    try:
        wait_for(test, timeout, "", poll=0.05)
    except LabError:
        return False
    return True


def delivered(pair: Pair, after: float, wanted: list[str]) -> bool:
    seen = [entry["what"] for entry in pair.seen() if entry["t"] >= after]
    syslog = [line for stamp, _, line in pair.rsyslog.stamped_lines() if stamp >= after]
    return all(any(fragment in what for what in seen) for fragment in wanted) and len(syslog) >= 2


def main(daemon: bool = False) -> int:
    checkout = find_checkout()
    how = ("`kahooks serve` on each balancer (keepalived tracks its track file; transitions go through the "
           "notify FIFO to the daemon)" if daemon else
           "`ka-check-process haproxy` as the track script, ka-notify as the notify handler")
    print(f"kahooks demo: a keepalived pair in network namespaces (lb1 MASTER, lb2 BACKUP, VIP {VIP}), "
          f"haproxy on the VIP, {how}, notifications to DNS (BIND), email (SMTP), Slack (a local webhook "
          "server) and syslog (rsyslogd).")
    bin_dir = ensure_installed(checkout)
    work = Path(tempfile.mkdtemp(prefix="kahooks-demo-"))
    options = PairOptions(tag="khldemo", check="daemon" if daemon else "kahooks")
    with Pair(work, bin_dir, options) as pair:
        pair.wait_answer("lb1", 30)
        wait_quietly(lambda: any("held by lb1" in e["what"] for e in pair.seen()), 10)
        settled = time.time()
        time.sleep(3)
        quiet = pair.transitions(settled)
        print(f"\nhealthy for 3 s: {len(quiet)} transitions (expected 0)")

        killed = pair.kill_haproxy("lb1")
        pair.wait_answer("lb2", 20)
        wait_quietly(lambda: delivered(pair, killed, ["[lb1] VI_1 is FAULT", "[lb2] VI_1 is MASTER",
                                                            "held by lb2"]), 15)
        rows = timeline(pair, killed, time.time())
        print_timeline("kill -9 haproxy on lb1:", [(killed, "lb1", "haproxy killed (kill -9)")] + rows, killed)
        outage = next((stamp for stamp, _, what in rows if what.startswith("lb2 answers")), None)

        restarted = time.time()
        pair.start_haproxy("lb1")
        pair.wait_answer("lb1", 20)
        wait_quietly(lambda: any(e["what"].startswith("lb1 answers") for e in pair.seen()
                                       if e["t"] >= restarted), 5)
        wait_quietly(lambda: delivered(pair, restarted, ["[lb1] VI_1 is MASTER", "[lb2] VI_1 is BACKUP",
                                                               "held by lb1"]), 15)
        print_timeline("haproxy started again on lb1 (it has the higher priority, so it takes the VIP back):",
                       [(restarted, "lb1", "haproxy started")] + timeline(pair, restarted, time.time()), restarted)
    if outage is not None:
        why = ("detection in milliseconds + VRRP skew 0.61 s" if daemon else
               "detection by a 1 s track script + VRRP skew 0.61 s; `./run demo daemon` removes most of the first")
        print(f"\noutage seen by a client of the VIP: {outage - killed:.3f} s ({why})")
    print(f"lab removed; logs kept in {work}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(daemon=sys.argv[1:] == ["daemon"]))
