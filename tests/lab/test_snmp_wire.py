"""The wire observer's findings through a real snmpd: `kahooks serve` listens in a lab node (one VRRP
interface there, one keepalived.conf names that does not exist), a neighbour's ARP claims the VIP and
keepalived "reports" BACKUP with nobody advertising; snmpwalk's kahooksWire shows what
`kahooks status --json` shows: each interface's listening state and each finding, its kind named as
KAHOOKS-MIB's enumeration (derived from daemon/segment.py's KINDS) names it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kahooks.daemon.segment import KINDS
from kahooks.lab.netns import Network, wait_for
from tests.support.packets import GARP
from tests.support.programs import program, quiet_env, run
from tests.support.serve import head
from tests.support.snmpd import BASE, CONTRIB, Snmpd

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("snmpd") or not shutil.which("snmpwalk"),
                                 reason="Debian's snmpd and snmp packages (./run test installs them)")]

KEEPALIVED_CONF = """\
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.0.2.100/24 dev eth0
    }
}
vrrp_instance VI_2 {
    state BACKUP
    interface eth9
    virtual_router_id 52
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.0.2.101/24 dev eth9
    }
}
"""
WIRE = BASE + ".7"


def findings(status: dict) -> list[dict]:
    return sorted(status["wire"]["findings"], key=lambda item: (item["instance"], item["kind"]))


def test_snmpwalk_shows_the_wire_observers_interfaces_and_findings(tmp_path: Path) -> None:
    (tmp_path / "keepalived.conf").write_text(KEEPALIVED_CONF)
    config = tmp_path / "kahooks.toml"
    config.write_text(head(tmp_path, f'notify_fifo = "{tmp_path}/state/notify.fifo"\n')
                      + f'\n[wire]\nkeepalived_conf = "{tmp_path}/keepalived.conf"\n')
    with Network("khls2snmp") as network:
        here, neighbour = network.add_node("a", 11, own_pids=False), network.add_node("b", 12, own_pids=False)
        here.add_address("192.0.2.100/32")
        started = time.time()
        daemon = here.popen([program("kahooks"), "serve", "-v", "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "serve.log", "ab"), env=quiet_env())
        agent = None
        try:
            status_file = tmp_path / "state" / "status.json"
            wait_for(lambda: status_file.exists() and status_file.stat().st_mtime > started, 20, "kahooks serve")
            fifo = os.open(tmp_path / "state" / "notify.fifo", os.O_RDWR | os.O_NONBLOCK)
            # VI_1 BACKUP with nobody advertising VRID 51; VI_2 (its interface missing) FAULT, as keepalived
            # has it: a FAULT node expects no advert (a state never reported counts as waiting for one).
            os.write(fifo, b'INSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_2" FAULT 0\n')
            os.close(fifo)

            def status() -> dict:
                return json.loads(run("kahooks", "status", "--json", "-c", str(config)).stdout)

            def both() -> dict | None:
                neighbour.run([sys.executable, "-c", GARP, "02:00:00:00:00:99"])  # claims the VIP held here
                current = status()
                found = {(item["instance"], item["kind"]) for item in current["wire"]["findings"]}
                return current if found == {("VI_1", "duplicate_vip"), ("VI_1", "master_gone")} else None
            wait_for(both, 30, "the duplicate VIP and the master gone", poll=0.5)
            agent = Snmpd(tmp_path, config)
            walked = agent.walk()
            shown = status()
            wire = shown["wire"]
            assert walked[f"{WIRE}.1"] == "1" and walked[f"{WIRE}.2"] == ""
            assert wire["interfaces"]["eth0"] == "listening" and wire["interfaces"]["eth9"] != "listening"
            assert walked[f"{WIRE}.3"] == "2"
            for row, name in enumerate(sorted(wire["interfaces"]), 1):
                assert walked[f"{WIRE}.4.1.2.{row}"] == name
                assert walked[f"{WIRE}.4.1.3.{row}"] == ("1" if wire["interfaces"][name] == "listening" else "2")
                assert walked[f"{WIRE}.4.1.4.{row}"] == wire["interfaces"][name][:255]
            assert walked[f"{WIRE}.5"] == "2", json.dumps(findings(shown), indent=1)
            for row, finding in enumerate(findings(shown), 1):
                assert walked[f"{WIRE}.6.1.2.{row}"] == str(KINDS.index(finding["kind"]) + 1)
                assert walked[f"{WIRE}.6.1.3.{row}"] == finding["instance"] == "VI_1"
                assert walked[f"{WIRE}.6.1.4.{row}"] == finding["interface"] == "eth0"
                assert walked[f"{WIRE}.6.1.5.{row}"] == str(finding["vrid"]) == "51"
                assert walked[f"{WIRE}.6.1.6.{row}"] == finding["sentence"][:255]
                assert abs(int(walked[f"{WIRE}.6.1.7.{row}"]) - (time.time() - finding["since"])) <= 3
            assert int(walked[f"{WIRE}.9"]) >= 1  # the neighbour's ARP was heard
            # By name, through the MIB: the kinds as the enumeration names them.
            named = agent.query("snmpwalk", "-m", "KAHOOKS-MIB", "-M", f"+{CONTRIB}", "-Oqv", f"{WIRE}.6.1.2")
            assert named.returncode == 0, named.stderr
            assert named.stdout.split() == ["duplicateVip", "masterGone"], named.stdout
        finally:
            if agent is not None:
                agent.stop()
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
