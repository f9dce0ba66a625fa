"""What an operator does with the spool: see what waits and why, send dead letters again, purge old ones.

`ka-notify queue`, `ka-notify retry-dead [--channel C]` and `ka-notify purge --older-than AGE`.
Everything goes through the spool's own safe file layer (kahooks.notify.spooldir: no link followed, capped
reads, files kept owned by the spool's owner; numbers checked by Delivery.from_json), and nothing
here deletes a message that is still on its way: `purge` only touches dead letters.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kahooks.errors import UsageError
from kahooks.notify.spool import Delivery
from kahooks.notify.spooldir import BadEntry

if TYPE_CHECKING:
    from kahooks.notify.spool import Spool

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def age_seconds(text: str) -> float:
    """`90`, `90s`, `15m`, `12h`, `7d`, `2w` in seconds; UsageError otherwise."""
    match = _AGE.match(text)
    if not match:
        raise UsageError(f"age {text!r} is not like 90s, 15m, 12h, 7d or 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class Letter:
    """One delivery in queue/ or dead/, or why it could not be read."""

    place: str  # "queue" or "dead"
    channel: str
    name: str
    delivery: Delivery | None
    problem: str = ""


def letters(spool: Spool, place: str, channel: str | None = None) -> list[Letter]:
    found = []
    for name_of_channel in spool.directories(place):
        if channel is not None and name_of_channel != channel:
            continue
        for name in spool.names(place, name_of_channel):
            try:
                raw = spool.read((place, name_of_channel), name)
                found.append(Letter(place, name_of_channel, name,
                                    Delivery.from_json(spool.root / place / name_of_channel / name, name_of_channel,
                                                       raw)))
            except FileNotFoundError:
                continue
            except (BadEntry, ValueError, KeyError, TypeError) as exc:
                found.append(Letter(place, name_of_channel, name, None, str(exc)))
    return found


def describe(letter: Letter, now: float) -> str:
    """One line about a queued or dead letter, its secrets hidden (a letter buried before `bury`
    redacted, or a retry's error as the worker saved it, can hold one)."""
    from kahooks.output import redact

    return redact.text(_describe(letter, now))


def _describe(letter: Letter, now: float) -> str:
    if letter.delivery is None:
        return f"{letter.channel:<12} {letter.name}  unreadable: {letter.problem}"
    delivery = letter.delivery
    event = delivery.event
    what = f"{event.name} {event.state}" + (f" of {event.virtual_server}" if event.type == "RS" else "")
    age = _short(now - delivery.created)
    if letter.place == "dead":
        return f"{letter.channel:<12} {what}  {age} old, gave up: {delivery.last_error or '?'}"
    due = "now" if delivery.next_attempt <= now else f"in {_short(delivery.next_attempt - now)}"
    why = f", last error: {delivery.last_error}" if delivery.last_error else ""
    return f"{letter.channel:<12} {what}  {age} old, attempt {delivery.attempts + 1} {due}{why}"


def _short(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def retry_dead(spool: Spool, channels: set[str], channel: str | None = None) -> tuple[int, list[str]]:
    """Put dead letters back in their queue, attempts reset; (how many, why others stayed)."""
    moved, kept = 0, []
    for letter in letters(spool, "dead", channel):
        if letter.delivery is None:
            kept.append(f"{letter.channel}/{letter.name}: unreadable ({letter.problem})")
            continue
        if letter.channel not in channels:
            kept.append(f"{letter.channel}/{letter.name}: no channel {letter.channel!r} in the configuration")
            continue
        delivery = letter.delivery
        delivery.attempts, delivery.next_attempt, delivery.last_error = 0, 0.0, None
        delivery.created = time.time()  # a fresh max_age: it is being sent again on purpose
        spool.write_atomic(("queue", letter.channel), letter.name, delivery.to_json())
        spool.remove(("dead", letter.channel), letter.name)
        moved += 1
    return moved, kept


def purge_dead(spool: Spool, older_than: float, channel: str | None = None, now: float | None = None) -> int:
    """Delete dead letters created more than `older_than` seconds ago (unreadable ones by file age)."""
    now = time.time() if now is None else now
    removed = 0
    for letter in letters(spool, "dead", channel):
        if letter.delivery is not None:
            created = letter.delivery.created
        else:
            try:
                created = spool.modified(("dead", letter.channel), letter.name)
            except FileNotFoundError:
                continue
        if now - created > older_than:
            spool.remove(("dead", letter.channel), letter.name)
            removed += 1
    return removed
