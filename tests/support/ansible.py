"""ansible-core and ansible-lint from PyPI in a venv beside the test venv, and running the role with them
(tests/contrib/test_ansible.py on this machine, tests/lab/test_ansible_fresh_root.py on a booted root)."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
ANSIBLE = CHECKOUT / "contrib" / "ansible"
BIN = Path(sys.executable).parent
# Pinned to what the role was linted and run with: ansible-core 2.16 still runs Debian 12's Python 3.11 on nodes.
# pipx: the role's pipx install, run here as a node would run it.
REQUIREMENTS = ["ansible-core>=2.16,<2.17", "ansible-lint>=24,<27", "pipx>=1.1,<2"]


def ansible_venv() -> Path:
    """A venv with ansible-core and ansible-lint beside the test venv, made once (locked: parallel runs)."""
    venv = BIN.parent / "ansible"
    with open(BIN.parent / "ansible.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((venv / "bin" / program).exists() for program in ("ansible-lint", "pipx")):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
                           check=True, timeout=900)
    return venv / "bin"


def env_for(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_FORCE_COLOR": "0",
            "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log", "PYTHONSAFEPATH": "", "TMPDIR": str(tmp_path / "controller-tmp")}


def playbook(ansible: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "controller-tmp").mkdir(exist_ok=True)
    return subprocess.run([str(ansible / "ansible-playbook"), *args], capture_output=True, text=True, timeout=300,
                          env=env_for(tmp_path), cwd=tmp_path)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP: host -> {ok, changed, failed, ...}."""
    hosts = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        hosts[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts
