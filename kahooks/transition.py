"""One schema for what a channel is told: a Transition, built once per delivery (or flapping burst).

The template variables, the webhook's default JSON, the exec channel's KAHOOKS_* environment,
syslog's structured data and `validate`'s sample all derive from it, so they cannot disagree
(the webhook payload once dropped `detail`).
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kahooks.event import Event


def describe_time(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Change:
    """One state change within a transition (a flapping burst has several)."""

    state: str
    priority: int
    time: float
    when: str
    id: str
    previous_state: str | None


@dataclass(frozen=True)
class Transition:
    host: str
    type: str
    name: str
    state: str
    previous_state: str | None
    priority: int
    vips: tuple[str, ...]
    time: float
    when: str
    id: str
    flapping: bool
    detail: str
    events: tuple[Change, ...]
    virtual_server: str = ""  # LVS: the virtual server (VS and RS events)
    real_server: str = ""     # LVS: the real server (RS events)
    topic: str = ""           # kahooks' ALERT and CLEARED: what the alert is about (a wire finding: "wire blocked")

    @classmethod
    def of(cls, host: str, vips: list[str], events: list[Event], previous_state: str | None) -> Transition:
        """The transition that `events` (in order, one or a burst) make, after `previous_state`."""
        changes = []
        previous = previous_state
        for event in events:
            changes.append(Change(event.state, event.priority, event.time, describe_time(event.time), event.id,
                                  previous))
            previous = event.state
        newest = events[-1]
        return cls(host, newest.type, newest.name, newest.state, previous_state, newest.priority, tuple(vips),
                   newest.time, describe_time(newest.time), newest.id, len(events) > 1, newest.detail,
                   tuple(changes), newest.virtual_server, newest.name if newest.type == "RS" else "", newest.topic)

    @classmethod
    def sample(cls, flapping: bool) -> Transition:
        """What `validate` renders every template against."""
        change = Change("MASTER", 100, 0.0, describe_time(0), "0-0", "BACKUP")
        events = (change, Change("BACKUP", 100, 0.0, describe_time(0), "0-0", "MASTER")) if flapping else (change,)
        return cls("lb1", "INSTANCE", "VI_1", "MASTER", "BACKUP", 100, ("192.0.2.10",), 0.0, describe_time(0),
                   "0-0", flapping, "", events)

    def fields(self) -> dict[str, Any]:
        """Every field as plain data (lists and dicts): the webhook's default payload."""
        data = asdict(self)
        data["vips"] = list(self.vips)
        data["events"] = [asdict(change) for change in self.events]
        return data

    def context(self) -> dict[str, Any]:
        """The template variables: every field, and `instance` as another name for `name`."""
        return {**self.fields(), "instance": self.name}

    def environment(self) -> dict[str, str]:
        """The exec channel's KAHOOKS_* variables."""
        return {"KAHOOKS_EVENT_ID": self.id, "KAHOOKS_TYPE": self.type, "KAHOOKS_INSTANCE": self.name,
                "KAHOOKS_STATE": self.state, "KAHOOKS_PREVIOUS_STATE": self.previous_state or "",
                "KAHOOKS_PRIORITY": str(self.priority), "KAHOOKS_HOST": self.host,
                "KAHOOKS_TIME": f"{self.time:.6f}", "KAHOOKS_VIPS": " ".join(self.vips),
                "KAHOOKS_FLAPPING": "1" if self.flapping else "0", "KAHOOKS_TRANSITIONS": str(len(self.events)),
                "KAHOOKS_DETAIL": self.detail, "KAHOOKS_VIRTUAL_SERVER": self.virtual_server,
                "KAHOOKS_REAL_SERVER": self.real_server, "KAHOOKS_TOPIC": self.topic}

    def structured_data(self) -> dict[str, str]:
        """Syslog's RFC 5424 structured-data parameters."""
        data = {"type": self.type, "instance": self.name, "state": self.state, "previous": self.previous_state or "",
                "priority": str(self.priority), "event": self.id, "transitions": str(len(self.events))}
        if self.virtual_server:
            data["virtual_server"] = self.virtual_server
        if self.real_server:
            data["real_server"] = self.real_server
        if self.topic:
            data["topic"] = self.topic
        return data
