"""Faults on the failover path: a wrong or stale track file is an outage, a busy daemon is a risk.

Each test drives the installed `kahooks serve` as a process, as systemd would.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from kahooks.lab.netns import wait_for
from tests.support.programs import running
from tests.support.serve import Served, Service, head, heartbeat_gaps, svc_check

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def test_a_failed_pidfile_check_probes_once_an_interval_and_stays_idle(tmp_path: Path, service: Service) -> None:
    """kill -9 leaves the pidfile behind: reading it must not wake the check again (it did, at a full core)."""
    service.start()
    config = head(tmp_path) + svc_check(service).replace("interval = 60", "interval = 1")
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "0")
        service.kill()  # the pidfile stays, naming a dead pid
        served.wait_track("svc", "1", timeout=2)
        time.sleep(0.5)  # deliberate: let the failure's own burst pass, then measure a quiet window of 3 s
        pid = served.process.pid
        cpu_before, runs_before = cpu_seconds(pid), served.runs("svc")
        time.sleep(3)  # the measuring window
        cpu_used, runs = cpu_seconds(pid) - cpu_before, served.runs("svc") - runs_before
    assert runs <= 5, f"{runs} probes in 3 s at interval 1"
    assert cpu_used < 0.3, f"{cpu_used:.2f} s of CPU in 3 s while failed"


def test_rise_counts_probes_an_interval_apart_after_a_restart(tmp_path: Path, service: Service) -> None:
    service.start()
    config = head(tmp_path) + svc_check(service).replace("interval = 60", "interval = 1\nrise = 2")
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "0")
        service.kill()
        served.wait_track("svc", "1", timeout=2)
        time.sleep(0.3)  # deliberate: the restart comes well after the failed probe, not in the same interval
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


def notify_config(tmp_path: Path, command: str) -> str:
    from tests.support.serve import fifo_config

    return fifo_config(tmp_path, command)


def write_fifo(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def test_fifo_and_delivery_survive_a_spool_that_breaks_for_a_while(tmp_path: Path) -> None:
    """A transient error used to end the FIFO and delivery threads for good while status said running."""
    out = tmp_path / "delivered"
    with Served(tmp_path, notify_config(tmp_path, f'echo "$KAHOOKS_STATE" >> {out}')) as served:
        spool = tmp_path / "spool"
        incoming, queue = spool / "incoming", spool / "queue"
        os.rename(incoming, tmp_path / "incoming.away")
        os.rename(queue, tmp_path / "queue.away")
        incoming.write_text("not a directory")
        queue.write_text("not a directory")
        write_fifo(served.state / "notify.fifo", 'INSTANCE "VI_1" MASTER 100')
        # The line waits in memory; recording it fails and is retried.
        wait_for(lambda: served.log_text().count("fifo: cannot record") >= 2, 10, "two failed recordings")
        incoming.unlink()
        os.rename(tmp_path / "incoming.away", incoming)
        # The line is recorded once incoming/ is back (a write makes only the folders it needs, since the
        # event path's one-way rework); each pass over the queue still fails while queue/ is a file, and is
        # retried, in one line each, no traceback.
        wait_for(lambda: served.log_text().count("cannot read its queue") >= 2, 10, "failures retried")
        queue.unlink()
        os.rename(tmp_path / "queue.away", queue)
        wait_for(lambda: out.exists() and out.read_text().split() == ["MASTER"], 20, "MASTER delivered")
        write_fifo(served.state / "notify.fifo", 'INSTANCE "VI_1" BACKUP 90')
        wait_for(lambda: out.read_text().split() == ["MASTER", "BACKUP"], 10, "BACKUP delivered afterwards")
        threads = json.loads((served.state / "status.json").read_text())["threads"]
        assert threads["fifo"]["state"] == "running" and threads["delivery"]["state"] == "running", threads
    log = served.log_text()
    assert "cannot record" in log and "cannot read its queue" in log and "Traceback" not in log, log


def test_a_reload_while_a_delivery_waits_does_not_stall_the_heartbeat(tmp_path: Path) -> None:
    with Served(tmp_path, notify_config(tmp_path, "sleep 6")) as served:
        write_fifo(served.state / "notify.fifo", 'INSTANCE "VI_1" MASTER 100')
        # running() reads /proc without an exists-then-read race (a CI run lost a process in between).
        wait_for(lambda: running("sleep 6"), 5, "the delivery to start")
        served.signal(1)  # SIGHUP, a valid configuration
        gaps = served.heartbeat_gaps(4)
        assert gaps and max(gaps) < 1.0, f"heartbeat gaps {gaps}"
        assert "reloaded" in served.log_text()


def test_a_daemon_that_cannot_write_its_state_or_spool_refuses_to_start(tmp_path: Path) -> None:
    from tests.support.programs import run

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for where in ("state_dir", "spool_dir"):
        config = tmp_path / f"{where}.toml"
        text = head(tmp_path)
        text = text.replace(f'state_dir = "{tmp_path}/state"', f'state_dir = "{blocker}/state"') \
            if where == "state_dir" else text.replace(f'spool_dir = "{tmp_path}/spool"', f'spool_dir = "{blocker}/spool"')
        config.write_text(text)
        result = run("kahooks", "serve", "-c", str(config), timeout=10)
        assert result.code == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"cannot write in {where}" in lines[0], result.stderr


class Poked:
    name = "fake"

    def __init__(self) -> None:
        import threading

        self.reasons: list[str] = []
        self.event = threading.Event()

    def poke(self, reason: str) -> None:
        self.reasons.append(reason)
        self.event.set()


def test_the_pidfd_watcher_survives_an_error_and_still_hears_deaths() -> None:
    import subprocess

    from kahooks.daemon.runner import ProcessWatcher

    watcher = ProcessWatcher()
    try:
        broken, healthy = Poked(), Poked()
        with watcher.lock:
            watcher.by_fd[-1] = (broken, 1)  # a watched check, poked when the loop recovers
            watcher.epoll.close()  # the next wait raises: the loop's error path
        watcher._nudge()
        assert broken.event.wait(2) and watcher.thread.is_alive() and watcher.failures >= 1
        process = subprocess.Popen(["sleep", "30"])
        assert watcher.watch(healthy, [process.pid])
        process.kill()
        process.wait()
        assert healthy.event.wait(2) and healthy.reasons == [f"pid {process.pid} exited"]
    finally:
        watcher.stop()


def test_a_storm_of_signals_never_deadlocks_the_main_loop(tmp_path: Path, service: Service) -> None:
    """A signal handler that takes a lock (threading.Event.set) can deadlock the main thread that
    holds it: seen once in CI as a reload that never came. SIGHUPs at random moments, then the
    daemon must still beat and stop on SIGTERM."""
    import random
    import signal

    service.start()
    config = head(tmp_path) + svc_check(service)
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "0")
        for _ in range(400):
            served.signal(signal.SIGHUP)
            time.sleep(random.uniform(0, 0.004))
        beat = time.time()
        wait_for(lambda: served.heartbeat() > beat, 5, "a heartbeat after the storm")
        assert served.stop(timeout=10) == 0


def test_a_burst_of_reloads_keeps_the_heartbeats_cadence(tmp_path: Path, service: Service) -> None:
    """Each early wake of the main loop (a signal) moved the next beat an interval further: 25 SIGHUPs,
    each heard on its own, put it 25 intervals (5 s) away, and the heartbeat guard (--max-age) would have
    failed a node that only reloaded. Seen in CI as the storm test above waiting 5 s for a beat, whenever
    the daemon had heard the storm's last signal before the test looked."""
    import signal

    service.start()
    with Served(tmp_path, head(tmp_path) + svc_check(service)) as served:
        served.wait_track("svc", "0")
        for _ in range(25):
            served.signal(signal.SIGHUP)
            time.sleep(0.04)  # each heard by itself: a wake and a reload apiece
        wait_for(lambda: served.log_text().count("reloaded ") >= 25, 10, "the 25 reloads")
        gaps = served.heartbeat_gaps(1.5)
        assert len(gaps) >= 5 and max(gaps) < 0.5, gaps  # every 0.2 s, as before the burst
        assert served.stop(timeout=10) == 0


def test_a_reload_that_shortens_the_heartbeat_interval_beats_at_the_new_one_at_once(tmp_path: Path,
                                                                                   service: Service) -> None:
    """The next beat was planned at the old interval: lowering heartbeat_interval from 5 s to 0.2 s by a
    reload left one gap of up to 5 s, and a heartbeat guard whose --max-age followed the new interval would
    have failed the node."""
    import signal

    service.start()
    slow = head(tmp_path).replace("heartbeat_interval = 0.2", "heartbeat_interval = 5") + svc_check(service)
    with Served(tmp_path, slow) as served:
        served.wait_track("svc", "0")
        served.config.write_text(slow.replace("heartbeat_interval = 5", "heartbeat_interval = 0.2"))
        served.signal(signal.SIGHUP)
        wait_for(lambda: "reloaded " in served.log_text(), 10, "the reload")
        gaps = served.heartbeat_gaps(1.5)
        assert len(gaps) >= 4 and max(gaps) < 0.5, gaps  # every 0.2 s from the reload on
        assert served.stop(timeout=10) == 0


SLOW_STATUS = """
import sys, time
from kahooks.daemon import reporting, service
held = open(sys.argv[2], "w")
def slow_write(daemon, last=False):
    held.write("held\\n"); held.flush()
    time.sleep(3)
reporting.write_status = slow_write
sys.exit(service.Daemon(sys.argv[1]).run())
"""


def test_the_heartbeat_keeps_its_cadence_while_status_json_is_slow_to_build(tmp_path: Path) -> None:
    """status.json and the metrics textfile are O(checks + wire sources); under a forged VRRP flood a stall
    dump caught the main loop building the status a second after its beat. The heartbeat's loop only asks
    for the write now: writes held 3 s each delay no beat. (The slow write is injected into a real
    `kahooks serve` process, as no real peer makes it slow on demand.)"""
    import signal
    import subprocess
    import sys

    config = tmp_path / "kahooks.toml"
    config.write_text(head(tmp_path, 'metrics_textfile = "' + str(tmp_path / "kahooks.prom") + '"\n'))
    held = tmp_path / "held"
    daemon = subprocess.Popen([sys.executable, "-c", SLOW_STATUS, str(config), str(held)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    heartbeat = tmp_path / "state" / "heartbeat"
    try:
        wait_for(lambda: held.exists() and held.read_text() and heartbeat.exists(), 10, "a status write to be held")
        gaps = heartbeat_gaps(heartbeat, 2.0)  # the first write is held all along
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
    assert len(gaps) >= 7 and max(gaps) < 0.5, gaps  # every 0.2 s, while a write is held 3 s
