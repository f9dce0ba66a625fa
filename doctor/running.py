"""Ask keepalived itself: its config test (`keepalived -t`) and, with --live, its running state.

`keepalived -t -f FILE` prints `(FILE: Line N) message` for what it rejects. Run in our own pid
namespace it can be stopped by a SIGTERM meant for a running keepalived, so as root it runs in a
new one (unshare). The running state comes from keepalived's JSON dump: the signal number that
`keepalived --signum=JSON` prints, sent to the pid in /run/keepalived.pid, makes its VRRP process
write /tmp/keepalived.json (Debian's keepalived is built with JSON support).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

from kahooks.doctor.findings import Finding

COMPLAINT = re.compile(r"^\((?P<file>[^:]+): Line (?P<line>\d+)\) (?P<message>.*)$")
STATES = {0: "INIT", 1: "BACKUP", 2: "MASTER", 3: "FAULT", 97: "DELETED", 98: "STOP"}
# keepalived -t lines that may only say this machine is not the node: the doctor may run elsewhere.
ELSEWHERE = ("Unknown interface", "Non-existent interface", "interface eth", "doesn't exist")


def config_test(path: str, timeout: float = 20) -> list[Finding] | None:
    """keepalived's own complaints about `path` as findings; None when keepalived is not installed."""
    keepalived = shutil.which("keepalived") or ("/usr/sbin/keepalived" if os.path.exists("/usr/sbin/keepalived") else None)
    if keepalived is None:
        return None
    command = [keepalived, "-t", "-l", "-f", path]
    try:
        result = _run_isolated(command, timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Finding("keepalived-t", "warning", path, 0, f"keepalived -t could not run: {exc}", "")]
    found = []
    for line in (result.stdout + result.stderr).splitlines():
        match = COMPLAINT.match(line.strip())
        message = match.group("message") if match else line.strip()
        if not message:
            continue
        elsewhere = any(fragment in message for fragment in ELSEWHERE)
        if elsewhere:
            message += " (an error on the node itself; here it may only mean this is not the node)"
        severity = "warning" if elsewhere or "warning" in message.lower() or "ignoring" in message.lower() else "error"
        found.append(Finding("keepalived-t", severity, match.group("file") if match else path,
                             int(match.group("line")) if match else 0, f"keepalived -t: {message}",
                             "see keepalived.conf(5)"))
    if result.returncode != 0 and not found:
        found.append(Finding("keepalived-t", "error", path, 0, f"keepalived -t exited {result.returncode}", ""))
    return found


def _run_isolated(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run `command` in its own pid namespace where it can be made (as root), else as is.

    In a chroot or a container unshare may fail to remount /proc ("cannot change root filesystem
    propagation"): a pid namespace alone still keeps a stray SIGTERM away."""
    unshare = shutil.which("unshare")
    wrapped = [[unshare, "--pid", "--fork", "--mount-proc", *command], [unshare, "--pid", "--fork", *command]] \
        if os.geteuid() == 0 and unshare else []
    for argv in wrapped:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if not (result.returncode != 0 and result.stderr.startswith("unshare: ") and not result.stdout):
            return result  # the command ran: only unshare's own failures start so
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@dataclass
class LiveInstance:
    name: str
    state: str
    effective_priority: int
    base_priority: int
    vips: list[str]
    track_scripts: list[str]


def live_state(pid_file: str = "/run/keepalived.pid", dump: str | None = None, wait: float = 3.0) -> list[LiveInstance]:
    """keepalived's VRRP instances as it sees them now; OSError/ValueError when it cannot be asked."""
    dump = dump or os.path.join(os.environ.get("TMPDIR", "/tmp"), "keepalived.json")
    with open(pid_file) as handle:
        pid = int(handle.read().split()[0])
    signum = int(subprocess.run(["keepalived", "--signum=JSON"], capture_output=True, text=True, timeout=10,
                                check=True).stdout.strip())
    before = os.stat(dump).st_mtime if os.path.exists(dump) else 0.0
    os.kill(pid, signum)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if os.path.exists(dump) and os.stat(dump).st_mtime > before:
            time.sleep(0.05)  # written by the VRRP process: let it finish the file
            break
        time.sleep(0.02)
    else:
        raise OSError(f"keepalived (pid {pid}) wrote no {dump} within {wait:g} s")
    with open(dump) as handle:
        entries = json.load(handle)
    return [LiveInstance(entry["data"]["iname"], STATES.get(entry["data"]["state"], str(entry["data"]["state"])),
                         entry["data"]["effective_priority"], entry["data"]["base_priority"],
                         [vip.split()[0].split("/")[0] for vip in entry["data"].get("vips", [])],
                         list(entry["data"].get("track_script", []))) for entry in entries]


def addresses_here() -> set[str]:
    """Every address configured on this node's interfaces."""
    result = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, timeout=10)
    return {fields[3].split("/")[0] for fields in (line.split() for line in result.stdout.splitlines()) if len(fields) > 3}
