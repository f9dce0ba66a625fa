"""Failover outage in the lab: kill -9 haproxy on the MASTER -> the BACKUP answers on the VIP.

Real keepalived pairs in network namespaces (kahooks.lab), one per track-script
configuration, measured in one run: the seeds' `killall -0 haproxy` at interval 1
and 2, `ka-check-process haproxy` at interval 1, and `kahooks serve` (a pidfd
watch writing a track_file keepalived reacts to at once). A client process asks the VIP
every 5 ms; the outage is from the kill to the first answer from the BACKUP.
Each run restores haproxy and waits for the MASTER to take the VIP back.

Run with `./run bench failover` (root). Bounded: --runs kills per configuration.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kahooks.lab.install import ensure_installed, find_checkout
from kahooks.lab.pair import Pair, PairOptions

CONFIGS = [
    ("killall -0 haproxy, interval 2", "killall", 2),
    ("killall -0 haproxy, interval 1", "killall", 1),
    ("ka-check-process haproxy, interval 1", "kahooks", 1),
    ("kahooks serve, track_file", "daemon", 1),
]
SKEW = (256 - 100) / 256 * 1.0  # the BACKUP's skew time (priority 100, advert_int 1)


def measure(bin_dir: Path, check: str, interval: int, runs: int) -> list[float]:
    outages = []
    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-failover-"))
    with Pair(work, bin_dir, PairOptions(tag="khlbench", check=check, interval=interval, notify=False)) as pair:
        prober = pair.start_prober()
        for _ in range(runs):
            pair.wait_answer("lb1", 30)
            time.sleep(2 + random.uniform(0, interval))  # a random phase against the check's schedule
            killed = pair.kill_haproxy("lb1")
            deadline = time.monotonic() + 20
            answered = None
            while answered is None and time.monotonic() < deadline:
                answered = next((stamp for stamp, line in list(prober.lines)
                                 if stamp > killed and line == "lb2"), None)
                time.sleep(0.01)
            if answered is None:
                raise RuntimeError(f"{check}/{interval}: lb2 never answered")
            outages.append(answered - killed)
            pair.start_haproxy("lb1")
    return outages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="kills per configuration (default 5)")
    args = parser.parse_args()
    bin_dir = ensure_installed(find_checkout())
    results = [(label, measure(bin_dir, check, interval, args.runs)) for label, check, interval in CONFIGS]
    reference = statistics.median(results[1][1])
    print(f"failover outage, kill -9 haproxy on the MASTER until the BACKUP answers ({args.runs} runs each; "
          f"VRRP skew for priority 100 is {SKEW:.2f} s, target for the daemon: skew + 0.1 = {SKEW + 0.1:.2f} s)")
    print(f"{'track script':<40} {'median s':>9} {'min s':>7} {'max s':>7} {'vs killall i1':>14}")
    for label, outages in results:
        print(f"{label:<40} {statistics.median(outages):9.3f} {min(outages):7.3f} {max(outages):7.3f} "
              f"{statistics.median(outages) / reference:13.2f}x")
    daemon = results[-1][1]
    print(f"kahooks serve: max {max(daemon):.3f} s against the target {SKEW + 0.1:.2f} s: "
          f"{'met' if max(daemon) <= SKEW + 0.1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
