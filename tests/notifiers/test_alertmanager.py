"""The alertmanager channel against a real Alertmanager (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from kahooks.event import Event
from kahooks.lab.netns import wait_for
from tests.support.notify import worker_for, write_config
from tests.support.prometheus import ALERTMANAGER, Alertmanager

pytestmark = pytest.mark.skipif(not os.path.exists(ALERTMANAGER), reason="prometheus-alertmanager is not installed "
                                "(./run test installs it)")
FAST_RETRY = "flap_window = 0\nbackoff_initial = 0.05\nbackoff_max = 0.5\nmax_attempts = 1000"


@pytest.fixture
def alertmanager() -> Alertmanager:
    server = Alertmanager()
    yield server
    server.stop()


def channel(*urls: str) -> str:
    listed = ", ".join(f'"{url}"' for url in urls)
    return (f'[channels.am]\ntype = "alertmanager"\nurls = [{listed}]\ntimeout = 2\n'
            f'labels = {{ cluster = "edge-1", severity = "page" }}\n')


def faults(server: Alertmanager) -> list[dict]:
    return [alert for alert in server.alerts() if alert["labels"].get("alertname") == "KeepalivedFault"]


def record(spool: object, state: str, name: str = "VI_1") -> Event:
    event = Event.new("INSTANCE", name, state, 0, "test")
    spool.record(event)  # type: ignore[attr-defined]
    return event


def test_a_fault_fires_with_its_labels_and_recovery_resolves_it(tmp_path: Path, alertmanager: Alertmanager) -> None:
    _, spool, worker = worker_for(write_config(tmp_path, channel(alertmanager.url), delivery=FAST_RETRY))
    record(spool, "FAULT")
    assert worker.drain(10)
    [alert] = wait_for(lambda: faults(alertmanager), 10, "the alert in Alertmanager")
    assert alert["labels"] == {"alertname": "KeepalivedFault", "iname": "VI_1", "host": "lb-test", "state": "FAULT",
                               "vips": "192.0.2.10", "cluster": "edge-1", "severity": "page"}
    assert alert["status"]["state"] == "active"
    assert alert["annotations"]["summary"] == "[lb-test] VI_1 is FAULT"
    ends = datetime.datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
    assert ends > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=23)  # held while FAULT lasts
    record(spool, "BACKUP")
    assert worker.drain(10)
    wait_for(lambda: not faults(alertmanager), 10, "the alert resolved")


def test_alertmanager_down_then_up_loses_nothing(tmp_path: Path, alertmanager: Alertmanager) -> None:
    alertmanager.stop(remove=False)
    _, spool, worker = worker_for(write_config(tmp_path, channel(alertmanager.url), delivery=FAST_RETRY))
    record(spool, "FAULT")
    record(spool, "FAULT", name="VI_2")
    assert not worker.drain(1)
    assert "no Alertmanager took the alert" in spool.queued("am")[0].last_error
    alertmanager.start()
    assert worker.drain(15)
    assert sorted(alert["labels"]["iname"] for alert in faults(alertmanager)) == ["VI_1", "VI_2"]


def test_one_member_of_a_cluster_down_is_still_a_delivery(tmp_path: Path, alertmanager: Alertmanager) -> None:
    other = Alertmanager()
    other.stop()
    try:
        _, spool, worker = worker_for(write_config(tmp_path, channel(other.url, alertmanager.url), delivery=FAST_RETRY))
        record(spool, "FAULT")
        assert worker.drain(10)
        assert len(faults(alertmanager)) == 1
    finally:
        other.stop()


def test_a_firing_alert_is_sent_again_to_an_alertmanager_that_restarted_and_not_once_resolved(
        tmp_path: Path, alertmanager: Alertmanager) -> None:
    """Alertmanager keeps alerts in memory: after a restart, the worker's re-send brings the FAULT back
    (an alert posted once by someone else, the control, stays lost)."""
    import json
    import threading
    import time
    import urllib.request

    from kahooks.delivery import Worker

    table = channel(alertmanager.url) + "resend_interval = 0.3\n"
    config, spool, _ = worker_for(write_config(tmp_path, table, delivery=FAST_RETRY))
    stop = threading.Event()
    worker = threading.Thread(target=Worker(config, spool).run, args=(stop,), daemon=True)
    worker.start()
    control = json.dumps([{"labels": {"alertname": "Control"}}]).encode()
    try:
        record(spool, "FAULT")
        wait_for(lambda: faults(alertmanager), 10, "the alert")
        urllib.request.urlopen(urllib.request.Request(f"{alertmanager.url}/api/v2/alerts", data=control,
                                                      headers={"Content-Type": "application/json"}), timeout=5)
        assert any(alert["labels"]["alertname"] == "Control" for alert in alertmanager.alerts())
        alertmanager.stop(remove=False)
        alertmanager.start()
        wait_for(lambda: faults(alertmanager), 10, "the alert sent again after the restart")
        assert not any(alert["labels"]["alertname"] == "Control" for alert in alertmanager.alerts())
        record(spool, "MASTER")
        wait_for(lambda: not faults(alertmanager), 10, "the alert resolved")
        alertmanager.stop(remove=False)
        alertmanager.start()
        time.sleep(1.5)  # five re-send rounds: a resolved alert is never among them
        assert faults(alertmanager) == []
    finally:
        stop.set()
        worker.join(10)
