"""A real `kahooks serve` clears the wire's open alerts when it stops observing their instance: a reload
that turns [wire] off, one that drops the instance from keepalived.conf, or a start with the wire off after
a run that left alerts open (daemon/wire.py). Each CLEARED reaches a channel at once (the alertmanager
channel would resolve the alert), and the memory file (wire-alerts.json) keeps only what is still observed.
Nothing here needs the interface to exist: the alerts come from the previous run's file."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from kahooks.lab.netns import wait_for
from tests.support.serve import Served, head

# advert_int 10: the observer's own settling (4 intervals and one more) would clear a left-open alert only
# after 50 s; each clearing below comes within seconds, from the reload itself.
KEEPALIVED_CONF = """
vrrp_instance VI_1 {{
    interface khlwnone0
    virtual_router_id 51
    advert_int 10
    virtual_ipaddress {{ 192.0.2.100 }}
}}
{more}"""
VI_2 = """vrrp_instance VI_2 {
    interface khlwnone0
    virtual_router_id 52
    advert_int 10
    virtual_ipaddress { 192.0.2.101 }
}
"""
LEFT_OPEN = [{"kind": "master_gone", "instance": "VI_1", "sentence": "master gone on khlwnone0 for VRID 51 (VI_1)"},
             {"kind": "two_masters", "instance": "VI_2", "sentence": "two masters on khlwnone0 for VRID 52 (VI_2)"}]


def config(tmp_path: Path, enabled: bool) -> str:
    return head(tmp_path) + f"""
[wire]
enabled = {"true" if enabled else "false"}
keepalived_conf = "{tmp_path}/keepalived.conf"

[channels.log]
type = "exec"
command = ["/bin/sh", "-c", 'echo "$KAHOOKS_STATE $KAHOOKS_INSTANCE $KAHOOKS_TOPIC $KAHOOKS_DETAIL" >> {tmp_path}/delivered']

[[rules]]
channels = ["log"]
"""


def delivered(tmp_path: Path) -> list[str]:
    path = tmp_path / "delivered"
    return sorted(path.read_text().splitlines()) if path.exists() else []


def left_open(served: Served) -> list[dict]:
    return json.loads((served.state / "wire-alerts.json").read_text())


def start(tmp_path: Path, enabled: bool, more: str) -> Served:
    """A daemon (started by `with`) whose previous run left LEFT_OPEN open."""
    (tmp_path / "keepalived.conf").write_text(KEEPALIVED_CONF.format(more=more))
    served = Served(tmp_path, config(tmp_path, enabled))
    served.state.mkdir(parents=True, exist_ok=True)
    (served.state / "wire-alerts.json").write_text(json.dumps(LEFT_OPEN))
    return served


def reload(served: Served, tmp_path: Path, enabled: bool, more: str) -> None:
    (tmp_path / "keepalived.conf").write_text(KEEPALIVED_CONF.format(more=more))
    served.config.write_text(config(tmp_path, enabled))
    served.signal(signal.SIGHUP)


CLEARED_1 = "CLEARED VI_1 wire master_gone wire: master gone on khlwnone0 for VRID 51 (VI_1)"
CLEARED_2 = "CLEARED VI_2 wire two_masters wire: two masters on khlwnone0 for VRID 52 (VI_2)"


def test_a_reload_dropping_an_instance_then_turning_the_wire_off_clears_their_alerts_at_once(tmp_path: Path) -> None:
    with start(tmp_path, True, VI_2) as served:
        wait_for(lambda: "wire: watching VRRP" in served.log_text(), 10, "the observer to start")
        assert delivered(tmp_path) == [] and len(left_open(served)) == 2  # adopted, not judged yet

        reload(served, tmp_path, True, "")  # VI_2 is gone from keepalived.conf
        wait_for(lambda: delivered(tmp_path) == [CLEARED_2], 10, "VI_2's alert to be cleared")
        assert left_open(served) == LEFT_OPEN[:1]  # VI_1 still observed: its alert is still open

        reload(served, tmp_path, False, "")  # the wire switched off
        wait_for(lambda: delivered(tmp_path) == [CLEARED_1, CLEARED_2], 10, "VI_1's alert to be cleared")
        assert left_open(served) == []
        assert served.stop() == 0
    assert delivered(tmp_path) == [CLEARED_1, CLEARED_2]  # each once


def test_a_start_with_the_wire_off_clears_what_the_previous_run_left_open(tmp_path: Path) -> None:
    with start(tmp_path, False, VI_2) as served:
        wait_for(lambda: delivered(tmp_path) == [CLEARED_1, CLEARED_2], 10, "both alerts to be cleared")
        assert left_open(served) == []
        assert "wire: watching VRRP" not in served.log_text()
        assert served.stop() == 0
