"""Faults on the failover path: a wrong or stale track file is an outage, a busy daemon is a risk.

Each test drives the installed `kahooks serve` as a process, as systemd would.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from kahooks.lab.netns import wait_for
from tests.support.serve import Served, Service, head, service, svc_check  # noqa: F401 (fixture)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def runs_of(served: Served, check: str) -> int:
    return json.loads((served.state / "status.json").read_text())["checks"][check]["runs"]


def test_a_failed_pidfile_check_probes_once_an_interval_and_stays_idle(tmp_path: Path, service: Service) -> None:
    """kill -9 leaves the pidfile behind: reading it must not wake the check again (it did, at a full core)."""
    service.start()
    config = head(tmp_path) + svc_check(service).replace("interval = 60", "interval = 1")
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "0")
        service.kill()  # the pidfile stays, naming a dead pid
        served.wait_track("svc", "1", timeout=2)
        time.sleep(0.5)
        pid = served.process.pid
        cpu_before, runs_before = cpu_seconds(pid), runs_of(served, "svc")
        time.sleep(3)
        cpu_used, runs = cpu_seconds(pid) - cpu_before, runs_of(served, "svc") - runs_before
    assert runs <= 5, f"{runs} probes in 3 s at interval 1"
    assert cpu_used < 0.3, f"{cpu_used:.2f} s of CPU in 3 s while failed"


def test_rise_counts_probes_an_interval_apart_after_a_restart(tmp_path: Path, service: Service) -> None:
    service.start()
    config = head(tmp_path) + svc_check(service).replace("interval = 60", "interval = 1\nrise = 2")
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "0")
        service.kill()
        served.wait_track("svc", "1", timeout=2)
        time.sleep(0.3)
        restarted = time.monotonic()
        service.start()  # one pidfile write: several inotify events, one good result
        healthy_at = served.wait_track("svc", "0", timeout=4)
    assert healthy_at - restarted >= 0.8, f"healthy {healthy_at - restarted:.3f} s after the restart with rise = 2"


def test_a_deleted_or_edited_track_file_is_written_again(tmp_path: Path, service: Service) -> None:
    """keepalived reads a missing track file as 0: healthy. A node whose check failed must not look healthy."""
    config = head(tmp_path) + svc_check(service)  # the service never started: failed
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "1")
        track = served.state / "track" / "svc"
        track.unlink()
        served.wait_track("svc", "1", timeout=2)
        track.write_text("0\n")
        served.wait_track("svc", "1", timeout=2)
