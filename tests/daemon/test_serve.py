"""`kahooks serve` as a process: real services, real files, real signals."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

from kahooks.lab.netns import free_port, wait_for
from tests.support.programs import run
from tests.support.serve import KeepalivedFifo, Served, Service, fifo_config, head, svc_check, write_fifo


def test_pidfile_service_death_and_restart_are_heard_without_polling(tmp_path: Path, service: Service) -> None:
    service.start()
    config = head(tmp_path) + svc_check(service, "sleep ")
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "0")
        service.kill()
        served.wait_track("svc", "1", timeout=2)
        service.start()
        served.wait_track("svc", "0", timeout=2)
        assert served.stop() == 0
    log = served.log_text()
    # Heard between the kill and the test's reaping of it, the pid is still a zombie.
    assert "check svc FAILED: pid" in log and ("is not running" in log or "is a zombie" in log)
    assert "Traceback" not in log


def text_of(path: Path) -> str | None:
    """A file's text, None while it does not exist yet (a wait must not end on that)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def test_a_maintenance_file_drains_every_check_at_once_and_back(tmp_path: Path, service: Service) -> None:
    service.start()
    maintenance = tmp_path / "run" / "maintenance"
    config = head(tmp_path, f'maintenance_file = "{maintenance}"\n') + svc_check(service) + f"""
[checks.other]
run = "ka-check-exec -- true"
interval = 60
track_file = "{tmp_path}/other.track"
fail_value = -254
"""
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "0")
        maintenance.write_text("")
        served.wait_track("svc", "1", timeout=1)
        wait_for(lambda: text_of(tmp_path / "other.track") == "-254\n", 1, "the other check drained")
        # status.json is written just after the track files: wait for it rather than race it
        wait_for(lambda: "drained" in run("kahooks", "status", "-c", str(served.config)).stdout, 3,
                 "kahooks status to say drained")
        status = run("kahooks", "status", "-c", str(served.config))
        assert status.code == 1 and "drained" in status.stdout and "maintenance" in status.stdout, status
        maintenance.unlink()
        served.wait_track("svc", "0", timeout=1)
        wait_for(lambda: text_of(tmp_path / "other.track") == "0\n", 1, "the other check back")


def test_systemd_hears_ready_once_every_track_file_holds_its_first_verdict(tmp_path: Path, service: Service) -> None:
    """Type=notify: keepalived, ordered after kahooks.service, starts at READY=1, and drops a track_file
    whose directory is missing when it starts. So READY comes after the FIFO and every check's first
    track file (a slow check's too); STOPPING=1 when it stops."""
    import socket

    service.start()
    config = head(tmp_path, f'notify_fifo = "{tmp_path}/state/notify.fifo"\n') + svc_check(service) + """
[checks.slow]
run = "ka-check-exec -- sleep 0.3"
interval = 60
"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(tmp_path / "notify.sock"))
        systemd.settimeout(20)
        served = Served(tmp_path, config).start(wait=False, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        try:
            ready = systemd.recv(4096).decode()
            at_ready = {name: served.track(name) for name in ("svc", "slow")}
            assert ready == "READY=1\nSTATUS=serving 2 checks", ready
            # Written, whatever the verdict (a cold first `sleep 0.3` may overrun its timeout): not missing.
            assert at_ready["svc"] == "0" and at_ready["slow"] in ("0", "1"), at_ready
            assert (served.state / "notify.fifo").is_fifo()
        finally:
            served.stop()
        assert systemd.recv(4096).decode() == "STOPPING=1"


FIFO_LINES = [
    'INSTANCE "VI_1" MASTER 100',
    'GROUP "G1" MASTER 0',
    "not a keepalived line at all",
    'VS [192.168.201.15]:tcp:80 UP',
    'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100',
    'INSTANCE "VI_1" BACKUP 50',
    'INSTANCE "VI_2" FAULT 0',
]


def delivered(tmp_path: Path) -> list[str]:
    try:
        return (tmp_path / "delivered").read_text().splitlines()
    except FileNotFoundError:
        return []


def test_the_fifo_is_read_in_order_and_followed_when_keepalived_replaces_it(tmp_path: Path) -> None:
    with Served(tmp_path, fifo_config(tmp_path)) as served:
        fifo = served.state / "notify.fifo"
        assert fifo.is_fifo()  # made by the daemon, before keepalived, so keepalived never unlinks it
        write_fifo(fifo, FIFO_LINES)
        # The LVS line is an event too (a virtual server's quorum), named as keepalived names it.
        expected = ["VI_1 MASTER", "G1 MASTER", "[192.168.201.15]:tcp:80 UP", "VI_1 MASTER_RX_LOWER_PRI",
                    "VI_1 BACKUP", "VI_2 FAULT"]
        wait_for(lambda: sorted(delivered(tmp_path)) == sorted(expected), 10,
                 f"{expected} delivered (have {delivered(tmp_path)})")
        # In keepalived's order within each instance (instances are independent of each other).
        for instance in ("VI_1", "G1", "VI_2", "[192.168.201.15]:tcp:80"):
            assert [line for line in delivered(tmp_path) if line.startswith(instance + " ")] == \
                [line for line in expected if line.startswith(instance + " ")]
        # A keepalived that made the FIFO itself unlinks it on reload and makes a new one.
        fifo.unlink()
        os.mkfifo(fifo)
        keepalived = KeepalivedFifo(fifo)
        try:
            keepalived.write(['INSTANCE "VI_1" MASTER 100'])
            wait_for(lambda: delivered(tmp_path)[-1:] == ["VI_1 MASTER"], 10, "the line in the new FIFO delivered")
        finally:
            keepalived.close()
        assert "was replaced; reopening" in served.log_text()
        status = json.loads(run("kahooks", "status", "--json", "-c", str(served.config)).stdout)
        assert [(item["name"], item["state"]) for item in status["transitions"]][:2] == \
            [("VI_1", "MASTER"), ("G1", "MASTER")]


def test_sigterm_reads_the_last_stop_lines_and_keeps_what_is_undelivered(tmp_path: Path) -> None:
    # The channel fails every time: what it was given must stay in the spool.
    served = Served(tmp_path, fifo_config(tmp_path, command="exit 1")).start()
    try:
        fifo = served.state / "notify.fifo"
        write_fifo(fifo, ['INSTANCE "VI_1" MASTER 100'])
        wait_for(lambda: "not delivered" in served.log_text(), 10, "a failed attempt")
        served.signal(signal.SIGTERM)
        wait_for(lambda: "stopping:" in served.log_text(), 5, "the daemon to begin stopping")
        write_fifo(fifo, ['INSTANCE "VI_1" STOP 0'])  # keepalived writes STOP after signalling its reader
        stopped = time.monotonic()
        assert served.process.wait(10) == 0
        assert time.monotonic() - stopped < 5
    finally:
        served.stop()
    queued = sorted((tmp_path / "spool" / "queue" / "log").glob("*.json"))
    states = [json.loads(path.read_text())["event"]["state"] for path in queued]
    assert "MASTER" in states and "STOP" in states, states


def test_sighup_applies_a_valid_config_and_refuses_an_invalid_one(tmp_path: Path, service: Service) -> None:
    service.start()
    base = head(tmp_path) + svc_check(service)
    with Served(tmp_path, base) as served:
        served.wait_track("svc", "0")
        served.config.write_text(base + '\n[checks.more]\nrun = "ka-check-exec -- false"\n')
        served.signal(signal.SIGHUP)
        served.wait_track("more", "1")
        served.config.write_text(base + '\n[checks.broken]\nrun = "ka-check-port nowhere"\n')
        served.signal(signal.SIGHUP)
        wait_for(lambda: "still running the previous configuration" in served.log_text(), 5, "the refusal")
        assert "checks.broken.run: ka-check-port: HOST:PORT 'nowhere': missing :PORT" in served.log_text()
        # The old configuration still works: the svc check still hears a death at once.
        service.kill()
        served.wait_track("svc", "1", timeout=2)
        assert served.track("broken") is None and served.process.poll() is None
        assert served.stop() == 0


def test_a_crash_leaves_a_stale_heartbeat_the_guard_catches_and_a_restart_rewrites_the_truth(
        tmp_path: Path, service: Service) -> None:
    service.start()
    config = head(tmp_path) + svc_check(service)
    heartbeat = str(tmp_path / "state" / "heartbeat")
    served = Served(tmp_path, config).start()
    try:
        served.wait_track("svc", "0")
        assert run("ka-check-heartbeat", heartbeat, "--max-age", "1").code == 0
        served.process.kill()
        served.process.wait()
        service.kill()  # dies while nobody watches: the track file still says healthy
        assert served.track("svc") == "0"
        guard = wait_for(lambda: (outcome := run("ka-check-heartbeat", heartbeat, "--max-age", "1")).code == 1
                         and outcome, 5, "the heartbeat to grow older than 1 s")
        assert "the daemon is dead or stuck" in guard.line, guard
        assert run("kahooks", "status", "-c", str(served.config)).code == 1
        served.start()  # what systemd's Restart=always does
        served.wait_track("svc", "1", timeout=2)
        assert run("ka-check-heartbeat", heartbeat, "--max-age", "1").code == 0
    finally:
        served.stop()


def test_missing_heartbeat_fails_the_guard(tmp_path: Path) -> None:
    outcome = run("ka-check-heartbeat", str(tmp_path / "nothing"))
    assert outcome.code == 1 and "kahooks serve is not running" in outcome.line


def test_status_and_metrics_tell_the_same_story(tmp_path: Path, service: Service) -> None:
    service.start()
    port = free_port()
    textfile = tmp_path / "kahooks.prom"
    config = head(tmp_path, f'metrics_listen = "127.0.0.1:{port}"\nmetrics_textfile = "{textfile}"\n') \
        + svc_check(service) + f"""
[checks.refused]
run = "ka-check-port 127.0.0.1:{free_port()}"
interval = 0.2
"""
    with Served(tmp_path, config) as served:
        served.wait_track("svc", "0")
        served.wait_track("refused", "1")
        # status.json is written just after the track files: wait for it rather than race it
        status = wait_for(lambda: (outcome := run("kahooks", "status", "-c", str(served.config))).code == 1
                          and "FAILED" in outcome.stdout and outcome, 3, "kahooks status to say FAILED")
        assert status.code == 1, status  # one check failed
        lines = status.stdout.splitlines()
        assert lines[0].startswith("kahooks serve: running (pid")
        assert any(line.split()[:3] == ["svc", "healthy", "0"] for line in lines), status.stdout
        assert any(line.split()[:3] == ["refused", "FAILED", "1"] and "connection refused" in line
                   for line in lines), status.stdout
        assert "spool " in status.stdout and "0 incoming" in status.stdout
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'kahooks_check_up{check="svc"} 1' in body
        assert 'kahooks_check_up{check="refused"} 0' in body
        assert 'kahooks_check_runs_total{check="refused",result="fail"}' in body
        assert "kahooks_spool_incoming 0" in body
        wait_for(lambda: textfile.exists() and 'kahooks_check_up{check="refused"} 0' in textfile.read_text(), 5,
                 "the textfile")
        # status reads where the daemon writes, nothing more: a secret it cannot read does not stop it.
        served.config.write_text(served.config.read_text()
                                 + '\n[channels.chat]\ntype = "slack"\nurl_file = "/nonexistent/slack.url"\n')
        assert "kahooks serve: running" in run("kahooks", "status", "-c", str(served.config)).stdout
