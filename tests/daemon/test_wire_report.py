"""The wire observer's settings, what it takes from keepalived.conf, and how status and /metrics show it."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from kahooks.daemon.segment import KINDS
from kahooks.daemon.service import load_config
from kahooks.daemon.wire import configured
from tests.support.daemon_config import problems, write
from tests.support.snapshots import nasty_snapshot

KEEPALIVED_CONF = """
global_defs { vrrp_version 2 }
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 2
    authentication { auth_type PASS
        auth_pass secret }
    virtual_ipaddress { 192.0.2.100/24
        192.0.2.101 }
}
vrrp_instance VI_6 {
    interface eth1
    virtual_router_id 7
    version 3
    unicast_src_ip 192.0.2.12
    unicast_peer { 192.0.2.11 }
    virtual_ipaddress { 2001:DB8:0::100 }
}
vrrp_instance NO_IFACE {
    virtual_router_id 9
}
"""


def test_wire_settings_default_on_and_checked(tmp_path: Path) -> None:
    wire = load_config(str(write(tmp_path, ""))).sections["wire"]
    assert (wire.enabled, wire.keepalived_conf) == (True, "/etc/keepalived/keepalived.conf")
    wire = load_config(str(write(tmp_path, '[wire]\nenabled = false\nkeepalived_conf = "/k.conf"\n'))).sections["wire"]
    assert (wire.enabled, wire.keepalived_conf) == (False, "/k.conf")
    found = problems(tmp_path, '[wire]\nenabled = "yes"\nkeepalived_conf = "k.conf"\nlisten = 1\n')
    assert any("wire.enabled" in line and "true or false" in line for line in found), found
    assert any("wire.keepalived_conf" in line and "absolute path" in line for line in found), found
    assert any("wire.listen" in line and "unknown setting" in line for line in found), found


def test_the_instances_come_from_keepalived_conf(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_text(KEEPALIVED_CONF)
    locals_, why = configured(str(path))
    assert why == ""
    one, six = locals_
    assert (one.name, one.interface, one.vrid, one.family, one.priority, one.advert_int, one.version, one.vips,
            one.auth_type) == ("VI_1", "eth0", 51, 4, 150, 2.0, 2, {"192.0.2.100", "192.0.2.101"}, "PASS")
    assert (six.family, six.version, six.unicast_src_ip, six.unicast_peers, six.auth_type, six.vips) == \
        (6, 3, "192.0.2.12", {"192.0.2.11"}, "none", {"2001:db8::100"})  # as the kernel and the wire spell it
    path.write_text("global_defs { router_id x }\n")
    assert configured(str(path))[0] == [] and "names no VRRP instance" in configured(str(path))[1]
    assert "cannot read" in configured(str(tmp_path / "missing.conf"))[1]


def wire_snapshot() -> dict:
    return {"enabled": True, "why": "", "interfaces": {"eth0": "listening", "eth1": "No such device"},
            "packets": 12, "adverts": 10, "arps": 2, "ignored": 0, "dropped": 3,
            "vrids": [{"interface": "eth0", "family": 4, "vrid": 51, "instance": "VI_1",
                       "sources": [{"source": "192.0.2.11", "priority": 150, "interval": 1.0, "version": 2,
                                    "auth": "PASS", "addresses": ["192.0.2.100"], "local": False, "last": 99.0,
                                    "count": 10, "checksum_ok": True}]}],
            "findings": [{"kind": "blocked", "instance": "VI_1", "interface": "eth0", "vrid": 51,
                          "sentence": "VRRP blocked locally on eth0 for VRID 51 (VI_1): ...", "since": 90.0}],
            "instances": [{"instance": "VI_1", "interface": "eth0", "vrid": 51},
                          {"instance": "VI_6", "interface": "eth1", "vrid": 7}]}


def test_metrics_carry_every_kind_for_every_instance_and_status_the_sentences() -> None:
    from kahooks.daemon.metrics import render
    from kahooks.daemon.status import format_wire

    snapshot, spool = nasty_snapshot()
    snapshot["wire"] = wire_snapshot()
    parsed = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
              for family in text_string_to_metric_families(render(snapshot, spool))  # type: ignore[arg-type]
              for sample in family.samples}
    findings = {labels: value for (name, labels), value in parsed.items() if name == "kahooks_wire_finding"}
    assert len(findings) == 2 * len(KINDS)
    assert findings[(("iface", "eth0"), ("iname", "VI_1"), ("kind", "blocked"), ("vrid", "51"))] == 1
    assert sum(findings.values()) == 1
    assert parsed[("kahooks_wire_listening", (("iface", "eth1"),))] == 0
    assert parsed[("kahooks_wire_dropped_total", ())] == 3
    assert parsed[("kahooks_wire_sources", (("iname", "VI_6"),))] == 0
    text = "\n".join(format_wire(snapshot["wire"], 100.0))
    assert "wire: listening on eth0, eth1 (No such device): 10 adverts, 2 ARP, 3 dropped by the kernel" in text
    assert "192.0.2.11 priority 150, every 1 s, v2, 192.0.2.100, last 1 s ago" in text
    assert "BLOCKED since 10 s ago: VRRP blocked locally on eth0" in text
    off = {**wire_snapshot(), "enabled": False, "why": "off: [wire] enabled = false"}
    snapshot["wire"] = off
    assert "kahooks_wire_finding" not in render(snapshot, spool)  # type: ignore[arg-type]
    assert format_wire(off, 100.0) == ["", "wire: off: [wire] enabled = false"]  # type: ignore[arg-type]


def test_the_observer_never_sends_on_the_wire_nor_writes_a_track_file() -> None:
    """What it hears can raise a report, never move a VIP: no send on a packet socket (only the netlink
    request for the kernel's addresses, the lines between the observer's process and the daemon, on their
    socket pair, and the daemon's poke of its own thread, on another), and no import of what writes track
    files."""
    import ast

    import kahooks.daemon.segment
    import kahooks.daemon.wire
    import kahooks.daemon.wire_kernel
    import kahooks.daemon.wire_observer
    import kahooks.daemon.wire_process
    import kahooks.system.vrrp_wire

    def receiver(call: ast.Call) -> str:
        target = call.func.value  # type: ignore[attr-defined]
        return target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "?")

    for module in (kahooks.daemon.wire, kahooks.daemon.wire_kernel, kahooks.daemon.wire_observer,
                   kahooks.daemon.wire_process, kahooks.daemon.segment, kahooks.system.vrrp_wire):
        tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[arg-type]
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"kahooks.daemon.trackfile", "kahooks.daemon.publishing", "kahooks.files.atomicfile"}
        sending = []
        for function in [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]:
            for call in ast.walk(function):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and \
                        call.func.attr in ("send", "sendto", "sendmsg", "sendall"):
                    sending.append((function.name, receiver(call)))
        channel = [(name, on) for name, on in sending if on == "channel"]  # Channel.send, on the socket pair
        expected = {kahooks.daemon.wire: [("poke", "waking")], kahooks.daemon.wire_kernel: [("kernel_addresses", "sock")],
                    kahooks.daemon.wire_process: [("send", "sock"), ("send", "sock"), ("send", "sock")]}
        assert [entry for entry in sending if entry not in channel] == expected.get(module, []), sending
    pair = ast.parse(Path(kahooks.daemon.wire.__file__).read_text())  # type: ignore[arg-type]
    assert "socketpair" in {node.attr for node in ast.walk(pair) if isinstance(node, ast.Attribute)}


def test_a_finding_is_recorded_as_an_alert_and_its_clearing_as_cleared_of_the_same_topic() -> None:
    """The alertmanager channel resolves an alert by its labels: the clearing carries the alert's name and
    topic; the other channels' default subject and body say it cleared."""
    import time

    from kahooks.daemon.wire_observer import Observer
    from kahooks.events.transition import Transition
    from kahooks.notify.templates import DEFAULT_BODY, DEFAULT_SUBJECT, environment
    from tests.support.packets import LOCAL, PEER, advert

    recorded = []
    observer = Observer([LOCAL], lambda: {"VI_1": ("BACKUP", 100)}, recorded.append)
    start = time.time()
    observer.judge(start)
    observer.judge(start + 10)  # BACKUP, and nobody advertised for 10 s: the master is gone
    assert [(event.state, event.topic) for event in recorded] == [("ALERT", "wire master_gone")]
    observer.segment.advert("eth0", advert(PEER, 150), False, start + 10.5)
    observer.judge(start + 11)
    assert observer.findings == []
    alert, cleared = recorded
    assert (cleared.type, cleared.state, cleared.name, cleared.topic, cleared.source) == \
        ("ALERT", "CLEARED", "VI_1", "wire master_gone", "wire")
    assert cleared.detail == alert.detail and alert.detail.startswith("wire: master gone on eth0 for VRID 51")
    transition = Transition.of("lb1", [], [cleared], "BACKUP")
    subject = environment().from_string(DEFAULT_SUBJECT).render(transition.context())
    assert subject.startswith("[lb1] VI_1: cleared: wire: master gone on eth0"), subject
    assert environment().from_string(DEFAULT_BODY).render(transition.context()).startswith("Cleared:   wire: master gone")
    assert transition.environment()["KAHOOKS_TOPIC"] == "wire master_gone"
    from kahooks.notifiers.syslog import SyslogChannel

    logged = environment().from_string(SyslogChannel.DEFAULT_SUBJECT).render(transition.context())
    assert logged.startswith("VI_1: cleared: wire: master gone on eth0") and "priority" not in logged, logged


def test_doctor_live_shows_the_wires_view_from_the_daemons_status(tmp_path: Path) -> None:
    import json

    from kahooks.admin.keepalived_cli import _wire_view

    state = tmp_path / "state"
    toml = write(tmp_path, "")  # state_dir = tmp_path/state
    wire, lines = _wire_view(str(toml))
    assert wire is None and lines == ["", f"WIRE: not shown: kahooks serve is not running (no status in {state})"]
    state.mkdir()
    (state / "status.json").write_text(json.dumps({"wire": wire_snapshot(), "checks": {}}))
    wire, lines = _wire_view(str(toml))
    assert wire == wire_snapshot()
    assert lines[1] == "WIRE (kahooks serve's observer):" and any("BLOCKED since" in line for line in lines), lines
    assert _wire_view(str(tmp_path / "missing.toml"))[1][1].startswith("WIRE: not shown: ")


def test_the_daemon_loads_the_observer_only_when_it_starts_one() -> None:
    """A daemon with the wire off (or no VRRP instance) never imports the packet code."""
    import subprocess
    import sys

    probe = ("import sys, kahooks.daemon.service\n"
             "print(sorted(m for m in ('kahooks.daemon.wire_observer', 'kahooks.daemon.wire_kernel', "
             "'kahooks.daemon.segment', 'kahooks.system.vrrp_wire') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-P", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded
