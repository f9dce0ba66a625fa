"""`kahooks snmp`: net-snmp's pass_persist protocol over stdin/stdout, answered from the daemon's status.

snmpd starts it once (`pass_persist BASE /usr/bin/kahooks snmp`) and writes requests on its stdin:
`PING` -> `PONG`; `get` / `getnext` and an OID line -> OID, type and value lines, or `NONE`;
`set` and two lines -> `not-writable`. Nothing here touches the daemon: the values come from
status.json (read through kahooks.files.safefs, capped) and the spool's depth, as `kahooks status` shows
them, read again at most once a second however many requests come (a walk, or a flood), so
snmpd's questions never reach `kahooks serve`. Every request line is capped and every OID checked
before it is looked at: a malformed request gets `NONE` and the next one is answered as usual.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from kahooks.daemon.snmptree import Cell, cells

if TYPE_CHECKING:
    from kahooks.daemon.snapshot import Snapshot

MAX_LINE = 1024          # an OID of 128 arcs of 4 bytes' worth fits; anything longer is refused
MAX_ARCS = 128           # SNMP's own limit on an OID's length
STATUS_LIMIT = 8 << 20   # status.json: many checks and the last transitions fit well under this
REFRESH = 1.0            # seconds a reading is reused: a walk sees one state, a flood reads once a second


def parse_oid(line: str) -> tuple[int, ...] | None:
    """`.1.3.6.1...` (or without the leading dot) as arcs; None when it is not a numeric OID."""
    words = line.strip().removeprefix(".").split(".")
    if not words or len(words) > MAX_ARCS:
        return None
    arcs = []
    for word in words:
        if not word.isascii() or not word.isdigit() or len(word) > 10:
            return None
        arc = int(word)
        if arc > 0xFFFFFFFF:
            return None
        arcs.append(arc)
    return tuple(arcs)


def dotted(oid: tuple[int, ...]) -> str:
    return "." + ".".join(map(str, oid))


class Tree:
    """The cells under `base`, from `read()` (a list of relative cells), refreshed at most every REFRESH s."""

    def __init__(self, base: tuple[int, ...], read: Callable[[], list[Cell]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.read = read
        self.clock = clock
        self.read_at: float | None = None
        self.oids: list[tuple[int, ...]] = []
        self.values: list[Cell] = []

    def current(self) -> None:
        now = self.clock()
        if self.read_at is not None and now - self.read_at < REFRESH:
            return
        self.values = [Cell(self.base + cell.oid, cell.type, cell.value) for cell in self.read()]
        self.oids = [cell.oid for cell in self.values]
        self.read_at = now

    def get(self, oid: tuple[int, ...]) -> Cell | None:
        self.current()
        where = bisect.bisect_left(self.oids, oid)
        return self.values[where] if where < len(self.oids) and self.oids[where] == oid else None

    def getnext(self, oid: tuple[int, ...]) -> Cell | None:
        self.current()
        where = bisect.bisect_right(self.oids, oid)
        return self.values[where] if where < len(self.oids) else None


def read_line(stream: IO[bytes]) -> str | None:
    """One request line without its newline; None at end of input. A line over MAX_LINE is
    consumed to its end (in capped pieces) and returned as the empty string: not an OID."""
    line = stream.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE and not line.endswith(b"\n"):
        while True:
            rest = stream.readline(MAX_LINE)
            if not rest or rest.endswith(b"\n"):
                return ""
    return line.rstrip(b"\r\n").decode("ascii", errors="replace")


def answer(tree: Tree, command: str, oid_line: str) -> list[str]:
    oid = parse_oid(oid_line)
    if oid is None:
        return ["NONE"]
    cell = tree.get(oid) if command == "get" else tree.getnext(oid)
    return ["NONE"] if cell is None else [dotted(cell.oid), cell.type, cell.value]


def serve(stdin: IO[bytes], stdout: IO[bytes], tree: Tree) -> int:
    """Answer snmpd until it closes our stdin."""
    while True:
        line = read_line(stdin)
        if line is None:
            return 0
        command = line.strip().lower()
        if command == "ping":
            reply = ["PONG"]
        elif command in ("get", "getnext"):
            oid_line = read_line(stdin)
            if oid_line is None:
                return 0
            reply = answer(tree, command, oid_line)
        elif command == "set":
            for _ in range(2):  # the OID, then "TYPE VALUE"
                if read_line(stdin) is None:
                    return 0
            reply = ["not-writable"]
        elif not command:
            continue  # snmpd sends no blank line; nothing to answer
        else:
            reply = ["NONE"]
        stdout.write(("\n".join(reply) + "\n").encode("utf-8"))
        stdout.flush()


def read_status(state_dir: str) -> tuple[Snapshot | None, str]:
    """status.json through safefs (no planted link followed, capped, never a FIFO); (None, why) without one."""
    from kahooks.daemon.snapshot import redacted
    from kahooks.errors import os_words
    from kahooks.files import safefs

    path = os.path.join(state_dir, "status.json")
    try:
        data = json.loads(safefs.read_bytes(path, STATUS_LIMIT))
    except FileNotFoundError:
        return None, f"no status in {state_dir}: kahooks serve is not running"
    except (OSError, safefs.UnsafeFile) as exc:
        return None, f"cannot read {path}: {os_words(exc) if isinstance(exc, OSError) else exc}"
    except ValueError:
        return None, f"{path} is not JSON"
    if not isinstance(data, dict) or not isinstance(data.get("checks"), dict):
        return None, f"{path} is not a kahooks status"
    snapshot: Snapshot = data  # type: ignore[assignment]  # written by the daemon as a Snapshot
    return redacted(snapshot), ""


def spool_depth(status: Snapshot) -> dict[str, Any] | None:
    from kahooks.notify.spool import Spool, SpoolError

    spool_dir = status.get("spool_dir")
    if not isinstance(spool_dir, str) or not os.path.isdir(spool_dir):
        return None
    try:
        return Spool(spool_dir).depth()
    except (OSError, SpoolError):
        return None


def reader(state_dir: str, max_age: float) -> Callable[[], list[Cell]]:
    """What the tree is read from: the daemon's status and the spool, judged as `kahooks status` does."""
    from kahooks.daemon.status import daemon_alive

    def read() -> list[Cell]:
        status, why = read_status(state_dir)
        if status is None:
            return cells(None, None, (False, why))
        try:
            return cells(status, spool_depth(status), daemon_alive(status, max_age))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a status.json of another shape
            return cells(None, None, (False, f"status.json not understood: {type(exc).__name__}: {exc}"))

    return read
