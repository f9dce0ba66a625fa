"""`kahooks doctor` when `keepalived -t` ends by its own SIGTERM (exit 143): keepalived 2.2.7 and older
do that after checking a script as the script user unless they run as pid 1 of a pid namespace
(doctor/running.py cites the code and the fix, 2.2.8's commit aae8e910). The doctor must say so,
not report a configuration error. On a keepalived that has the fix (trixie's 2.3.3) the same file
passes `keepalived -t` with exit 0 and the doctor says nothing of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from kahooks.lab.netns import Network
from tests.support.programs import program, quiet_env

pytestmark = pytest.mark.root
CONF = """\
global_defs {
    enable_script_security
    script_user keepalived_script
}
vrrp_script chk_true {
    script "/bin/true"
    interval 1
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.10/24
    }
    track_script {
        chk_true
    }
}
"""


def keepalived_version() -> tuple[int, ...]:
    shown = subprocess.run(["keepalived", "-v"], capture_output=True, text=True, timeout=20)
    found = re.search(r"Keepalived v(\d+)\.(\d+)\.(\d+)", shown.stdout + shown.stderr)
    assert found, shown
    return tuple(int(part) for part in found.groups())


def test_keepalived_t_killing_itself_is_explained_not_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CONF)
    os.chmod(tmp_path, 0o755)
    # A PATH with keepalived and no unshare: the doctor runs keepalived -t as its own child, as it must
    # where no pid namespace can be made (a container without CAP_SYS_ADMIN).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "keepalived").symlink_to("/usr/sbin/keepalived")
    fixed = keepalived_version() >= (2, 2, 8)
    with Network("khlkat") as net:
        node = net.add_node("lb", 11)
        # As a child of a shell inside the node (not pid 1 there, its parent visible): the premise.
        raw = node.run(["sh", "-c", f"keepalived -t -f {conf}; echo exit=$?"], check=False)
        assert raw.stdout.strip().endswith("exit=0" if fixed else "exit=143"), raw
        doctor = node.run(["/usr/bin/env", f"PATH={bin_dir}", program("kahooks"), "doctor", "-f", str(conf),
                           "--json"], check=False, env=quiet_env())
    assert doctor.returncode == 0, doctor  # no error
    findings = [item for item in json.loads(doctor.stdout)["findings"] if item["code"] == "keepalived-t"]
    assert not [item for item in findings if item["severity"] == "error"], findings
    explained = [item for item in findings if "own SIGTERM (exit 143)" in item["message"]]
    assert len(explained) == (0 if fixed else 1), findings
    if not fixed:
        assert "not a configuration error" in explained[0]["message"] and "2.2.8" in explained[0]["fix"], explained
