"""The one immutable Event every route into ka-notify is parsed into.

keepalived reports a transition three ways: four appended argv words
(`INSTANCE VI_1 MASTER 100`), nothing at all (notify_master & co., so flags say
it), or a FIFO line (`INSTANCE "VI_1" MASTER 100`). LVS events come as FIFO lines
(`RS [10.0.0.1]:tcp:80 [192.0.2.50]:tcp:80 DOWN`) or through flags (notify_up and
quorum_down get no arguments): type RS or VS, state UP or DOWN, the real server as
`name` and its virtual server as `virtual_server` (kahooks.events.lvs). Each is parsed once,
here; nothing downstream looks at argv or FIFO text again.
"""

from __future__ import annotations

import os
import time

from kahooks.errors import UsageError

TYPE_CHECKING = False  # typing costs ka-notify's handler start-up; only mypy needs it
if TYPE_CHECKING:
    from typing import Any

TYPES = ("INSTANCE", "GROUP")
# LVS: a virtual server's quorum (VS) and a real server (RS), UP or DOWN.
LVS_EVENT_TYPES = ("VS", "RS")
LVS_STATES = ("UP", "DOWN")
# The states an instance is in, as keepalived reports them (what a dashboard shows).
VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")
# What keepalived writes: argv carries the first five, the FIFO also the rest (notices, not states:
# an instance that reports MASTER_RX_LOWER_PRI or a *_PRIORITY change is still in its state).
DELETED = "DELETED"
NOTICES = ("MASTER_RX_LOWER_PRI", "MASTER_PRIORITY", "BACKUP_PRIORITY")
STATES = VRRP_STATES + (DELETED,) + NOTICES
# kahooks' own alerts (a rebind that did not take, for example) travel as events too, so the
# rules route them to people like transitions; keepalived never sends these. An alert whose cause
# goes away (a wire finding) is followed by one of state CLEARED, of the same name and topic.
ALERT = "ALERT"
CLEARED = "CLEARED"
RULE_STATES = STATES + (ALERT, CLEARED) + LVS_STATES


class Event:
    """One VRRP transition as keepalived reported it. Immutable."""

    __slots__ = ("type", "name", "state", "priority", "time", "host", "id", "source", "detail", "virtual_server",
                 "topic")
    type: str
    name: str
    state: str
    priority: int
    time: float
    host: str
    id: str
    source: str
    detail: str
    virtual_server: str  # an RS or VS event's virtual server as keepalived names it; "" otherwise
    topic: str           # what an ALERT or CLEARED is about, so a clearing matches its alert; "" otherwise

    def __init__(self, type: str, name: str, state: str, priority: int, time: float,
                 host: str, id: str, source: str, detail: str = "", virtual_server: str = "",
                 topic: str = "") -> None:
        for slot, value in (("type", type), ("name", name), ("state", state), ("priority", priority),
                            ("time", time), ("host", host), ("id", id), ("source", source),
                            ("detail", detail), ("virtual_server", virtual_server), ("topic", topic)):
            object.__setattr__(self, slot, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Event is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Event({self.type} {self.name} {self.state} {self.priority} id={self.id})"

    @classmethod
    def new(cls, type: str, name: str, state: str, priority: int | str, source: str) -> Event:
        """Validate keepalived's words and stamp them with time, host and a stable id."""
        type, state = type.upper(), state.upper()
        if type not in TYPES:
            raise UsageError(f"type {type!r} is not INSTANCE or GROUP")
        if not name or any(ch in name for ch in "\n\0\"") or len(name) > 255:
            raise UsageError(f"bad {type.lower()} name {name!r}")
        if state not in STATES:
            raise UsageError(f"state {state!r} is not one of {', '.join(STATES)}")
        try:
            priority = int(priority)
        except (TypeError, ValueError):
            raise UsageError(f"priority {priority!r} is not a number") from None
        if not 0 <= priority <= 255:
            raise UsageError(f"priority {priority} is outside 0-255")
        return cls._stamped(type, name, state, priority, source)

    @classmethod
    def lvs(cls, type: str, server: str, virtual_server: str, state: str, source: str) -> Event:
        """A real server (RS) or a virtual server's quorum (VS) going UP or DOWN."""
        from kahooks.events import lvs

        type, state = type.upper(), state.upper()
        if type not in LVS_EVENT_TYPES:
            raise UsageError(f"type {type!r} is not VS or RS")
        if state not in LVS_STATES:
            raise UsageError(f"state {state!r} of a {'real' if type == 'RS' else 'virtual'} server is not UP or DOWN")
        lvs.key(server)
        lvs.key(virtual_server)
        detail = "quorum lost" if type == "VS" and state == "DOWN" else ""
        return cls._stamped(type, server, state, 0, source, detail, virtual_server)

    @classmethod
    def alert(cls, instance: str, detail: str, source: str, topic: str = "") -> Event:
        """kahooks' own alert about an instance (type and state ALERT), for the rules to route."""
        return cls._stamped(ALERT, instance, ALERT, 0, source, detail, topic=topic)

    @classmethod
    def cleared(cls, instance: str, detail: str, source: str, topic: str) -> Event:
        """The alert of this instance and topic no longer holds (type ALERT, state CLEARED)."""
        return cls._stamped(ALERT, instance, CLEARED, 0, source, detail, topic=topic)

    @classmethod
    def _stamped(cls, type: str, name: str, state: str, priority: int, source: str, detail: str = "",
                 virtual_server: str = "", topic: str = "") -> Event:
        now = time.time_ns()
        return cls(type, name, state, priority, now / 1e9, os.uname().nodename,
                   f"{now:x}-{os.urandom(6).hex()}", source, detail, virtual_server, topic)

    @property
    def is_alert(self) -> bool:
        return self.type == ALERT

    @property
    def is_lvs(self) -> bool:
        return self.type in LVS_EVENT_TYPES

    @property
    def changes_state(self) -> bool:
        """Its sequence is in `state` after it (what "previous state" remembers): not an alert, nor a notice."""
        return not self.is_alert and self.state not in NOTICES

    @property
    def key(self) -> str:
        """What one sequence of states belongs to: an instance, a virtual server, or a real server in one."""
        return f"{self.virtual_server} {self.name}" if self.type == "RS" else self.name

    @classmethod
    def from_argv(cls, words: list[str]) -> Event:
        """The four words keepalived appends to a `notify` script: TYPE NAME STATE PRIORITY."""
        if len(words) != 4:
            raise UsageError(f"expected TYPE NAME STATE PRIORITY from keepalived, got {len(words)} words")
        type, name, state, priority = words
        return cls.new(type, name, state, priority, source="argv")

    @classmethod
    def from_fifo_line(cls, line: str) -> Event:
        """`INSTANCE "VI_1" MASTER 100`, `VS [192.0.2.50]:tcp:80 DOWN`, `RS [...]:tcp:80 [...]:tcp:80 UP`;
        UsageError for garbage."""
        line = line.strip()
        kind = line.split(" ", 1)[0]
        if kind in LVS_EVENT_TYPES:
            from kahooks.events import lvs

            type, server, virtual, state = lvs.parse_fifo_line(line)
            return cls.lvs(type, server, virtual, state, source="fifo")
        head, quote, rest = line.partition(' "')
        name, closing, tail = rest.partition('" ')
        if not quote or not closing or " " in head:
            raise UsageError(f"not a keepalived notify line: {line[:120]!r}")
        words = tail.split()
        if len(words) != 2:
            raise UsageError(f"not a keepalived notify line: {line[:120]!r}")
        return cls.new(head, name, words[0], words[1], source="fifo")

    def as_dict(self) -> dict[str, object]:
        return {slot: getattr(self, slot) for slot in self.__slots__}

    def to_json(self) -> str:
        """json.dumps(self.as_dict(), sort_keys=True), character for character.

        Written with the json package's own C string encoder: importing the json package pulls in
        re and enum, which cost ka-notify's handler more than its fsyncs. An event is a flat object
        of text, whole numbers and one finite float, whose JSON is their repr (as json.dumps writes
        them); tests/core/test_event_json.py holds the equality."""
        try:
            from _json import encode_basestring_ascii as quoted
        except ImportError:  # pragma: no cover - an interpreter without the C accelerator
            import json

            return json.dumps(self.as_dict(), sort_keys=True)
        fields = []
        for slot in sorted(self.__slots__):
            value = getattr(self, slot)
            if isinstance(value, str):
                text = quoted(value)
            elif type(value) in (int, float) and abs(value) < float("inf"):  # not a bool (`true`), nan or inf
                text = repr(value)
            else:  # pragma: no cover - no constructor makes one; json.dumps says what it says of it
                import json

                return json.dumps(self.as_dict(), sort_keys=True)
            fields.append(f"{quoted(slot)}: {text}")
        return "{" + ", ".join(fields) + "}"

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        """An event read back from the spool: every field of the right type, or ValueError.

        The spool is written by keepalived_script and read by root: nothing is trusted. Numbers
        go through the one range check (kahooks.settings.options.number_problem): a time of 1e300 would
        break every date shown of it, and every delivery behind it.
        """
        from kahooks.settings.options import LATEST_TIME, number_problem

        fields: dict[str, Any] = {slot: data.get(slot) for slot in cls.__slots__}
        fields["detail"] = data.get("detail", "")
        fields["virtual_server"] = data.get("virtual_server", "")
        fields["topic"] = data.get("topic", "")
        for slot in ("type", "name", "state", "host", "id", "source", "detail", "virtual_server", "topic"):
            if not isinstance(fields[slot], str):
                raise ValueError(f"event field {slot} must be text")
        priority, stamp = fields["priority"], fields["time"]
        for what, problem in (("priority", number_problem(priority, 0, 255, whole=True)),
                              ("time", number_problem(stamp, 0, LATEST_TIME))):
            if problem:
                raise ValueError(f"event {what} {problem}")
        if fields["type"] not in TYPES + LVS_EVENT_TYPES + (ALERT,) or fields["state"] not in RULE_STATES:
            raise ValueError(f"event type {fields['type'][:20]!r} or state {fields['state'][:20]!r} is unknown")
        if not fields["name"] or len(fields["name"]) > 255 or any(ch in fields["name"] for ch in "\n\0\""):
            raise ValueError("bad event name")
        if len(fields["detail"]) > 8192 or len(fields["host"]) > 255 or len(fields["source"]) > 64 or \
                len(fields["virtual_server"]) > 300 or len(fields["topic"]) > 64:
            raise ValueError("event field too long")
        stamp_hex, dash, suffix = fields["id"].partition("-")
        if not dash or not stamp_hex or len(fields["id"]) > 64 or \
                any(ch not in "0123456789abcdef" for ch in stamp_hex + suffix):
            raise ValueError("bad event id")
        fields["time"] = float(stamp)
        return cls(**fields)


def fifo_event(line: str) -> Event | None:
    """The event on one line of keepalived's notify FIFO, stamped now; None (logged) for garbage,
    so a reader goes on with the next line."""
    try:
        return Event.from_fifo_line(line)
    except UsageError as exc:
        import logging

        logging.getLogger("kahooks.notify.fifo").warning("fifo: skipping a line: %s", exc)
    return None
