"""The wire observer in a process of its own, and the one line-based channel between it and the daemon.

Why a process: reading packets is a system call each, and CPython hands its interpreter lock over at
every one. A waiting thread is woken at each hand-over, finds the lock taken again before it runs,
and so never asks for it to be dropped: under a flood of forged adverts the observer's thread kept
the lock for as long as the flood lasted (a lab run: the daemon's main thread waited 2.7 s for it,
the observer's thread running, 1.1 s of it in the kernel), and the heartbeat and every check waited
with it. In a process of its own, its reads share nothing with the daemon's threads but the CPUs.

The channel: one stream socket pair, one JSON object per line, both ways.
- daemon -> observer: first {"locals": [...], "level": N, "open": [[kind, instance, sentence], ...]}, then
  {"states": {instance: [state, priority]}} when they change. The end of the stream means stop.
- observer -> daemon: {"snapshot": {...}} every SNAPSHOT_EVERY s, and at once when the findings change;
  {"open": [...], "records": [event, ...]} for a judgement that changed its open alerts (one line: the
  daemon remembers them, then records each ALERT and CLEARED); {"log": [level, text]}.
  A line that is not JSON (a traceback on stderr) is logged as it is.
The daemon's side never blocks on the observer: it sends without waiting (a full buffer leaves the states
for the next round) and reads what has come, each line capped at MAX_LINE.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from kahooks.daemon.segment import Local

log = logging.getLogger("kahooks.serve")

MAX_LINE = 4 << 20  # a snapshot is at most a few hundred KiB (65 VRIDs of 16 sources of 32 addresses)
SNAPSHOT_EVERY = 1.0  # seconds between snapshots sent while the findings stay the same


class Channel:
    """One end of the socket pair: send a JSON line, read the lines that have come."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = bytearray()
        self.discarding = False  # the rest of a line over MAX_LINE

    def send(self, message: dict, wait: bool = True) -> bool:
        """Send one line; without `wait`, only if the socket takes it at once (False: it did not)."""
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        if wait:
            self.sock.sendall(data)
            return True
        try:
            sent = self.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        if sent < len(data):  # the rest must follow, or the line is torn: a short wait, bounded by the timeout
            self.sock.settimeout(1.0)
            try:
                self.sock.sendall(data[sent:])
            finally:
                self.sock.settimeout(None)
        return True

    def receive(self) -> tuple[list[bytes], bool]:
        """The complete lines that have come (one read), and whether the other end closed its side. Each
        byte is looked at once; a line over MAX_LINE is dropped whole."""
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            return [], True
        first, newline, rest = chunk.partition(b"\n")
        if not self.discarding:
            self.pending += first
        if not newline:
            if len(self.pending) > MAX_LINE:
                log.error("wire: a line from the observer's channel is over %d bytes; dropped", MAX_LINE)
                self.pending.clear()
                self.discarding = True
            return [], False
        lines = [] if self.discarding else [bytes(self.pending)]
        self.discarding = False
        *middle, tail = rest.split(b"\n")
        self.pending = bytearray(tail)
        return [line for line in (*lines, *middle) if line], False


def decode(line: bytes) -> dict | None:
    """A line as the JSON object it should be; None when it is not one."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def serialised_locals(locals_: list[Local]) -> list[dict]:
    return [{key: sorted(value) if isinstance(value, frozenset) else value for key, value in asdict(local).items()}
            for local in locals_]


def parsed_locals(listed: list[dict]) -> list[Local]:
    from kahooks.daemon.segment import Local

    fields: list[dict[str, Any]] = [{key: frozenset(value) if isinstance(value, list) else value
                                     for key, value in item.items()} for item in listed]
    return [Local(**item) for item in fields]


# The observer's side -----------------------------------------------------------------------------

class _ToDaemon(logging.Handler):
    """The observer's log lines, sent to the daemon, which logs them as its own."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.channel.send({"log": [record.levelno, record.getMessage()]})
        except OSError:
            pass  # the daemon is gone: the observer stops on the stream's end


class _Relay:
    """The observer's end of the channel: keepalived's states as the daemon last told them, the open alerts
    and events of the judgement under way, and when the snapshot last went."""

    def __init__(self, channel: Channel, stop: threading.Event) -> None:
        self.channel = channel
        self.stop = stop
        self.states: dict[str, tuple[str, int]] = {}  # replaced whole by each message, never changed in place
        # A judgement's change of the open alerts and its events go as one line ({"open", "records"}), after the
        # judgement: a stream cut in between (a crash, a kill at the daemon's deadline) loses both or neither.
        self.change: dict[str, Any] = {}
        self.sent_at = 0.0
        self.sent_findings: list[tuple[str, str]] = []

    def record(self, event: Any) -> None:
        self.change.setdefault("records", []).append(event.as_dict())

    def remember(self, alerts: dict[tuple[str, str], str]) -> None:
        self.change["open"] = [[kind, instance, sentence] for (kind, instance), sentence in alerts.items()]

    def take(self, lines: list[bytes]) -> bool:
        """The daemon's lines; True when they changed keepalived's states."""
        before = self.states
        for line in lines:
            message = decode(line)
            if message is not None and isinstance(message.get("states"), dict):
                self.states = {name: (value[0], value[1]) for name, value in message["states"].items()}
        if self.states == before:
            return False
        log.debug("wire: keepalived's states: %s", ", ".join(f"{name} {state}" for name, (state, _) in
                                                           sorted(self.states.items())) or "none")
        return True

    def from_daemon(self) -> bool:
        """Read what the daemon sent; True when keepalived's states changed (judged at once)."""
        lines, ended = self.channel.receive()
        changed = self.take(lines)
        if ended:
            self.stop.set()
        return changed

    def judged(self, observer: Any) -> None:
        if self.change:
            self.channel.send(self.change)
            self.change = {}
        # status.json is written each heartbeat (1 s by default): a snapshot a second, and one at once when the
        # findings change. Each costs a JSON text on both sides of the channel.
        findings = [(finding.kind, finding.instance) for finding in observer.findings]
        if time.monotonic() - self.sent_at >= SNAPSHOT_EVERY or findings != self.sent_findings:
            self.channel.send({"snapshot": observer.snapshot()})
            self.sent_at, self.sent_findings = time.monotonic(), findings


# How much lower than the daemon the observer runs. A report can wait; a check cannot: under a flood the
# observer decodes up to its budget (about 15 % of a core), and on a busy machine those cycles would be
# taken from the checks' probes and the heartbeat at the same weight.
NICENESS = 10


def yield_to_the_daemon() -> None:
    """Lower this process below the daemon: its nice value, and its autogroup's. The daemon starts the observer
    in a session of its own, and where the kernel groups sessions (sched_autogroup_enabled, Debian's default)
    the CPU is shared between the groups by the group's nice value, the process's counting only inside it."""
    try:
        os.nice(NICENESS)
    except OSError as exc:  # a seccomp filter or a container's policy: the observer still works
        log.warning("the wire observer keeps the daemon's priority: %s", exc)
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(NICENESS))
    except OSError:
        pass  # no autogroups (CONFIG_SCHED_AUTOGROUP off, a cgroup's own share): the nice value is what counts


def main() -> int:
    """`python -I -m kahooks.daemon.wire_process`, started by the daemon with the channel as stdin and stdout.
    One thread: the observer's loop also reads the daemon's lines and sends the snapshot after each judgement."""
    from kahooks.daemon.wire_observer import Observer
    from kahooks.system import commands

    sock = socket.socket(fileno=os.dup(0))
    channel = Channel(sock)
    logger = logging.getLogger("kahooks")
    logger.handlers[:] = [_ToDaemon(channel)]
    logger.propagate = False
    yield_to_the_daemon()  # first, before the flood a new observer may start in
    commands.become_subreaper()  # the ruleset's readers (nft, iptables) are this process's commands
    first, more = _first(channel)
    if first is None:
        return 2
    level = first.get("level")
    logger.setLevel(level if isinstance(level, int) and 0 <= level <= 50 else logging.INFO)  # the daemon's own
    stop = threading.Event()
    relay = _Relay(channel, stop)
    relay.take(more)  # the states sent right after the first line, read with it
    observer = Observer(parsed_locals(first["locals"]), lambda: relay.states, relay.record,
                        {(kind, instance): sentence for kind, instance, sentence in first.get("open", [])},
                        relay.remember)
    try:
        observer.run(stop, control=sock, on_control=relay.from_daemon, on_judged=lambda: relay.judged(observer))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon is gone
    return 0


def _first(channel: Channel) -> tuple[dict | None, list[bytes]]:
    """The daemon's first line (the instances and the open alerts), and the lines that came with it; None
    when the stream ends before it."""
    while True:
        lines, ended = channel.receive()
        if lines:
            first = decode(lines[0])
            return (first if first is not None and isinstance(first.get("locals"), list) else None), lines[1:]
        if ended:
            return None, []


if __name__ == "__main__":
    sys.exit(main())
