"""contrib/ansible: the kahooks role, run by ansible-core from PyPI (in a venv of its own, made here).

Fast (CI): syntax, ansible-lint, argument_specs refusing bad variables, the role applied twice to a
prepared root on this machine (connection local, every path under the test's folder; kahooks
installed by the role through pipx on one node and into a venv on the other, offline, from the
checkout's wheel), the second run changing nothing, and the doctor's gate stopping the play before a
node is touched (there kahooks is already installed: the test's own venv). The full run on a fresh, booted Debian root (install
from the .deb, units started, reloads) takes minutes: KAHOOKS_ANSIBLE_FULL=1 runs it
(tests/lab/test_ansible_fresh_root.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml

from kahooks.lab.install import package_folders
from tests.support.ansible import ANSIBLE, BIN, CHECKOUT, ansible_venv, env_for, playbook, recap

ROLE = ANSIBLE / "roles" / "kahooks"
# ansible-core and ansible-lint come from PyPI, which `./run test-root` (offline) does not reach.
pytestmark = pytest.mark.skipif(bool(os.environ.get("KAHOOKS_IN_ROOT")),
                                reason="inside `./run in-root` (offline): ansible-core comes from PyPI; runs on the host")


@pytest.fixture(scope="module")
def ansible(lab_bin: Path) -> Path:
    PAIR_VARS.update({"kahooks_bin_dir": str(lab_bin), "kahooks_gate_command": str(lab_bin / "kahooks")})
    return ansible_venv()


# kahooks_bin_dir and kahooks_gate_command: the lab's install (lab_bin, set below), which keepalived's
# script user can reach wherever the checkout lies; the test venv's bin may be in a folder only root may
# enter (a clone in a mktemp -d folder), and the node's validate would rightly refuse its scripts.
PAIR_VARS = {
    "kahooks_install": "none",
    "kahooks_manage_services": False,
    "kahooks_checks": [{"name": "web", "run": "ka-check-port 127.0.0.1:80", "interval": 1, "rise": 2}],
    "kahooks_channels": {"log": {"type": "syslog", "address": "/dev/log", "ident": "kahooks"}},
    "kahooks_rules": [{"channels": ["log"]}],
}


def prepared_pair(tmp_path: Path, priorities: tuple[int, int] = (150, 100), weight: int = 0,
                  extra: dict | None = None) -> Path:
    """An inventory of two nodes on this machine (connection local), each writing under tmp_path/NODE."""
    hosts = {}
    for name, priority in zip(("lb1", "lb2"), priorities):
        root = tmp_path / name
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": str(ansible_venv() / "python"),
                       "kahooks_config": f"{root}/etc/kahooks/kahooks.toml",
                       "kahooks_keepalived_conf": f"{root}/etc/keepalived/keepalived.conf",
                       "kahooks_state_dir": f"{root}/run/kahooks", "kahooks_spool_dir": f"{root}/spool",
                       "kahooks_instances": [{"name": "VI_1", "interface": "lo", "virtual_router_id": 51,
                                              "priority": priority, "virtual_ipaddresses": ["192.0.2.100/32"]}]}
    variables = json.loads(json.dumps(PAIR_VARS))
    variables["kahooks_checks"][0]["weight"] = weight
    variables.update(extra or {})
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": variables}}))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"name": "Pair", "hosts": "all", "gather_facts": False,
                                                         "roles": ["kahooks"]}]))
    return inventory


def wheelhouse() -> Path:
    """kahooks' dependencies as wheels (and pip's own), downloaded from PyPI once beside the test venv:
    the role's venv and pipx installs then run offline (--no-index --find-links)."""
    requirements = [*tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["dependencies"],
                    "pip", "setuptools", "wheel"]
    house = BIN.parent / "wheelhouse"
    done = house / ("complete-" + hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12])
    with open(BIN.parent / "wheelhouse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(house, ignore_errors=True)
            subprocess.run([str(ansible_venv() / "pip"), "download", "-q", "--disable-pip-version-check", "-d", str(house),
                            *requirements], check=True, timeout=600)
            done.touch()
    return house


def kahooks_wheel(out: Path) -> Path:
    """The checkout as a wheel, built from a copy (setuptools writes build/ beside the sources), offline."""
    source = out / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(CHECKOUT / name, source / name)
    for folder in (*package_folders(CHECKOUT), "contrib"):
        shutil.copytree(CHECKOUT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([str(BIN / "pip"), "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                            "--no-build-isolation", "--no-index", "-w", str(out), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    return next(out.glob("kahooks-*.whl"))


def test_the_role_and_its_example_pass_syntax_check_and_ansible_lint(ansible: Path, tmp_path: Path) -> None:
    checked = playbook(ansible, tmp_path, "--syntax-check", "-i", str(ANSIBLE / "inventory.yml"), str(ANSIBLE / "site.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    linted = subprocess.run([str(ansible / "ansible-lint"), "--offline", "--nocolor", "roles/kahooks", "site.yml"],
                            capture_output=True, text=True, timeout=300, env=env_for(tmp_path), cwd=ANSIBLE)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_argument_specs_refuse_bad_variables_before_any_task(ansible: Path, tmp_path: Path) -> None:
    inventory = prepared_pair(tmp_path, extra={"kahooks_install": "rpm"})
    refused = playbook(ansible, tmp_path, "-i", str(inventory), "play.yml")
    assert refused.returncode != 0 and "value of kahooks_install must be one of: deb, venv, pipx, none" in refused.stdout, \
        refused.stdout
    inventory = prepared_pair(tmp_path, extra={"kahooks_checks": [{"name": "web"}]})
    refused = playbook(ansible, tmp_path, "-i", str(inventory), "play.yml")
    assert "missing required arguments: run" in refused.stdout, refused.stdout
    assert not (tmp_path / "lb1" / "etc").exists()


def test_installed_through_pipx_and_a_venv_offline_and_applied_twice_the_second_run_changes_nothing(
        ansible: Path, tmp_path: Path) -> None:
    """lb1 installs kahooks through pipx, lb2 into a venv, both from the checkout's wheel and a local
    wheelhouse (no index); the programs land in each node's bin folder, where keepalived.conf names them
    (the node's validate: runs keepalived -t, which refuses a heartbeat guard whose program is missing);
    the second run changes nothing, the install included."""
    house, wheel = wheelhouse(), kahooks_wheel(tmp_path / "wheel")
    offline = f"--no-index --find-links {house}"
    # Where keepalived's script_user can reach the programs (pytest's folders are root's alone), as
    # /usr/local is on a node.
    places = Path(tempfile.mkdtemp(prefix="kahooks-ansible-install-"))
    try:
        places.chmod(0o755)
        inventory = prepared_pair(tmp_path, extra={"kahooks_pip_spec": str(wheel), "kahooks_pip_extra_args": offline})
        hosts = yaml.safe_load(inventory.read_text())
        hosts["all"]["hosts"]["lb1"] |= {"kahooks_install": "pipx", "kahooks_pipx_command": str(ansible / "pipx"),
                                         "kahooks_pipx_home": str(places / "pipx"), "kahooks_bin_dir": str(places / "bin1")}
        hosts["all"]["hosts"]["lb2"] |= {"kahooks_install": "venv", "kahooks_venv": str(places / "venv"),
                                         "kahooks_bin_dir": str(places / "bin2")}
        inventory.write_text(yaml.safe_dump(hosts))
        first = playbook(ansible, tmp_path, "-i", str(inventory), "play.yml")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        assert all(host["changed"] > 0 and host["failed"] == 0 for host in recap(first.stdout).values()), first.stdout
        for node, bin_dir in (("lb1", places / "bin1"), ("lb2", places / "bin2")):
            programs = {path.name for path in bin_dir.iterdir()}
            assert {"kahooks", "ka-notify", "ka-check-heartbeat", "ka-check-exec"} <= programs, programs
            version = subprocess.run([str(bin_dir / "kahooks"), "--version"], capture_output=True, text=True)
            assert version.returncode == 0 and "0.1.0" in version.stdout, version
            conf = (tmp_path / node / "etc" / "keepalived" / "keepalived.conf").read_text()
            assert f"{bin_dir}/ka-check-heartbeat" in conf and f"file {tmp_path}/{node}/run/kahooks/track/web" in conf
            assert ("priority 150" if node == "lb1" else "priority 100") in conf
        assert (places / "pipx" / "venvs" / "kahooks").is_dir() and (places / "venv" / "bin" / "kahooks").exists()
        toml = tmp_path / "lb2" / "etc" / "kahooks" / "kahooks.toml"
        validated = subprocess.run([str(BIN / "kahooks"), "validate", "-c", str(toml)], capture_output=True, text=True)
        assert validated.returncode == 0 and "1 channel, 1 rule, 1 check" in validated.stdout, validated
        second = playbook(ansible, tmp_path, "-i", str(inventory), "play.yml")
        assert second.returncode == 0, second.stdout[-4000:]
        assert {name: host["changed"] for name, host in recap(second.stdout).items()} == {"lb1": 0, "lb2": 0}, \
            second.stdout[-4000:]
    finally:
        shutil.rmtree(places, ignore_errors=True)


def test_a_pair_the_doctor_refuses_stops_the_play_before_any_node_is_touched(ansible: Path, tmp_path: Path) -> None:
    # Equal priorities and a check that takes nothing away: lb1 stays MASTER whatever fails.
    inventory = prepared_pair(tmp_path, priorities=(150, 100), weight=-1)
    refused = playbook(ansible, tmp_path, "-i", str(inventory), "play.yml")
    assert refused.returncode != 0, refused.stdout
    assert "[failover-never-happens]" in refused.stdout, refused.stdout
    assert not (tmp_path / "lb1").exists() and not (tmp_path / "lb2").exists()
    assert "Write kahooks.toml" not in refused.stdout
    assert not list((tmp_path / "controller-tmp").glob("*kahooks-gate*")), "the rendered configs were left behind"
    # Each node's own validate: sees one file and cannot tell: only the controller's pair gate stops it.
    inventory = prepared_pair(tmp_path, priorities=(150, 100), weight=-1, extra={"kahooks_gate_command": ""})
    alone = playbook(ansible, tmp_path, "-i", str(inventory), "play.yml")
    assert alone.returncode == 0 and (tmp_path / "lb1" / "etc" / "keepalived" / "keepalived.conf").exists(), alone.stdout


def test_a_config_the_node_refuses_is_never_written(ansible: Path, tmp_path: Path) -> None:
    # The node's validate: runs kahooks doctor --gate on the node itself: here a heartbeat guard whose
    # program is not installed where the config says (the controller's --elsewhere gate cannot know).
    inventory = prepared_pair(tmp_path, extra={"kahooks_heartbeat_max_age": 3})
    first = playbook(ansible, tmp_path, "-i", str(inventory), "play.yml")
    assert first.returncode == 0, first.stdout
    conf = tmp_path / "lb1" / "etc" / "keepalived" / "keepalived.conf"
    before = conf.read_text()
    (tmp_path / "bin").mkdir()
    os.symlink(Path(PAIR_VARS["kahooks_bin_dir"]) / "kahooks", tmp_path / "bin" / "kahooks")  # not ka-check-heartbeat
    inventory = prepared_pair(tmp_path, priorities=(140, 100), extra={"kahooks_bin_dir": str(tmp_path / "bin")})
    refused = playbook(ansible, tmp_path, "-i", str(inventory), "play.yml", "--limit", "lb1")
    assert refused.returncode != 0 and "[script-missing]" in refused.stdout, refused.stdout
    assert conf.read_text() == before

