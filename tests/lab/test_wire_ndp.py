"""The wire observer and IPv6 VIPs with real keepalived (issue 27, finding 4 over NDP): keepalived on lb1 holds
an IPv6 VIP and announces it with unsolicited Neighbor Advertisements, which leave lb1 and are never a finding;
a second keepalived on lb2 (another VRID, the same VIP by mistake) announces it too, and lb1's `kahooks serve`
reports the duplicate VIP, naming lb2's MAC from the NA."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from kahooks.lab.netns import Network, Node, wait_for
from tests.support.programs import program, quiet_env

pytestmark = pytest.mark.root

VIP = "2001:db8::100"
KEEPALIVED_CONF = """\
global_defs {{
    router_id {name}
}}
vrrp_instance VI_6 {{
    state BACKUP
    interface eth0
    virtual_router_id {vrid}
    version 3
    priority 150
    advert_int 1
    virtual_ipaddress {{
        {vip}/64 dev eth0
    }}
}}
"""
KAHOOKS_TOML = """\
host = "{name}"
spool_dir = "{work}/spool"

[serve]
state_dir = "{work}/state"
heartbeat_interval = 0.5

[wire]
keepalived_conf = "{keepalived_conf}"

[channels.log]
type = "exec"
command = ["/bin/sh", "-c", "echo \\"$KAHOOKS_STATE $KAHOOKS_TOPIC\\" >> {work}/alerts.log"]

[[rules]]
channels = ["log"]
"""


def keepalived(node: Node, name: str, work: Path, vrid: int) -> subprocess.Popen:
    directory = work / name
    directory.mkdir()
    (directory / "keepalived.conf").write_text(KEEPALIVED_CONF.format(name=name, vrid=vrid, vip=VIP))
    # keepalived speaks IPv6 VRRP from the link-local address: wait until duplicate address detection let it be.
    wait_for(lambda: "fe80" in node.run(["ip", "-6", "-o", "address", "show", "dev", "eth0", "scope", "link",
                                         "-tentative"]).stdout, 10, f"{name}'s link-local address")
    return node.popen(["keepalived", "-n", "-l", "-D", "-P", "-f", str(directory / "keepalived.conf"),
                       "-p", str(directory / "keepalived.pid"), "-r", str(directory / "vrrp.pid")],
                      stdout=open(directory / "keepalived.log", "ab"), stderr=subprocess.STDOUT)


def status(work: Path) -> dict:
    try:
        return json.loads((work / "lb1" / "state" / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def findings(work: Path) -> list[dict]:
    return status(work).get("wire", {}).get("findings", [])


def test_keepalived_announcing_our_ipv6_vip_from_another_node_is_a_duplicate_vip_ours_is_not(work: Path) -> None:
    processes: list[subprocess.Popen] = []
    with Network("khlwndp6") as network:
        # Signals reach what popen started (no nsenter in between); each keepalived has its own pid files.
        lb1, lb2 = network.add_node("lb1", 11, own_pids=False), network.add_node("lb2", 12, own_pids=False)
        try:
            processes.append(keepalived(lb1, "lb1-ka", work, 61))
            (work / "lb1" / "state").mkdir(parents=True)
            (work / "lb1" / "kahooks.toml").write_text(KAHOOKS_TOML.format(
                name="lb1", work=work / "lb1", keepalived_conf=work / "lb1-ka" / "keepalived.conf"))
            processes.append(lb1.popen([program("kahooks"), "serve", "-v", "-c", str(work / "lb1" / "kahooks.toml")],
                                       stdout=open(work / "lb1" / "serve.log", "ab"), stderr=subprocess.STDOUT,
                                       env=quiet_env()))
            wait_for(lambda: VIP in lb1.addresses(), 15, "lb1's keepalived to take the VIP")
            wait_for(lambda: status(work).get("wire", {}).get("arps", 0) > 0, 15,
                     "lb1's own Neighbor Advertisements for the VIP, heard leaving")
            time.sleep(1.5)  # two judgements more
            assert not any(item["kind"] == "duplicate_vip" for item in findings(work)), findings(work)

            lb2_mac = lb2.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip()
            processes.append(keepalived(lb2, "lb2-ka", work, 62))
            duplicate = wait_for(lambda: next((item for item in findings(work) if item["kind"] == "duplicate_vip"),
                                              None), 15, "lb1 to report the duplicate IPv6 VIP")
            assert duplicate["sentence"] == (f"duplicate VIP on eth0 for VRID 61 (VI_6): {VIP} is held here, and a "
                                             f"Neighbor Advertisement from {lb2_mac} claims it too"), duplicate
            wait_for(lambda: "ALERT wire duplicate_vip" in (work / "lb1" / "alerts.log").read_text(), 10,
                     "the alert delivered by lb1's channel")
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
