"""What a client of /metrics, a reader of status.json, or a hostile URL can do to the daemon and checks."""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import time
import urllib.request
from pathlib import Path

import pytest

from kahooks.lab.netns import free_port, wait_for
from tests.support.programs import assert_one_line_failure, run
from tests.support.serve import Served, Service, head, svc_check


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_a_thousand_idle_metrics_connections_do_not_touch_checks_or_heartbeat(tmp_path: Path,
                                                                              service: Service) -> None:
    port = free_port()
    service.start()
    config = head(tmp_path, f'metrics_listen = "127.0.0.1:{port}"\n') + svc_check(service)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # systemd's default soft limit, inherited
    try:
        served = Served(tmp_path, config).start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        served.wait_track("svc", "0")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))  # ours, for the flood
        idle = []
        try:
            give_up = time.monotonic() + 8
            while len(idle) < 1100 and time.monotonic() < give_up:
                connection = socket.socket()
                connection.settimeout(0.5)
                idle.append(connection)
                try:
                    connection.connect(("127.0.0.1", port))  # then it sits there, saying nothing
                except OSError:
                    pass
            wait_for(lambda: fd_count(served.process.pid) < 150, 5, "the daemon to hold fewer than 150 descriptors")
            beat = served.heartbeat()
            service.kill()  # checks still work while the flood sits there
            served.wait_track("svc", "1", timeout=2)
            wait_for(lambda: served.heartbeat() > beat, 2, "the heartbeat to go on")
        finally:
            for connection in idle:
                connection.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        text = wait_for(lambda: _try_scrape(port), 10, "a scrape to be answered after the flood")
        assert "kahooks_check_up" in text
    finally:
        served.__exit__()
    assert "Traceback" not in served.log_text()


def _try_scrape(port: int) -> str | None:
    try:
        return scrape(port)
    except OSError:
        return None


def test_metrics_are_exact_and_parse_with_labels_that_hold_spaces(tmp_path: Path, service: Service) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    port = free_port()
    fifo = tmp_path / "state" / "notify.fifo"
    config = head(tmp_path, f'metrics_listen = "127.0.0.1:{port}"\nnotify_fifo = "{fifo}"\n') + """
[channels.out]
type = "exec"
command = ["/bin/true"]

[[rules]]
channels = ["out"]
"""
    with Served(tmp_path, config) as served:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b'INSTANCE "VI 1" MASTER 100\n')
        os.close(fd)
        wait_for(lambda: 'iname="VI 1"' in scrape(port), 5, "the transition counted")
        families = {family.name: family for family in text_string_to_metric_families(scrape(port))}
        status = json.loads((served.state / "status.json").read_text())
    transitions = families["kahooks_vrrp_transitions"].samples
    assert [(s.labels, s.value) for s in transitions] == [({"iname": "VI 1", "state": "MASTER"}, 1.0)]
    heartbeat = families["kahooks_heartbeat_timestamp_seconds"].samples[0].value
    assert abs(heartbeat - status["heartbeat"]) < 5, (heartbeat, status["heartbeat"])  # not an hour off


def test_status_keeps_secrets_out_and_is_not_world_readable(tmp_path: Path, http_server) -> None:
    url = http_server.url("/ok").replace("http://", "http://admin:hunter2@")
    config = head(tmp_path) + f"""
[checks.web]
run = "ka-check-http {url} --header 'Authorization: Bearer s3cret-token'"
interval = 60
"""
    with Served(tmp_path, config) as served:
        served.wait_track("web", "0")
        status_file = served.state / "status.json"
        status = run("kahooks", "status", "-c", str(served.config))
    assert stat.S_IMODE(status_file.stat().st_mode) & 0o004 == 0
    for text in (status_file.read_text(), status.stdout, served.log_text()):
        assert "hunter2" not in text and "s3cret-token" not in text
    assert "admin:***@" in status_file.read_text() and "Authorization: ***" in status_file.read_text()
    # The password is still used: the server was asked with basic authentication.
    assert any("Authorization" in str(request) for request in http_server.requests)


@pytest.mark.root
def test_status_says_stopped_at_once_and_speaks_one_line_to_a_user_who_may_not_read(work: Path,
                                                                                   lab_bin: Path) -> None:
    tmp_path = work
    with Served(tmp_path, head(tmp_path)) as served:
        assert run("kahooks", "status", "-c", str(served.config)).code == 0
        served.config.chmod(0o644)
        (served.state).chmod(0o755)
        as_nobody = _status_as_nobody(served.config, lab_bin)
        assert as_nobody.returncode == 1, as_nobody
        assert as_nobody.stderr.strip().count("\n") == 0 and "permission denied" in as_nobody.stderr, as_nobody
        assert "Traceback" not in as_nobody.stderr
        served.stop()
        after = run("kahooks", "status", "-c", str(served.config))
    assert after.code == 1 and "NOT RUNNING" in after.stdout and "stopped" in after.stdout, after


def _status_as_nobody(config: Path, bin_dir: Path):
    import subprocess

    def demote() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    return subprocess.run([str(bin_dir / "kahooks"), "status", "-c", str(config)], capture_output=True, text=True,
                          preexec_fn=demote, cwd="/", timeout=20)


@pytest.mark.parametrize("url, fragment", [
    ("http://127.0.0.1:0/", "no usable port"),
    ("http://127.0.0.1:/", "no usable port"),
])
def test_http_check_refuses_a_port_it_would_silently_replace(url: str, fragment: str) -> None:
    assert_one_line_failure(run("ka-check-http", url), fragment)


def test_http_check_fails_a_redirect_loop_and_hides_passwords(http_server) -> None:
    url = http_server.url("/redirect-loop").replace("http://", "http://admin:hunter2@")
    outcome = run("ka-check-http", "--follow", url)
    assert_one_line_failure(outcome, "redirects")
    assert "hunter2" not in outcome.stdout + outcome.stderr and "admin:***@" in outcome.stdout
