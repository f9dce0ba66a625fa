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
    from collections.abc import Callable

    from kahooks.events.event import Event


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
        return {f"KAHOOKS_{field.env}": field.text(self) for field in FIELDS if field.env}

    def structured_data(self) -> dict[str, str]:
        """Syslog's RFC 5424 structured-data parameters, in FIELDS' order."""
        data = {}
        for field in FIELDS:
            if field.sd:
                text = field.text(self)
                if text or not field.sd_when_set:
                    data[field.sd] = text
        return data


@dataclass(frozen=True)
class Field:
    """How the flat views spell one Transition field.

    The webhook payload and the template variables carry every field as data (`fields()`); the
    views that are text name each field their own way: `env` is its exec variable after KAHOOKS_
    ("" when not carried), `sd` its syslog structured-data parameter ("" when not carried, and
    only when not empty if `sd_when_set`), `text` how both spell its value.
    """

    name: str
    env: str = ""
    sd: str = ""
    sd_when_set: bool = False
    spell: Callable[[Any], str] = str

    def text(self, transition: Transition) -> str:
        return self.spell(getattr(transition, self.name))


def _optional(value: str | None) -> str:
    return value or ""


# Every Transition field, in the order syslog's structured data lists them (receivers' filters
# and the tests read it in this order). tests/core/test_transition.py fails on a field not here.
FIELDS = (
    Field("type", env="TYPE", sd="type"),
    Field("name", env="INSTANCE", sd="instance"),
    Field("state", env="STATE", sd="state"),
    Field("previous_state", env="PREVIOUS_STATE", sd="previous", spell=_optional),
    Field("priority", env="PRIORITY", sd="priority"),
    Field("id", env="EVENT_ID", sd="event"),
    Field("events", env="TRANSITIONS", sd="transitions", spell=lambda events: str(len(events))),
    Field("virtual_server", env="VIRTUAL_SERVER", sd="virtual_server", sd_when_set=True),
    Field("real_server", env="REAL_SERVER", sd="real_server", sd_when_set=True),
    Field("topic", env="TOPIC", sd="topic", sd_when_set=True),
    Field("host", env="HOST"),
    Field("time", env="TIME", spell=lambda time: f"{time:.6f}"),
    Field("vips", env="VIPS", spell=" ".join),
    Field("flapping", env="FLAPPING", spell=lambda flapping: "1" if flapping else "0"),
    Field("detail", env="DETAIL"),
    Field("when"),  # the templates' and the payload's readable time; the environment has TIME
)

# What an Event knows that no channel is told: which route brought it (argv, the FIFO, the daemon).
EVENT_ONLY = ("source",)
