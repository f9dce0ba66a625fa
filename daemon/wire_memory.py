"""The wire's open alerts, remembered in the daemon's state folder across a restart.

A finding is recorded once as an ALERT and once as a CLEARED when it goes. A daemon that restarted
(or a reload that restarted the observer) would forget what it had alerted: no CLEARED would ever
come, and Alertmanager would hold the alert until its end time. So the observer hands every change
of its open alerts to `save` (one small JSON file, written through the atomic write), and a new
observer starts from `load`: once it has heard the wire long enough to judge, it clears each one
that no longer holds, and adopts, without a second ALERT, each one that still does. Bounded: one
entry per (kind, instance), at most MAX_ALERTS, each sentence capped; a file that is not what
`save` wrote is ignored whole.
"""

from __future__ import annotations

import json
import logging
import os

from kahooks.events.event import Event
from kahooks.files import atomicfile

log = logging.getLogger("kahooks.serve")

NAME = "wire-alerts.json"
MAX_ALERTS = 256
MAX_SENTENCE = 2000
MAX_BYTES = MAX_ALERTS * (MAX_SENTENCE + 512)

Alerts = dict[tuple[str, str], str]  # (kind, instance) -> the sentence alerted


def load(state_dir: str, kinds: tuple[str, ...]) -> Alerts:
    """The alerts a previous observer left open; empty when there is no file or it is not ours."""
    path = os.path.join(state_dir, NAME)
    try:
        # The state folder is root's own (/run/kahooks): no link is followed all the same, and reads are capped.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        listed = json.loads(data) if len(data) <= MAX_BYTES else None
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("wire: cannot read the alerts left open in %s: %s", path, exc)
        return {}
    alerts: Alerts = {}
    if not isinstance(listed, list):
        return alerts
    for item in listed[:MAX_ALERTS]:
        if isinstance(item, dict) and item.get("kind") in kinds and isinstance(item.get("instance"), str) \
                and isinstance(item.get("sentence"), str) and 0 < len(item["instance"]) <= 256:
            alerts[(item["kind"], item["instance"])] = item["sentence"][:MAX_SENTENCE]
    return alerts


def save(state_dir: str, alerts: Alerts) -> None:
    """Replace the file with `alerts` (an empty list when none is open)."""
    listed = [{"kind": kind, "instance": instance, "sentence": sentence[:MAX_SENTENCE]}
              for (kind, instance), sentence in sorted(alerts.items())[:MAX_ALERTS]]
    atomicfile.replace(os.path.join(state_dir, NAME), json.dumps(listed).encode())


def event(kind: str, instance: str, sentence: str, cleared: bool) -> Event:
    """The ALERT (or CLEARED) event of one finding: topic "wire KIND", so that a channel (Alertmanager)
    tells one finding's alert from another's and resolves the one that cleared."""
    make = Event.cleared if cleared else Event.alert
    return make(instance, f"wire: {sentence}", source="wire", topic=f"wire {kind}")
