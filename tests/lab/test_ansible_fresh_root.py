"""The Ansible role applied to two fresh Debian roots (12; and 13, with the package built on 13) booted
with systemd in a lab network: the first run converges, the second changes nothing, the deployed pair
fails over when haproxy is killed, and a pair the doctor refuses stops the play with the nodes untouched.

Minutes long (debootstrap, the .deb, two boots): run with KAHOOKS_ANSIBLE_FULL=1. ansible-core comes
from PyPI into its own venv (tests/contrib/test_ansible.py makes it); the connection is a tiny
nsenter plugin beside this file (community.general's chroot is not in ansible-core)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from kahooks.lab.netns import LabError, Network, wait_for
from tests.lab.booted import Booted, write_standin
from tests.lab.packaging import CHECKOUT, OTHER_RELEASE, System
from tests.support.ansible import BIN, ansible_venv, env_for, recap

pytestmark = [pytest.mark.root, pytest.mark.timeout(1500),
              pytest.mark.skipif(os.environ.get("KAHOOKS_ANSIBLE_FULL") != "1",
                                 reason="minutes long: KAHOOKS_ANSIBLE_FULL=1 runs it")]
VIP = "192.0.2.100"


def inventory(path: Path, deb: Path, pids: dict[str, int], weight: int = 0) -> Path:
    hosts = {name: {"ansible_connection": "nsenter", "ansible_nsenter_pid": pid,
                    "ansible_python_interpreter": "/usr/bin/python3", "vrrp_priority": priority}
             for (name, pid), priority in zip(pids.items(), (150, 100))}
    variables = {
        "kahooks_install": "deb", "kahooks_deb": str(deb), "kahooks_gate_command": str(BIN / "kahooks"),
        "kahooks_checks": [{"name": "haproxy", "run": "ka-check-process --pidfile /run/haproxy.pid", "interval": 1,
                            "weight": weight}],
        "kahooks_instances": [{"name": "VI_1", "interface": "eth0", "virtual_router_id": 51,
                               "priority": "{{ vrrp_priority }}", "virtual_ipaddresses": [f"{VIP}/24 dev eth0"]}],
        "kahooks_channels": {"out": {"type": "exec", "command": ["/bin/sh", "-c",
                                                                 "echo $KAHOOKS_STATE >> /var/spool/kahooks/delivered"]}},
        "kahooks_rules": [{"channels": ["out"]}],
    }
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": variables}}))
    return path


def play(work: Path, inventory_path: Path) -> subprocess.CompletedProcess[str]:
    (work / "play.yml").write_text(yaml.safe_dump([{"name": "Pair", "hosts": "all", "gather_facts": False,
                                                     "roles": ["kahooks"]}]))
    env = env_for(work) | {"ANSIBLE_CONNECTION_PLUGINS": str(Path(__file__).parent / "ansible_plugins" / "connection")}
    (work / "controller-tmp").mkdir(exist_ok=True)
    return subprocess.run([str(ansible_venv() / "ansible-playbook"), "-i", str(inventory_path), "play.yml"],
                          capture_output=True, text=True, timeout=900, env=env, cwd=work)


@pytest.mark.parametrize("release", [None, OTHER_RELEASE], ids=["this-release", OTHER_RELEASE])
def test_the_role_on_two_fresh_booted_debian_roots(release: str | None, request: pytest.FixtureRequest) -> None:
    """This machine's release with the package built here; trixie with the package built on trixie."""
    deb: Path = request.getfixturevalue("other_release_deb" if release else "deb")
    ansible_venv()
    parent = Path(tempfile.mkdtemp(prefix="kahooks-ansible-"))
    try:
        chosen = ["--release", release] if release else []
        made = subprocess.run(["bash", str(CHECKOUT / "run"), "fresh-root", *chosen, str(parent / "lb1"), str(deb),
                               "systemd-sysv", "python3-apt", "keepalived"], capture_output=True, text=True, timeout=900)
        assert made.returncode == 0, made.stderr[-3000:]
        # Ansible needs Python on the node and the root boots with systemd, as any cloud image: installed
        # from what fresh-root downloaded.
        first = System(parent / "lb1")
        python = first.run(["apt-get", "install", "-y", "-qq", "--no-download", "python3", "python3-apt", "systemd-sysv"],
                           timeout=300)
        assert python.returncode == 0, python.stdout[-2000:] + python.stderr
        write_standin(first)
        subprocess.run(["cp", "-a", str(parent / "lb1"), str(parent / "lb2")], check=True, timeout=300)
        # Each release its own lab tag: the two may run at once.
        with Network("khls2ans13" if release else "khlansib") as net:
            nodes = {name: net.add_node(name, index, own_pids=False) for name, index in (("lb1", 21), ("lb2", 22))}
            with Booted(parent / "lb1", nodes["lb1"].namespace) as lb1, \
                    Booted(parent / "lb2", nodes["lb2"].namespace) as lb2:
                booted = {"lb1": lb1, "lb2": lb2}
                hosts = inventory(parent / "inventory.yml", deb, {name: root.init for name, root in booted.items()})
                converged = play(parent, hosts)
                assert converged.returncode == 0, (converged.stdout[-3000:] + converged.stderr[-2000:]
                                                   + lb1.journal("keepalived") + lb1.journal("kahooks"))
                print(recap(converged.stdout))
                again = play(parent, hosts)
                assert again.returncode == 0, again.stdout[-4000:]
                assert {name: host["changed"] for name, host in recap(again.stdout).items()} == {"lb1": 0, "lb2": 0}, \
                    again.stdout[-4000:]
                for root in booted.values():
                    for unit in ("kahooks", "keepalived"):
                        assert root.run("systemctl", "is-active", unit).stdout.strip() == "active", root.journal(unit)
                    assert root.run("systemd-run", "--unit=haproxy", "/usr/local/bin/standin",
                                    "/run/haproxy.pid").returncode == 0
                try:
                    wait_for(lambda: VIP in nodes["lb1"].addresses(), 30, "lb1 (150) to hold the VIP")
                    assert lb1.run("sh", "-c", "kill -9 $(cat /run/haproxy.pid)").returncode == 0
                    wait_for(lambda: VIP in nodes["lb2"].addresses() and VIP not in nodes["lb1"].addresses(), 20,
                             "the VIP on lb2 once haproxy on lb1 is killed")
                except LabError:
                    raise AssertionError(lb1.journal("keepalived") + lb2.journal("keepalived")) from None
                # Only kahooks.toml changes (rise 2): kahooks is reloaded (same pid, SIGHUP), keepalived left alone.
                pids = {(name, unit): root.run("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip()
                        for name, root in booted.items() for unit in ("kahooks", "keepalived")}
                changed = yaml.safe_load(hosts.read_text())
                changed["all"]["vars"]["kahooks_checks"][0]["rise"] = 2
                (parent / "changed.yml").write_text(yaml.safe_dump(changed))
                reloaded = play(parent, parent / "changed.yml")
                assert reloaded.returncode == 0, reloaded.stdout[-4000:]
                assert "RUNNING HANDLER [kahooks : Reload kahooks]" in reloaded.stdout
                assert "Reload keepalived" not in reloaded.stdout and "Restart kahooks]" not in reloaded.stdout
                assert {name: host["changed"] for name, host in recap(reloaded.stdout).items()} == {"lb1": 2, "lb2": 2}
                assert pids == {(name, unit): root.run("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip()
                                for name, root in booted.items() for unit in ("kahooks", "keepalived")}
                assert "reload" in lb1.journal("kahooks").lower()
                before = {name: root.text("/etc/keepalived/keepalived.conf") for name, root in booted.items()}
                refused = play(parent, inventory(parent / "refused.yml", deb,
                                                 {name: root.init for name, root in booted.items()}, weight=-1))
                assert refused.returncode != 0 and "[failover-never-happens]" in refused.stdout, refused.stdout[-3000:]
                assert {name: root.text("/etc/keepalived/keepalived.conf") for name, root in booted.items()} == before
                print(json.dumps({"first": recap(converged.stdout), "second": recap(again.stdout)}))
    finally:
        for name in ("lb1", "lb2"):
            subprocess.run(["umount", "-R", str(parent / name / "proc")], capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)
