"""`kahooks status`: what the daemon is doing, read from its status.json and the spool.

Reads files only, so it works as any user who may read /run/kahooks, and it
tells a dead or stuck daemon apart from a live one by the heartbeat's age.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from kahooks.daemon.snapshot import Snapshot, WireState


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks (from kahooks.system.procfs): tells a reused pid apart."""
    from kahooks.system.procfs import read_stat

    info = read_stat(pid)
    return info.start if info is not None else None


class StatusUnreadable(Exception):
    """status.json exists but cannot be read (permission denied): one line for the operator."""


def read(state_dir: str) -> Snapshot | None:
    """The daemon's status, None when there is none; StatusUnreadable when it may not be read."""
    path = os.path.join(state_dir, "status.json")
    try:
        with open(path) as handle:
            data = json.load(handle)
    except PermissionError:
        raise StatusUnreadable(f"cannot read {path}: permission denied (run kahooks status as root)") from None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    from kahooks.daemon.snapshot import redacted

    snapshot: Snapshot = data  # type: ignore[assignment]  # written by the daemon as a Snapshot
    return redacted(snapshot)  # again: a status.json written by an older daemon shows no secret either


def daemon_alive(status: Snapshot, max_age: float, now: float | None = None) -> tuple[bool, str]:
    """(alive, why): alive when the heartbeat is fresh and its pid still runs."""
    now = time.time() if now is None else now
    age = now - (status.get("heartbeat") or 0)
    pid = status.get("pid")
    if status.get("stopped"):
        return False, f"stopped {ago(status['stopped'], now)} (pid {pid})"
    if age > max_age:
        return False, f"heartbeat {age:.0f} s old (pid {pid})"
    if not isinstance(pid, int) or not os.path.exists(f"/proc/{pid}"):
        return False, f"pid {pid} is not running"
    if status.get("pid_start") is not None and process_start(pid) != status["pid_start"]:
        return False, f"pid {pid} is another process now"
    return True, f"pid {pid}, heartbeat {age:.1f} s ago"


def ago(stamp: float | None, now: float) -> str:
    if not stamp:
        return "-"
    seconds = now - stamp
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def format_status(status: Snapshot, spool: dict[str, Any] | None, alive: tuple[bool, str],
                  now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"kahooks serve: {'running' if alive[0] else 'NOT RUNNING'} ({alive[1]}), config {status['config']}"]
    if status.get("maintenance"):
        lines.append("maintenance: a maintenance file exists, the node is drained")
    lines.append("")
    lines.append(f"{'CHECK':<16} {'STATE':<8} {'VALUE':>5}  {'SINCE':<14} WHY")
    for name, check in status["checks"].items():
        state = "unknown" if check["ok"] is None else ("healthy" if check["ok"] else "FAILED")
        if check.get("drained_by"):
            state = "drained"
        value = "-" if check["value"] is None else str(check["value"])
        lines.append(f"{name:<16} {state:<8} {value:>5}  {ago(check['since'], now):<14} {check['why']}")
        last = check["last"]
        if last["ok"] is not None and last["summary"] != check["why"]:
            lines.append(f"{'':<16} last run {ago(last['time'], now)}: {last['summary']}")
    if not status["checks"]:
        lines.append("(no checks configured)")
    lines.append("")
    transitions = status.get("transitions") or []
    lines.append("last transitions:" if transitions else "last transitions: none seen since the daemon started")
    for item in transitions[-10:]:
        lines.append(f"  {ago(item['time'], now):<14} {item['type']} {item['name']} {item['state']} "
                     f"(priority {item['priority']})")
    lines.extend(format_wire(status.get("wire"), now))
    if spool is not None:
        queued = ", ".join(f"{channel} {count}" for channel, count in spool["queued"].items() if count) or "none"
        lines.append("")
        lines.append(f"spool {status.get('spool_dir')}: {spool['incoming']} incoming, queued: {queued}, "
                     f"{spool['dead']} dead")
    return "\n".join(lines)


def format_wire(wire: WireState | None, now: float) -> list[str]:
    """The wire observer's view: each VRID heard, who advertises it, and the findings."""
    if not wire:
        return []
    if not wire["enabled"]:
        return ["", f"wire: {wire['why']}"]
    listening = ", ".join(f"{name} ({state})" if state != "listening" else name
                          for name, state in wire["interfaces"].items())
    lines = ["", f"wire: listening on {listening}: {wire['adverts']} adverts, {wire['arps']} ARP, "
                 f"{wire['dropped']} dropped by the kernel"]
    for vrid in wire["vrids"][:32]:
        owner = vrid["instance"] or "foreign"
        lines.append(f"  {vrid['interface']} VRID {vrid['vrid']} ({owner}):")
        for seen in vrid["sources"][:8]:
            who = " (this node)" if seen["local"] else ""
            lines.append(f"    {seen['source']}{who} priority {seen['priority']}, every {seen['interval']:g} s, "
                         f"v{seen['version']}, {', '.join(seen['addresses'][:4]) or 'no address'}, "
                         f"last {ago(seen['last'], now)}")
    findings = wire["findings"]
    lines.append("wire findings:" if findings else "wire findings: none")
    for finding in findings:
        lines.append(f"  {finding['kind'].upper()} since {ago(finding['since'], now)}: {finding['sentence']}")
    return lines
