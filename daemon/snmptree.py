"""The KAHOOKS-MIB tree: what `kahooks serve` reports (its status snapshot and the spool's depth) as OIDs.

Pure: a Snapshot, a spool depth and the daemon's liveness in, a sorted list of (OID, type, value) out.
`kahooks snmp` (admin/snmp.py) serves that list to snmpd over the pass_persist protocol; the shape
below is the one contrib/snmp/KAHOOKS-MIB.txt describes (keep them together). OIDs here are relative
to the base the operator chooses; types are pass_persist's words (integer, gauge, counter, string).

Tables are indexed by position (1, 2, ...) in name order, as `kahooks status` lists them: a row's
index can change when checks are added or removed, the name column says which row is which.
A cell with no value (a check whose track file holds nothing yet) is left out, as SNMP allows.

The wire observer's finding kinds are numbered from daemon/segment.py's KINDS (1, 2, ... in its
order; 0 a kind this version does not know), and named in the MIB by `mib_label`: a kind is added at
the end of KINDS, and tests/admin/test_snmp.py holds the MIB's enumeration to this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from kahooks.daemon.segment import KINDS

if TYPE_CHECKING:
    from kahooks.daemon.snapshot import Snapshot, WireState

# .1.3.6.1.4.1.8072.9999.9999 is net-snmp's netSnmpPlaypen, set aside for local use; .28 is kahooks'
# arc under it (the issue that brought SNMP). `kahooks snmp --base` and the MIB's last line move it.
DEFAULT_BASE = (1, 3, 6, 1, 4, 1, 8072, 9999, 9999, 28)
TEXT_LIMIT = 255  # the MIB's KahooksText is SIZE (0..255)
MAX32 = (1 << 32) - 1

CHECK_STATES = {"unknown": 0, "healthy": 1, "failed": 2, "drained": 3}
INSTANCE_STATES = {"MASTER": 1, "BACKUP": 2, "FAULT": 3, "STOP": 4, "DELETED": 5}  # 0: anything else
TRUE, FALSE = 1, 2  # SNMPv2-TC TruthValue
WIRE_KINDS = {kind: number for number, kind in enumerate(KINDS, 1)}  # 0: a kind this version does not know


def mib_label(kind: str) -> str:
    """A finding kind as an SMI enumeration label: `two_masters` -> `twoMasters` (SMI has no underscore)."""
    first, *rest = kind.split("_")
    return first + "".join(word.capitalize() for word in rest)


class Cell(NamedTuple):
    oid: tuple[int, ...]
    type: str   # pass_persist's type word
    value: str  # as written on the value line


def text(value: object) -> str:
    """One line of at most TEXT_LIMIT bytes: a newline would end pass_persist's value early."""
    flat = "".join(char if char.isprintable() else " " for char in str(value))
    data = flat.encode("utf-8")[:TEXT_LIMIT]
    return data.decode("utf-8", errors="ignore")


def gauge(value: float) -> str:
    return str(min(max(int(value), 0), MAX32))


def counter(value: int) -> str:
    return str(int(value) & MAX32)  # Counter32 wraps, as the MIB says


def integer(value: int) -> str:
    return str(min(max(int(value), -(1 << 31)), (1 << 31) - 1))


def check_state(check: dict[str, Any]) -> str:
    """The one word `kahooks status` shows for a check."""
    if check.get("drained_by"):
        return "drained"
    if check.get("ok") is None:
        return "unknown"
    return "healthy" if check["ok"] else "failed"


def cells(status: Snapshot | None, spool: dict[str, Any] | None, alive: tuple[bool, str],
          now: float | None = None) -> list[Cell]:
    """Every object's value, sorted by OID (relative to the base). KeyError or TypeError: a bad snapshot."""
    now = time.time() if now is None else now
    out: list[Cell] = []

    def add(oid: tuple[int, ...], kind: str, value: str) -> None:
        out.append(Cell(oid, kind, value))

    # kahooksDaemon (1)
    add((1, 1), "integer", str(1 if alive[0] else 2))
    add((1, 2), "string", text(alive[1]))
    if status is not None:
        add((1, 3), "integer", integer(status["pid"]))
        add((1, 4), "gauge", gauge(now - (status.get("heartbeat") or 0)))
        add((1, 5), "integer", str(TRUE if status.get("maintenance") else FALSE))
        healthy = alive[0] and all(check["ok"] and not check.get("drained_by") for check in status["checks"].values())
        add((1, 6), "integer", str(TRUE if healthy else FALSE))
        add((1, 7), "string", text(status.get("config") or ""))
    else:
        add((1, 6), "integer", str(FALSE))

    shown: dict[str, Any] = dict(status) if status is not None else {}
    checks = sorted((shown.get("checks") or {}).items())
    add((2, 1), "gauge", gauge(len(checks)))
    for row, (name, check) in enumerate(checks, 1):
        add((2, 2, 1, 2, row), "string", text(name))
        add((2, 2, 1, 3, row), "integer", str(CHECK_STATES[check_state(check)]))
        if check.get("value") is not None:
            add((2, 2, 1, 4, row), "integer", integer(check["value"]))
        add((2, 2, 1, 5, row), "string", text(check.get("why") or ""))
        add((2, 2, 1, 6, row), "string", text(check.get("kind") or ""))
        add((2, 2, 1, 7, row), "counter", counter(check.get("runs") or 0))
        add((2, 2, 1, 8, row), "counter", counter(check.get("failures") or 0))
        add((2, 2, 1, 9, row), "counter", counter(check.get("changes") or 0))
        if check.get("since"):
            add((2, 2, 1, 10, row), "gauge", gauge(now - check["since"]))

    instances = sorted((shown.get("instances") or {}).items())
    add((3, 1), "gauge", gauge(len(instances)))
    for row, (name, instance) in enumerate(instances, 1):
        add((3, 2, 1, 2, row), "string", text(name))
        add((3, 2, 1, 3, row), "integer", str(INSTANCE_STATES.get(str(instance.get("state")), 0)))
        if instance.get("since"):
            add((3, 2, 1, 4, row), "gauge", gauge(now - instance["since"]))

    add((4, 1), "integer", str(TRUE if spool is not None else FALSE))
    channels: list[tuple[str, int, int]] = []
    if spool is not None:
        add((4, 2), "gauge", gauge(spool["incoming"]))
        add((4, 3), "gauge", gauge(sum(spool["queued"].values())))
        add((4, 4), "gauge", gauge(spool["dead"]))
        if spool.get("oldest"):
            add((4, 5), "gauge", gauge(now - spool["oldest"]))
        dead_by = spool.get("dead_by_channel") or {}
        names = sorted(set(spool["queued"]) | set(dead_by))
        channels = [(name, spool["queued"].get(name, 0), dead_by.get(name, 0)) for name in names]
    for row, (name, queued, dead) in enumerate(channels, 1):
        add((5, 1, 1, 2, row), "string", text(name))
        add((5, 1, 1, 3, row), "gauge", gauge(queued))
        add((5, 1, 1, 4, row), "gauge", gauge(dead))
    wire_cells(shown.get("wire"), now, add)
    return sorted(out)


def wire_cells(wire: WireState | None, now: float, add: Callable[[tuple[int, ...], str, str], None]) -> None:
    """kahooksWire (7): the observer's state, the interfaces it listens on, its findings."""
    if not wire:  # no daemon, or one from before the wire observer
        add((7, 1), "integer", str(FALSE))
        return
    add((7, 1), "integer", str(TRUE if wire.get("enabled") else FALSE))
    add((7, 2), "string", text(wire.get("why") or ""))
    interfaces = sorted((wire.get("interfaces") or {}).items())
    add((7, 3), "gauge", gauge(len(interfaces)))
    for row, (name, state) in enumerate(interfaces, 1):
        add((7, 4, 1, 2, row), "string", text(name))
        add((7, 4, 1, 3, row), "integer", str(TRUE if state == "listening" else FALSE))
        add((7, 4, 1, 4, row), "string", text(state))
    findings = sorted(wire.get("findings") or [],
                      key=lambda item: (str(item["instance"]), str(item["kind"]), str(item["interface"]), item["vrid"]))
    add((7, 5), "gauge", gauge(len(findings)))
    for row, finding in enumerate(findings, 1):
        add((7, 6, 1, 2, row), "integer", str(WIRE_KINDS.get(finding["kind"], 0)))
        add((7, 6, 1, 3, row), "string", text(finding["instance"]))
        add((7, 6, 1, 4, row), "string", text(finding["interface"]))
        add((7, 6, 1, 5, row), "integer", integer(finding["vrid"]))
        add((7, 6, 1, 6, row), "string", text(finding["sentence"]))
        if finding.get("since"):
            add((7, 6, 1, 7, row), "gauge", gauge(now - finding["since"]))
    add((7, 7), "counter", counter(wire.get("packets") or 0))
    add((7, 8), "counter", counter(wire.get("adverts") or 0))
    add((7, 9), "counter", counter(wire.get("arps") or 0))
    add((7, 10), "counter", counter(wire.get("dropped") or 0))
