"""The alertmanager channel against a real Alertmanager (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from kahooks.events.event import Event
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


def test_a_wire_finding_fires_under_its_topic_and_its_clearing_resolves_that_alert_alone(
        tmp_path: Path, alertmanager: Alertmanager) -> None:
    _, spool, worker = worker_for(write_config(tmp_path, channel(alertmanager.url), delivery=FAST_RETRY))

    def kahooks_alerts() -> dict[str, dict]:
        return {alert["labels"].get("topic", ""): alert for alert in alertmanager.alerts()
                if alert["labels"].get("alertname") == "KahooksAlert"}

    spool.record(Event.alert("VI_1", "wire: two masters on eth0", "wire", topic="wire two_masters"))
    spool.record(Event.alert("VI_1", "wire: VRRP blocked locally on eth0", "wire", topic="wire blocked"))
    assert worker.drain(10)
    fired = wait_for(lambda: len(kahooks_alerts()) == 2 and kahooks_alerts(), 10, "both findings in Alertmanager")
    assert fired["wire blocked"]["labels"] == {"alertname": "KahooksAlert", "iname": "VI_1", "host": "lb-test",
                                               "state": "ALERT", "vips": "192.0.2.10", "topic": "wire blocked",
                                               "cluster": "edge-1", "severity": "page"}
    spool.record(Event.cleared("VI_1", "wire: two masters on eth0", "wire", topic="wire two_masters"))
    assert worker.drain(10)
    wait_for(lambda: set(kahooks_alerts()) == {"wire blocked"}, 10, "the cleared finding's alert resolved")
    assert kahooks_alerts()["wire blocked"]["status"]["state"] == "active"


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

    from kahooks.notify.delivery import Worker

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


def test_the_next_worker_takes_up_a_firing_alert_and_no_worker_idles_out_while_it_fires(
        tmp_path: Path, alertmanager: Alertmanager) -> None:
    """ka-notify's worker idles out after a minute, and a reload or a crash replaces it: the firing
    alerts live in the channel's state file, so the next worker sends them again to an Alertmanager
    that restarted meanwhile, and stays while they fire."""
    import threading
    import time

    from kahooks.notify.delivery import Worker

    path = write_config(tmp_path, channel(alertmanager.url) + "resend_interval = 0.3\n", delivery=FAST_RETRY)
    _, spool, first = worker_for(path)
    record(spool, "FAULT")
    assert first.drain(10)
    wait_for(lambda: faults(alertmanager), 10, "the alert")
    alertmanager.stop(remove=False)  # no worker runs now; Alertmanager restarts and forgets the alert
    alertmanager.start()
    assert faults(alertmanager) == []
    config, spool, _ = worker_for(path)  # a new configuration and channel: nothing in memory
    stop, done = threading.Event(), threading.Event()

    def deliver() -> None:
        Worker(config, spool).run(stop, idle_exit=0.5)
        done.set()

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    try:
        wait_for(lambda: faults(alertmanager), 10, "the alert taken up and sent again by the next worker")
        time.sleep(1.5)  # deliberate: three idle_exit periods with nothing to deliver
        assert not done.is_set(), "a worker idled out while an alert fires"
        record(spool, "BACKUP")
        wait_for(lambda: not faults(alertmanager), 10, "the alert resolved")
        wait_for(done.is_set, 5, "the worker to idle out once nothing fires")
    finally:
        stop.set()
        thread.join(10)


def test_the_state_file_is_read_as_everything_in_the_spool(tmp_path: Path) -> None:
    """The spool is keepalived_script's and root's worker reads it: a planted link is not followed,
    a file too big or not an alert list is ignored, and only alerts of this channel's shape are taken."""
    import json

    firing = {"labels": {"alertname": "KeepalivedFault", "iname": "VI_1", "state": "FAULT"},
              "annotations": {"summary": "VI_1 is FAULT"}, "startsAt": "2026-12-04T10:00:00Z",
              "endsAt": "2026-12-05T10:00:00Z"}
    path = write_config(tmp_path, channel("http://127.0.0.1:9"))
    _, spool, _ = worker_for(path)
    state = spool.root / "state" / "channel-am.json"

    def taken_up() -> list[dict]:
        _, _, worker = worker_for(path)
        return list(worker.config.channels["am"].firing.values())  # type: ignore[attr-defined]

    outside = tmp_path / "planted.json"
    outside.write_text(json.dumps({"firing": [firing]}))
    state.symlink_to(outside)
    assert taken_up() == []
    state.unlink()
    state.write_text(json.dumps({"firing": [firing] * 2 + [{"labels": {"alertname": "Other"}}] + [
        {**firing, "labels": {"alertname": "KeepalivedFault", "iname": 7}},
        {**firing, "startsAt": "yesterday"}, {**firing, "extra": "field"}, "text"]}))
    assert taken_up() == [firing]
    state.write_text(json.dumps({"firing": [firing], "padding": "x" * 300_000}))
    assert taken_up() == []
    state.write_text("[not an object")
    assert taken_up() == []
