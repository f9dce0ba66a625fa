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
import time
from dataclasses import dataclass

from kahooks.doctor.findings import Finding
from kahooks.errors import KahooksError
from kahooks.files import safefs
from kahooks.system import commands

COMPLAINT = re.compile(r"^\((?P<file>[^:]+): Line (?P<line>\d+)\) (?P<message>.*)$")
STATES = {0: "INIT", 1: "BACKUP", 2: "MASTER", 3: "FAULT", 97: "DELETED", 98: "STOP"}
# keepalived -t lines that may only say this machine is not the node: the doctor may run elsewhere.
ELSEWHERE = ("Unknown interface", "Non-existent interface", "interface eth", "doesn't exist")

# keepalived up to 2.2.7 ends its own config test with SIGTERM (exit 143; -15 seen from Python) once
# it has checked a script as its script user (script_user, or keepalived_script, its default when
# that user exists), unless it runs as pid 1 of a pid namespace: lib/notify.c check_script_secure()
# restores the parent-death signal and then kills itself when main_pid != getppid(), which in -t mode
# (no parent keepalived) is always true. 2.2.8 skips that under -t (commit aae8e910, "config_check:
# Don't kill process when checking validity of scripts"; 2.3.3 has it). Not an error in the file.
SELF_KILLED = (143, -15)
SELF_KILLED_WORDS = ("keepalived -t ended by its own SIGTERM (exit 143): keepalived 2.2.7 and older stop "
                     "their config test that way after checking a script as the script user; this is not "
                     "a configuration error, but keepalived's checks after that point did not run")
SELF_KILLED_FIX = ("run the doctor as root with unshare(1) available (keepalived -t as pid 1 of its own pid "
                   "namespace does not do it), or use keepalived 2.2.8 or newer")


def config_test(path: str, timeout: float = 20) -> list[Finding] | None:
    """keepalived's own complaints about `path` as findings; None when keepalived is not installed."""
    keepalived = shutil.which("keepalived") or ("/usr/sbin/keepalived" if os.path.exists("/usr/sbin/keepalived") else None)
    if keepalived is None:
        return None
    command = [keepalived, "-t", "-l", "-f", path]
    try:
        result = _run_isolated(command, timeout)
    except OSError as exc:
        return [Finding("keepalived-t", "warning", path, 0, f"keepalived -t could not run: {exc}", "")]
    if result.timed_out:
        return [Finding("keepalived-t", "warning", path, 0,
                        f"keepalived -t could not run: it did not end within {timeout:g} s", "")]
    found = []
    for line in result.output.splitlines():
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
    if result.code in SELF_KILLED:
        found.append(Finding("keepalived-t", "warning", path, 0, SELF_KILLED_WORDS, SELF_KILLED_FIX))
    elif result.code != 0 and not found:
        found.append(Finding("keepalived-t", "error", path, 0, f"keepalived -t exited {result.code}", ""))
    return found


def _run_isolated(command: list[str], timeout: float) -> commands.Finished:
    """Run `command` (kahooks.system.commands: its output's tail, stdout and stderr together) in its own pid
    namespace where it can be made (as root), else as is.

    In a chroot or a container unshare may fail to remount /proc ("cannot change root filesystem
    propagation"): a pid namespace alone still keeps a stray SIGTERM away."""
    unshare = shutil.which("unshare")
    wrapped = [[unshare, "--pid", "--fork", "--mount-proc", *command], [unshare, "--pid", "--fork", *command]] \
        if os.geteuid() == 0 and unshare else []
    for argv in wrapped:
        result = commands.run(argv, timeout)
        if result.timed_out or not (result.code != 0 and result.output.startswith("unshare: ")):
            return result  # the command ran: only unshare's own failures start so
    return commands.run(command, timeout)


MAX_DUMP = 8 * 1024 * 1024  # keepalived's dump is about 2 kB an instance
MAX_PID_FILE = 64


class DumpUnreadable(KahooksError):
    """keepalived's pid file or JSON dump cannot be read safely or is not what keepalived writes."""


class DumpNotJson(DumpUnreadable):
    """The dump does not parse: not JSON at all, or not yet (keepalived is still writing it)."""


@dataclass
class LiveInstance:
    name: str
    state: str
    effective_priority: int
    base_priority: int
    vips: list[str]
    track_scripts: list[str]


def live_state(pid_file: str = "/run/keepalived.pid", dump: str | None = None, wait: float = 3.0) -> list[LiveInstance]:
    """keepalived's VRRP instances as it sees them now; OSError/ValueError/DumpUnreadable when it cannot be asked.

    The dump is in /tmp, where anyone may plant a file or a link: it is read through safefs (no
    link another user made, no FIFO, capped) and only entries of keepalived's shape are kept."""
    dump = dump or os.path.join(os.environ.get("TMPDIR", "/tmp"), "keepalived.json")
    pid = _pid(pid_file)
    signum = _json_signal()
    before = _stamp(dump)
    os.kill(pid, signum)
    deadline = time.monotonic() + wait
    while _stamp(dump) == before:
        if time.monotonic() > deadline:
            raise OSError(f"keepalived (pid {pid}) wrote no {dump} within {wait:g} s")
        time.sleep(0.02)
    # The VRRP process writes the file in place, in pieces (vrrp_json.c: fopen, fprintf..., fclose;
    # 2.2.7 and 2.3.3 alike): what does not parse yet is read again until the deadline.
    while True:
        time.sleep(0.05)
        try:
            return parse_dump(_read(dump, MAX_DUMP), dump)
        except DumpNotJson:
            if time.monotonic() > deadline:
                raise


def _json_signal() -> int:
    """The signal that makes keepalived write its JSON dump, as the installed keepalived says."""
    asked = commands.run(["keepalived", "--signum=JSON"], 10)
    if asked.code != 0:
        raise OSError(f"keepalived --signum=JSON {'timed out' if asked.timed_out else f'exited {asked.code}'}: "
                      f"{asked.last_line}")
    return int(asked.output.strip())


def _read(path: str, limit: int) -> bytes:
    """The file keepalived (root) wrote: not a file another user made in its place, before or after it."""
    try:
        fd = safefs.open_regular(path)
        try:
            owner = os.fstat(fd).st_uid
            if owner not in (0, os.geteuid()):
                raise DumpUnreadable(f"{path} belongs to uid {owner}, not to keepalived: not read")
            return safefs.read_fd(fd, limit, path)
        finally:
            os.close(fd)
    except safefs.UnsafeFile as exc:
        raise DumpUnreadable(str(exc)) from None


def _stamp(path: str) -> tuple[int, int, int]:
    """(inode, size, mtime in ns) of `path`, zeros when it is missing: what changes while it is written."""
    try:
        status = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def _pid(pid_file: str) -> int:
    words = _read(pid_file, MAX_PID_FILE).split()
    if not words or not words[0].isdigit() or not 1 < int(words[0]) < 2**22:
        raise DumpUnreadable(f"{pid_file} holds no process id")
    return int(words[0])


def parse_dump(raw: bytes, shown: str) -> list[LiveInstance]:
    """The instances of keepalived's JSON dump (vrrp_json.c): a list of {"data": {...}}; an entry of any
    other shape is skipped, a dump that is no list of them is one DumpUnreadable line."""
    try:
        entries = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise DumpNotJson(f"{shown} is not keepalived's JSON dump: {str(exc)[:120]}") from None
    if not isinstance(entries, list):
        raise DumpUnreadable(f"{shown} is not keepalived's JSON dump: a list of instances was expected, "
                             f"not {type(entries).__name__}")
    return [instance for instance in map(_instance, entries) if instance is not None]


def _instance(entry: object) -> LiveInstance | None:
    data = entry.get("data") if isinstance(entry, dict) else None
    if not isinstance(data, dict):
        return None
    name, state = data.get("iname"), data.get("state")
    priorities = data.get("effective_priority"), data.get("base_priority")
    vips, scripts = data.get("vips", []), data.get("track_script", [])
    if not isinstance(name, str) or not name or not _whole(state) or not all(map(_whole, priorities)) \
            or not isinstance(vips, list) or not isinstance(scripts, list):
        return None
    addresses = [vip.split()[0].split("/")[0] for vip in vips if isinstance(vip, str) and vip.split()]
    return LiveInstance(name, STATES.get(state, str(state)), priorities[0], priorities[1], addresses,  # type: ignore[arg-type]
                        [script for script in scripts if isinstance(script, str)])


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255

