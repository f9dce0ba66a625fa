"""/metrics as a fleet dashboard reads it: VRRP state per instance, check histograms, spool age, build info."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from kahooks.lab.netns import free_port, wait_for
from tests.support.serve import Served, head, write_fifo
from tests.support.snapshots import nasty_snapshot


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, parsed by prometheus_client's own parser (a malformed exposition raises)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def config(tmp_path: Path, port: int) -> str:
    return head(tmp_path, f'metrics_listen = "127.0.0.1:{port}"\nnotify_fifo = "{tmp_path}/state/notify.fifo"\n') + f"""
[checks.refused]
run = "ka-check-port 127.0.0.1:{free_port()}"
interval = 0.2

[channels.down]
type = "exec"
command = ["/bin/false"]

[[rules]]
channels = ["down"]
"""


def test_vrrp_state_is_one_series_per_state_and_follows_the_fifo(tmp_path: Path) -> None:
    port = free_port()
    with Served(tmp_path, config(tmp_path, port)) as served:
        fifo = served.state / "notify.fifo"
        before = time.time()
        write_fifo(fifo, ['INSTANCE "VI_1" MASTER 100', 'INSTANCE "VI_2" FAULT 0'])
        wait_for(lambda: scrape(port).get(("kahooks_vrrp_state", (("iname", "VI_2"), ("state", "FAULT")))) == 1, 10,
                 "VI_2's FAULT on /metrics")
        samples = scrape(port)
        for state in ("MASTER", "BACKUP", "FAULT", "STOP"):
            assert samples[("kahooks_vrrp_state", (("iname", "VI_1"), ("state", state)))] == (state == "MASTER")
        assert samples[("kahooks_vrrp_last_transition_timestamp_seconds", (("iname", "VI_1"),))] >= before - 1
        write_fifo(fifo, ['INSTANCE "VI_1" BACKUP 50'])
        wait_for(lambda: scrape(port).get(("kahooks_vrrp_state", (("iname", "VI_1"), ("state", "BACKUP")))) == 1,
                 10, "VI_1's BACKUP")
        samples = scrape(port)
        assert samples[("kahooks_vrrp_state", (("iname", "VI_1"), ("state", "MASTER")))] == 0
        assert samples[("kahooks_vrrp_transitions_total", (("iname", "VI_1"), ("state", "MASTER")))] == 1
        build = [key for key in samples if key[0] == "kahooks_build_info"]
        assert len(build) == 1 and dict(build[0][1])["version"] and samples[build[0]] == 1


def test_check_histogram_and_spool_age(tmp_path: Path) -> None:
    port = free_port()
    with Served(tmp_path, config(tmp_path, port)) as served:
        served.wait_track("refused", "1")
        write_fifo(served.state / "notify.fifo", ['INSTANCE "VI_1" MASTER 100'])
        # The exec channel fails: the delivery waits in the spool and grows older.
        wait_for(lambda: scrape(port).get(("kahooks_spool_oldest_age_seconds", ()), 0) > 1, 15,
                 "the undelivered notification to age")
        samples = scrape(port)
        assert samples[("kahooks_spool_queued", (("channel", "down"),))] == 1
        count = samples[("kahooks_check_duration_seconds_count", (("check", "refused"),))]
        infinity = samples[("kahooks_check_duration_seconds_bucket", (("check", "refused"), ("le", "+Inf")))]
        fast = samples[("kahooks_check_duration_seconds_bucket", (("check", "refused"), ("le", "0.1")))]
        assert count >= 2 and infinity == count and 0 < fast <= count  # a refused loopback connect is fast
        assert samples[("kahooks_check_runs_total", (("check", "refused"), ("result", "fail")))] == count
        assert samples[("kahooks_heartbeat_timestamp_seconds", ())] > time.time() - 5


def test_the_text_is_byte_for_byte_what_prometheus_client_writes() -> None:
    """render() writes prometheus_client's families itself (generate_latest took 15 ms a scrape):
    the text must be exactly generate_latest's, escapes, number formats and order included."""
    from prometheus_client import CollectorRegistry, generate_latest

    from kahooks.daemon.metrics import SnapshotCollector, render

    snapshot, spool = nasty_snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, spool))  # type: ignore[arg-type]
    reference = generate_latest(registry).decode()
    assert render(snapshot, spool) == render(snapshot, spool) == reference
    parsed = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
              for family in text_string_to_metric_families(reference) for sample in family.samples}
    assert parsed[("kahooks_check_up", (("check", "new\nline"),))] == 1
    assert parsed[("kahooks_check_runs_total", (("check", 'quote"d'), ("result", "ok")))] == 12_345_675
    assert parsed[("kahooks_deliveries_total", (("channel", "mail"), ("outcome", "delivered")))] == 1_000_000
    assert parsed[("kahooks_vrrp_state", (("iname", 'VI "1"'), ("state", "FAULT")))] == 1


def test_a_restarted_daemon_keeps_the_instance_states_and_reads_what_keepalived_wrote_meanwhile(tmp_path: Path) -> None:
    """keepalived reports a state only on a transition: a restart must neither forget VI_2 (no transition
    since) nor miss VI_1's BACKUP, written into the FIFO while the daemon was down."""
    from tests.support.serve import KeepalivedFifo

    port = free_port()
    served = Served(tmp_path, config(tmp_path, port)).start()
    keepalived = KeepalivedFifo(served.state / "notify.fifo")  # held open, as keepalived holds it
    try:
        keepalived.write(['INSTANCE "VI_1" MASTER 100', 'INSTANCE "VI_2" FAULT 0'])
        wait_for(lambda: scrape(port).get(("kahooks_vrrp_state", (("iname", "VI_2"), ("state", "FAULT")))) == 1, 10,
                 "both states")
        assert served.stop() == 0
        keepalived.write(['INSTANCE "VI_1" BACKUP 50'])
        served.start()
        samples = scrape(port)
        assert samples[("kahooks_vrrp_state", (("iname", "VI_2"), ("state", "FAULT")))] == 1
        wait_for(lambda: scrape(port).get(("kahooks_vrrp_state", (("iname", "VI_1"), ("state", "BACKUP")))) == 1, 10,
                 "VI_1's BACKUP, written while the daemon was down")
    finally:
        keepalived.close()
        served.stop()


def test_notices_that_are_not_states_leave_the_state_alone_and_a_deleted_instance_goes(tmp_path: Path) -> None:
    """keepalived's FIFO also says MASTER_RX_LOWER_PRI and *_PRIORITY (the instance is still what it was)
    and DELETED (removed by a reload): neither may read as 'no state' on the gauge."""
    port = free_port()
    with Served(tmp_path, config(tmp_path, port)) as served:
        write_fifo(served.state / "notify.fifo", ['INSTANCE "VI_1" MASTER 100', 'INSTANCE "VI_2" BACKUP 50',
                                                  'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100',
                                                  'INSTANCE "VI_1" MASTER_PRIORITY 90', 'INSTANCE "VI_2" DELETED 0'])
        wait_for(lambda: scrape(port).get(("kahooks_vrrp_transitions_total", (("iname", "VI_2"), ("state", "DELETED")))),
                 10, "every line read")
        samples = scrape(port)
        assert samples[("kahooks_vrrp_state", (("iname", "VI_1"), ("state", "MASTER")))] == 1
        assert not any(key[0] == "kahooks_vrrp_state" and ("iname", "VI_2") in key[1] for key in samples)


def test_the_text_is_prometheus_clients_with_the_wire_section_and_at_scale() -> None:
    """What render writes without prometheus_client's family objects (the check families, and every gauge
    and counter through its own rows) is still generate_latest's text: the wire observer's families,
    50 checks, 20 instances, a track file that changed between two scrapes and a check with no track value."""
    from prometheus_client import CollectorRegistry, generate_latest

    from kahooks.daemon.metrics import SnapshotCollector, render

    snapshot, spool = nasty_snapshot()
    template = snapshot["checks"]["plain"]
    snapshot["checks"] = {**{f"c{index}": {**template, "runs": 1000 + index, "latency_total": index / 3,
                                           "last": {"latency": 1e-7 * index}} for index in range(50)},
                          **snapshot["checks"], "no value": {**template, "value": None}}
    snapshot["instances"] = {f"VI_{index}": {"state": "BACKUP", "since": 1.5 * index} for index in range(20)}
    snapshot["wire"] = {"enabled": True, "findings": [{"kind": "two_masters", "instance": "VI_1"}],
                        "instances": [{"instance": "VI_1", "vrid": 51, "interface": "eth0"},
                                      {"instance": 'VI "2"', "vrid": 52, "interface": "eth\\1"}],
                        "vrids": [{"instance": "VI_1", "sources": ["10.0.0.1", "10.0.0.2"]},
                                  {"instance": None, "sources": ["10.0.0.9"]}],
                        "interfaces": {"eth0": "listening", "eth\\1": "failed"},
                        "adverts": 12_345_678, "arps": 0, "ignored": 7, "dropped": 1}

    def reference() -> str:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(snapshot, spool))  # type: ignore[arg-type]
        return generate_latest(registry).decode()

    assert render(snapshot, spool) == render(snapshot, spool) == reference()
    assert "kahooks_wire_finding{" in reference() and 'check="no value"' in reference()
    snapshot["checks"]["c3"] = {**snapshot["checks"]["c3"], "track_file": "/run/kahooks/track/moved"}
    assert render(snapshot, spool) == reference()
