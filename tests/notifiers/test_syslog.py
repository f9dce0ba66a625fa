"""The syslog channel against a real rsyslogd: local socket, UDP, TCP (octet counting), outages."""

from __future__ import annotations

from pathlib import Path

from kahooks.events.event import Event
from kahooks.lab.rsyslog import Rsyslog
from tests.support.netservers import free_port
from tests.support.notify import worker_for, write_config


def transition(spool, name: str, state: str, priority: int = 100) -> Event:
    event = Event.new("INSTANCE", name, state, priority, "test")
    spool.record(event)
    return event


def test_local_socket(tmp_path: Path, rsyslog: Rsyslog) -> None:
    path = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "{rsyslog.socket}"\n'
                                  'facility = "local3"\nident = "vrrp-notify"')
    _, spool, worker = worker_for(path)
    transition(spool, "VI_1", "FAULT", 0)
    assert worker.drain(10)
    line = rsyslog.wait_for("VI_1 is FAULT")
    assert line.startswith("local3.warning vrrp-notify ")
    assert "VI_1 is FAULT priority 0" in line


def test_udp_rfc5424_with_structured_data(tmp_path: Path, rsyslog: Rsyslog) -> None:
    path = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "udp://127.0.0.1:{rsyslog.udp_port}"')
    _, spool, worker = worker_for(path)
    transition(spool, "VI_1", "BACKUP")
    event = transition(spool, "VI_1", "MASTER")
    assert worker.drain(10)
    line = rsyslog.wait_for("VI_1 is MASTER")
    assert line.startswith("daemon.notice kahooks ") and " transition " in line
    assert (f'[kahooks@32473 type="INSTANCE" instance="VI_1" state="MASTER" previous="BACKUP" '
            f'priority="100" event="{event.id}" transitions="1"]') in line
    assert line.endswith("VI_1 is MASTER (was BACKUP) priority 100")


def test_tcp_records_stay_separate(tmp_path: Path, rsyslog: Rsyslog) -> None:
    path = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "tcp://127.0.0.1:{rsyslog.tcp_port}"')
    _, spool, worker = worker_for(path)
    states = ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"]
    for state in states:
        transition(spool, "VI_7", state)
    assert worker.drain(10)
    lines = rsyslog.wait_for_count("VI_7 is", len(states))
    assert [line.split("VI_7 is ")[1].split()[0] for line in lines] == states  # in order, none merged


def test_receiver_down_then_back_everything_arrives(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "tcp://127.0.0.1:{port}"',
                        delivery="flap_window = 0\nbackoff_initial = 0.05\nbackoff_max = 0.3\nmax_attempts = 1000")
    _, spool, worker = worker_for(path)
    events = [transition(spool, "VI_1", state) for state in ("MASTER", "BACKUP", "MASTER")]
    assert not worker.drain(1.0)  # nobody listens: all still queued, with retries scheduled
    queued = spool.queued("log")
    assert len(queued) == 3 and queued[0].attempts >= 1 and "refused" in queued[0].last_error
    (tmp_path / "rsyslog").mkdir()
    server = Rsyslog(tmp_path / "rsyslog", tcp_port=port)
    try:
        assert worker.drain(10)
        lines = server.wait_for_count("VI_1 is", 3)
        assert [line.split('event="')[1].split('"')[0] for line in lines] == [event.id for event in events]
    finally:
        server.stop()
