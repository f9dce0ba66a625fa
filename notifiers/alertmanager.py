"""The alertmanager channel: a FAULT (or a real server DOWN, or kahooks' own ALERT) becomes an alert
in Prometheus' Alertmanager, and recovery (or the ALERT's CLEARED) resolves it.

Alerts are posted to /api/v2/alerts of every URL given (an Alertmanager cluster wants each alert
from each client at every member; one member answering is a delivery, the cluster gossips the rest).
The labels name the alert and never change between firing and resolving, so the resolve matches:

    alertname  KeepalivedFault | KeepalivedServerDown | KahooksAlert
    iname      the VRRP instance (or sync group, or the virtual server for LVS events)
    host, state (the state that fired), vips (comma-separated), and real_server/virtual_server for LVS,
    topic for kahooks' ALERTs that have one (a wire finding: "wire blocked"; one alert per topic)
    plus the channel's own `labels` table (cluster = "edge-pair-3", severity = "page", ...).

The subject and body templates become the `summary` and `description` annotations.

Alertmanager resolves an alert by itself once its endsAt passes, and keeps alerts in memory only.
So a firing alert is sent with endsAt `active_for` ahead (a day by default), and sent again every
`resend_interval` (a minute), which brings it back to an Alertmanager that restarted. The firing
alerts are remembered in the channel's state file in the spool, so the next worker (after a reload,
a crash, a restart of `kahooks serve`) goes on re-sending them, and ka-notify's worker does not idle
out while one fires. Any other state of the same instance resolves the alert at once (endsAt = the
transition's time) and ends its re-sending. kahooks' ALERTs are not re-sent: they end `alert_for` after
they are sent (an hour by default), or when their CLEARED comes (the wire's findings send one).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from typing import TYPE_CHECKING

from kahooks.errors import KahooksError
from kahooks.notifiers import _tls
from kahooks.notifiers._http import Http, check_url
from kahooks.notifiers.base import Channel, ChannelConfigError, Contract, Message, PermanentFailure, TemporaryFailure
from kahooks.output import redact

if TYPE_CHECKING:
    from typing import Any

    from kahooks.notify.spool import ChannelState

log = logging.getLogger("kahooks.alertmanager")
LABEL_NAME_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
RESENT = ("KeepalivedFault", "KeepalivedServerDown")  # what fires until a recovery (KahooksAlert just ends)


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


class AlertmanagerChannel(Channel):
    kind = "alertmanager"
    SETTINGS = frozenset({"urls", "labels", "active_for", "alert_for", "resend_interval", "timeout", "ca", "insecure"})
    # One member here: with several, a refusal is permanent only when every member refuses.
    CONTRACT = Contract("http", {"urls": ["{url}"], "timeout": "{timeout}"},
        failures={"unreachable": "temporary", "hang": "temporary", "later": "temporary", "never": "permanent"})
    FIRING_LIMIT = 10000  # alerts remembered for re-sending: far more instances than a node has
    SAVED_BYTES = 200 * 1024  # the state file (the spool reads at most 256 KiB): newest alerts first

    def configure(self, settings: dict) -> None:
        urls = settings.get("urls")
        if not isinstance(urls, list) or not urls or not all(isinstance(url, str) for url in urls):
            raise ChannelConfigError("urls", 'must be a list of Alertmanager URLs, e.g. ["http://127.0.0.1:9093"]')
        self.urls = [check_url(url.rstrip("/"), "urls") for url in urls]
        labels = settings.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(value, str) for value in labels.values()):
            raise ChannelConfigError("labels", "must be a table of strings")
        for name in labels:
            if not name or name[0] not in LABEL_NAME_FIRST or not name.replace("_", "a").isalnum() \
                    or name.startswith("__"):
                raise ChannelConfigError("labels", f"{name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        self.labels = dict(labels)
        self.active_for = self.number(settings, "active_for", 86400.0, maximum=30 * 86400)
        self.alert_for = self.number(settings, "alert_for", 3600.0, maximum=30 * 86400)
        self.timeout = self.number(settings, "timeout", 10.0)
        self.resend_interval = self.number(settings, "resend_interval", 60.0, maximum=86400)
        self.firing: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}  # labels -> the alert last sent
        self.next_resend = 0.0
        self.state: ChannelState | None = None
        self.verify = _tls.verify(self, settings)
        self.members = [Http(self.timeout, self.verify) for _ in self.urls]  # a session each: they run at once

    def alert(self, message: Message) -> dict[str, Any]:
        """The one alert this message posts: firing, or resolving the alert its instance fired."""
        change = message.transition
        if change.type == "ALERT":
            name, fired_state, firing = "KahooksAlert", "ALERT", change.state != "CLEARED"
        elif change.virtual_server or change.real_server:
            name, fired_state, firing = "KeepalivedServerDown", "DOWN", change.state == "DOWN"
        else:
            name, fired_state, firing = "KeepalivedFault", "FAULT", change.state == "FAULT"
        labels = {**self.labels, "alertname": name, "iname": change.name, "host": change.host, "state": fired_state}
        if change.vips:
            labels["vips"] = ",".join(change.vips)
        if change.virtual_server:
            labels["virtual_server"] = change.virtual_server
        if change.real_server:
            labels["real_server"] = change.real_server
        if change.topic:
            labels["topic"] = change.topic
        annotations = {"summary": message.subject, "description": message.body}
        if change.detail:
            annotations["detail"] = change.detail
        if firing:
            hold = self.alert_for if name == "KahooksAlert" else self.active_for
            return {"labels": labels, "annotations": annotations, "startsAt": _iso(change.time),
                    "endsAt": _iso(change.time + hold)}
        # Resolved: the same labels, ended now (Alertmanager keeps the earlier startsAt it has).
        return {"labels": labels, "annotations": annotations, "startsAt": _iso(change.time),
                "endsAt": _iso(change.time)}

    def send(self, message: Message) -> None:
        alert = self.alert(message)
        self._post(alert)
        key = tuple(sorted(alert["labels"].items()))
        if alert["labels"]["alertname"] not in RESENT:
            return
        if alert["endsAt"] != alert["startsAt"]:  # a resolving alert ends when it starts
            if len(self.firing) < self.FIRING_LIMIT or key in self.firing:
                self.firing[key] = alert
            if not self.next_resend:  # just sent: the first re-send is an interval away, not at once
                self.next_resend = time.time() + self.resend_interval
        elif self.firing.pop(key, None) is None:
            return
        self._save()

    # Between workers ---------------------------------------------------------------------

    def remember_in(self, state: ChannelState) -> None:
        """Take up the firing alerts an earlier worker saved: the next refresh sends them again."""
        self.state = state
        saved = state.load() or {}
        alerts = saved.get("firing")
        for alert in alerts if isinstance(alerts, list) else []:
            if _is_alert(alert) and len(self.firing) < self.FIRING_LIMIT:
                self.firing[tuple(sorted(alert["labels"].items()))] = alert
        if self.firing:
            self.next_resend = time.time()  # an Alertmanager may have restarted meanwhile: at once
            log.info("%s: %d firing alerts taken up from the last worker", self.name, len(self.firing))

    def keeping_alive(self) -> bool:
        return bool(self.firing)

    def _save(self) -> None:
        if self.state is None:
            return
        kept: list[dict[str, Any]] = []
        size = 0
        for alert in reversed(list(self.firing.values())):  # the newest first, while they fit
            size += len(json.dumps(alert)) + 2
            if size > self.SAVED_BYTES:
                log.warning("%s: %d firing alerts are too many to remember for the next worker; the oldest "
                            "are re-sent by this one only", self.name, len(self.firing) - len(kept))
                break
            kept.append(alert)
        try:
            self.state.save({"firing": kept[::-1]})
        except (OSError, KahooksError) as exc:  # sent all the same: only the next worker would miss it
            log.warning("%s: cannot remember the firing alerts: %s", self.name, exc)

    def refresh(self) -> None:
        """Send the firing alerts again, once every resend_interval (called by the worker between deliveries)."""
        now = time.time()
        if not self.firing or now < self.next_resend:
            return
        self.next_resend = now + self.resend_interval
        for key, alert in list(self.firing.items()):
            renewed = {**alert, "endsAt": _iso(now + self.active_for)}
            try:
                self._post(renewed)
            except (TemporaryFailure, PermanentFailure) as exc:  # not a delivery: the next round tries again
                log.warning("%s: re-sending %s for %s: %s", self.name, alert["labels"]["alertname"],
                            alert["labels"]["iname"], exc)
                return
            self.firing[key] = renewed

    def _post(self, alert: dict[str, Any]) -> None:
        """Post to every member at once, each within the timeout: a hung member never delays the others."""
        import threading

        failures: list[Exception | None] = [None] * len(self.urls)

        def deliver(index: int) -> None:
            try:
                self.members[index].post(f"{self.urls[index]}/api/v2/alerts", json_body=[alert])
            except (TemporaryFailure, PermanentFailure) as exc:
                failures[index] = exc
            except Exception as exc:  # a bug in one member's thread must still count as its failure
                failures[index] = TemporaryFailure(type(exc).__name__)

        threads = [threading.Thread(target=deliver, args=(index,), name=f"{self.name}-member-{index}", daemon=True)
                   for index in range(1, len(self.urls))]
        for thread in threads:
            thread.start()
        deliver(0)  # the first member in this thread: one member, no thread at all
        for thread in threads:
            # Each post ends by its deadline; the margin covers a resolver that outlasts it.
            thread.join(self.timeout + 5)
        hung = [url for url, thread in zip(self.urls[1:], threads) if thread.is_alive()]
        failed = [(url, exc) for url, exc in zip(self.urls, failures) if exc is not None and url not in hung]
        if len(failed) + len(hung) < len(self.urls):
            return  # at least one member has it; the cluster shares it with the others
        detail = "; ".join([f"{redact.url(url)}: {exc}" for url, exc in failed]
                           + [f"{redact.url(url)}: no answer" for url in hung])
        if hung or any(isinstance(exc, TemporaryFailure) for _, exc in failed):
            raise TemporaryFailure(f"no Alertmanager took the alert ({detail})")
        raise PermanentFailure(f"every Alertmanager refused the alert ({detail})")


def _is_alert(value: Any) -> bool:
    """One alert as this channel sends it (the state file is the spool's, and the spool is not trusted)."""
    if not isinstance(value, dict) or set(value) != {"labels", "annotations", "startsAt", "endsAt"}:
        return False
    labels, annotations = value["labels"], value["annotations"]
    return (isinstance(labels, dict) and isinstance(annotations, dict)
            and labels.get("alertname") in RESENT
            and all(isinstance(key, str) and isinstance(text, str) for key, text in [*labels.items(), *annotations.items()])
            and all(_is_time(value[key]) for key in ("startsAt", "endsAt")))


def _is_time(value: Any) -> bool:
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except (AttributeError, TypeError, ValueError):
        return False


CHANNEL = AlertmanagerChannel
