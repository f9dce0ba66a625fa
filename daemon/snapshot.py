"""The one definition of what `kahooks serve` reports: status.json, `kahooks status` and /metrics.

The daemon builds a Snapshot (Daemon.snapshot), writes it as status.json, and renders the
metrics from it; `kahooks status` reads it back. TypedDicts, so the type checker holds all
three to the same keys, and the JSON needs no conversion. Every snapshot is `redacted` as it is
built: no field, today's or tomorrow's, shows a credential (a check's summary quoting its URL, a
thread's last error quoting a webhook).
"""

from __future__ import annotations

from typing import Any, TypedDict, TypeVar

from kahooks.output import redact

T = TypeVar("T")


def redacted(value: T) -> T:
    """`value` with every string in it (not dict keys: configured check, channel and instance names)
    through redact.text."""
    found: Any = value
    if isinstance(found, str):
        return redact.text(found)  # type: ignore[return-value]  # a str stays a str
    if isinstance(found, dict):
        return {key: redacted(item) for key, item in found.items()}  # type: ignore[return-value]
    if isinstance(found, list):
        return [redacted(item) for item in found]  # type: ignore[return-value]
    return value


class LastRun(TypedDict):
    ok: bool | None
    summary: str
    time: float | None
    latency: float


class VerdictState(TypedDict):
    """A check's judged state (daemon.verdict.Verdict.as_dict)."""

    ok: bool | None
    since: float | None
    why: str
    streak: int
    last: LastRun
    runs: int
    failures: int
    changes: int
    latency_total: float
    latency_buckets: list[int]  # probes per bucket of verdict.LATENCY_BUCKETS, the last one above them all


class CheckState(VerdictState):
    kind: str
    run: str            # the command line, credentials redacted
    interval: float
    rise: int
    fall: int
    track_file: str
    value: int | None   # what the track file holds
    drained_by: str | None
    watched: bool


class ThreadState(TypedDict):
    state: str          # running, restarting, stopped
    restarts: int
    last_error: str
    since: float


class TransitionSeen(TypedDict):
    time: float
    type: str
    name: str
    state: str
    priority: int
    source: str


class TransitionCount(TypedDict):
    instance: str
    state: str
    count: int


class DeliveryCount(TypedDict):
    channel: str
    outcome: str
    count: int


class InstanceState(TypedDict):
    state: str          # the last state keepalived reported (MASTER, BACKUP, FAULT, STOP)
    since: float        # when it reported it


class NotificationState(TypedDict):
    instances: dict[str, InstanceState]
    transitions: list[TransitionSeen]
    transition_counts: list[TransitionCount]
    delivery_counts: list[DeliveryCount]


class WireSource(TypedDict):
    source: str
    priority: int
    interval: float
    version: int
    auth: str
    addresses: list[str]
    local: bool         # this node's own adverts
    last: float
    count: int
    checksum_ok: bool


class WireVrid(TypedDict):
    interface: str
    family: int
    vrid: int
    instance: str | None  # the local instance of this VRID, None for a foreign one
    sources: list[WireSource]


class WireFinding(TypedDict):
    kind: str           # one of daemon.segment.KINDS
    instance: str
    interface: str
    vrid: int
    sentence: str
    since: float


class WireInstance(TypedDict):
    instance: str
    interface: str
    vrid: int


class WireState(TypedDict):
    """The wire observer (daemon/wire.py): what it hears and what it finds."""

    enabled: bool
    why: str            # why it is off
    interfaces: dict[str, str]  # interface -> "listening" or why not
    packets: int
    adverts: int
    arps: int
    ignored: int
    dropped: int        # packets the kernel dropped (a flood past the observer's budget)
    vrids: list[WireVrid]
    findings: list[WireFinding]
    instances: list[WireInstance]


class Snapshot(NotificationState):
    pid: int
    pid_start: int | None
    stopped: float | None
    config: str
    started: float
    heartbeat: float
    maintenance: bool
    checks: dict[str, CheckState]
    spool_dir: str | None
    notify_fifo: str | None
    threads: dict[str, ThreadState]
    wire: WireState
