"""The wire observer of `kahooks serve`, as the daemon sees it: started for keepalived.conf's VRRP
instances when [wire] asks, stopped, shown in the snapshot.

The parts: `wire_kernel` reads what the kernel tells (a packet socket per interface behind a BPF
filter, so that no other packet wakes Python; netlink's addresses; the ruleset), `wire_observer` is
the loop that decodes and judges, `segment` the picture and its findings, `wire_process` the process
they run in (a flood of packets must not hold the daemon's interpreter lock) and its channel to the
daemon, whose side is `ObserverProcess` here. Findings are logged,
reported in status.json and /metrics, and recorded once as ALERT events the channels deliver, then
as CLEARED events when they go (the alertmanager channel resolves the alert; the topic "wire KIND"
tells one finding's alert from another's). Nothing here sends a packet or writes a track file: a
forged packet can raise a report, never move a VIP. The parts are imported when the observer
starts: a daemon with the wire off never loads them (only `wire_memory`, to clear the alerts an
observer left open: turning the wire off, or dropping an instance, resolves them at once).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from typing import Any

    from kahooks.daemon.notifications import Notifications
    from kahooks.daemon.segment import Local
    from kahooks.daemon.settings import WireSettings
    from kahooks.daemon.snapshot import WireState
    from kahooks.events.event import Event
    from kahooks.settings.config import Config

log = logging.getLogger("kahooks.serve")

STOP_WAIT = 2.0  # the observer's process ends within JUDGE_EVERY s of being asked; this is the deadline
STOP_JOIN = STOP_WAIT + 1.5  # the stop heard within JUDGE_EVERY, the last words taken within STOP_WAIT


# keepalived.conf -> what the wire needs ----------------------------------------------------------

def configured(path: str) -> tuple[list[Local], str]:
    """The VRRP instances of keepalived.conf at `path` that name an interface and a VRID, and why none."""
    from kahooks.daemon.segment import Local
    from kahooks.doctor.conf import read
    from kahooks.doctor.model import build

    try:
        node = build(read(path))
    except Exception as exc:  # the doctor's reader reports a bad file in its own words
        return [], f"cannot read {path}: {exc}"
    locals_ = []
    for instance in node.instances:
        if not instance.interface or instance.vrid is None or instance.vrid < 1:
            continue
        family = 6 if instance.vips and all(":" in vip for vip in instance.vips) else 4
        auth = (instance.auth[0].upper() or "none") if instance.auth else "none"
        locals_.append(Local(instance.name, instance.interface, instance.vrid, family, instance.priority,
                             instance.advert_int, instance.version, frozenset(map(_canonical, instance.vips)),
                             instance.unicast_src_ip, frozenset(instance.unicast_peers), auth))
    if not locals_:
        return [], f"{path} names no VRRP instance with an interface and a virtual_router_id"
    return locals_, ""


def _canonical(vip: str) -> str:
    """A VIP as the kernel and the wire spell it (`2001:DB8:0::100` is 2001:db8::100); as written if it is none."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(vip))
    except ValueError:
        return vip


class Wire:
    """The daemon's side: start the observer for a configuration, stop it, show it."""

    def __init__(self) -> None:
        self.observer: ObserverProcess | None = None
        self.thread: Any = None
        self.why_off = "not started"

    def restart(self, config: Config, notifications: Notifications) -> None:
        """Stop the observer of the previous configuration; start one when [wire] and keepalived.conf ask.
        The alerts left open (the previous observer's, or at the daemon's start those of its previous run,
        daemon/wire_memory.py) of an instance no longer observed (the wire switched off, the instance gone
        from keepalived.conf) are cleared at once: nothing will ever judge them again. The new observer
        starts from the others, and clears each once it no longer holds."""
        import os

        from kahooks.daemon import wire_memory

        previous = self.observer
        # Waited for: its open alerts are read once it can change them no more.
        self.stop(wait=STOP_JOIN)
        notifications.on_states = None
        serve = config.sections["serve"]
        state_dir = serve.state_dir
        settings: WireSettings = config.sections["wire"]
        locals_, why = configured(settings.keepalived_conf) if settings.enabled else ([], "[wire] enabled = false")
        if previous is not None:
            left_open = dict(previous.open)
        elif locals_ or os.path.lexists(os.path.join(state_dir, wire_memory.NAME)):
            from kahooks.daemon.segment import KINDS

            left_open = wire_memory.load(state_dir, KINDS)
        else:
            left_open = {}  # nothing to clear, and the wire off: its modules stay unloaded

        def record(event: Event) -> None:
            if serve.deliver:  # the one record-then-wake of the daemon (notifications.py)
                notifications.spool().record(event)
                notifications.wake_worker()

        observed = {local.name for local in locals_}
        unobserved = {key: sentence for key, sentence in left_open.items() if key[1] not in observed}
        if unobserved:
            left_open = self._clear(state_dir, left_open, unobserved, record)
        if not locals_:
            self.why_off = f"off: {why}"
            if settings.enabled:
                log.info("wire: %s", self.why_off)
            return

        from kahooks.daemon.threads import Supervised

        observer = ObserverProcess(locals_, lambda: instance_states(notifications), record, left_open,
                                   lambda alerts: wire_memory.save(state_dir, alerts))
        self.observer = observer
        notifications.on_states = observer.poke
        self.why_off = ""
        self.thread = Supervised("wire", observer.run).start()
        log.info("wire: watching VRRP on %s for %s", ", ".join(observer.interfaces),
                 ", ".join(f"{local.name} (VRID {local.vrid})" for local in locals_))

    @staticmethod
    def _clear(state_dir: str, left_open: dict[tuple[str, str], str], unobserved: dict[tuple[str, str], str],
               record: Callable[[Event], None]) -> dict[tuple[str, str], str]:
        """Record a CLEARED for each alert in `unobserved`; the file keeps the rest (remembered first, as the
        observer does: a crash between leaves a clearing too many, never one too few)."""
        from kahooks.daemon import wire_memory

        kept = {key: sentence for key, sentence in left_open.items() if key not in unobserved}
        try:
            wire_memory.save(state_dir, kept)
        except OSError as exc:
            log.error("wire: cannot remember the open alerts: %s", exc)
        for (kind, instance), sentence in sorted(unobserved.items()):
            log.info("wire: cleared (%s is no longer observed): %s", instance, sentence)
            try:
                record(wire_memory.event(kind, instance, sentence, cleared=True))
            except Exception as exc:  # as the observer's own: the log says why it went nowhere
                log.error("wire: cannot record the clearing for %s: %s", instance, exc)
        return kept

    def stop(self, wait: float = 0.0) -> None:
        """Stop the observer's process; with `wait`, return once it is gone and its last words are taken."""
        if self.thread is not None:
            self.thread.stop()
            if wait:
                self.thread.join(wait)
        self.thread = self.observer = None

    def snapshot(self) -> WireState:
        observer = self.observer  # once: a reload may set it to None meanwhile (another thread)
        if observer is None:
            return {"enabled": False, "why": self.why_off, "interfaces": {}, "packets": 0, "adverts": 0, "arps": 0,
                    "ignored": 0, "dropped": 0, "vrids": [], "findings": [], "instances": []}
        return {"enabled": True, "why": "", **observer.snapshot()}  # type: ignore[typeddict-item]


class ObserverProcess:
    """The daemon's side of the observer's process (daemon/wire_process.py): starts it, tells it keepalived's
    states, takes its snapshot, logs its lines, remembers its open alerts and records its events. Run in a
    Supervised thread: a process that ends by itself is started again, with the open alerts it left."""

    def __init__(self, locals_: list[Local], states: Callable[[], dict[str, tuple[str, int]]],
                 record: Callable[[Event], None], remembered: dict[tuple[str, str], str],
                 remember: Callable[[dict[tuple[str, str], str]], None]) -> None:
        self.locals = locals_
        self.interfaces = sorted({local.interface for local in locals_})
        self.states = states
        self.record = record
        self.remember = remember
        self.open: dict[tuple[str, str], str] = dict(remembered)
        self.latest: dict | None = None
        self.pid = 0
        # poke() wakes the thread through this pair when keepalived's states change: they go to the observer
        # then, not at its next wake (up to JUDGE_EVERY later, which VRRP blocked's 3 advert intervals could
        # not spare). Closed with this object.
        self.woken, self.waking = socket.socketpair()
        self.woken.setblocking(False)
        self.waking.setblocking(False)

    def poke(self) -> None:
        """keepalived's states changed (Notifications.on_states, the delivery worker's thread): send them now."""
        try:
            self.waking.send(b"\0")
        except OSError:  # poked already (the pair's buffer is full), or closed
            pass

    def run(self, stop: threading.Event) -> None:
        import select
        import socket
        import sys
        import time

        from kahooks.daemon.wire_observer import JUDGE_EVERY, drain
        from kahooks.daemon.wire_process import Channel, serialised_locals
        from kahooks.system import commands

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.pid = commands.start_helper([sys.executable, "-I", "-m", "kahooks.daemon.wire_process"],
                                             theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        channel = Channel(ours)
        self.latest = None  # a dead observer's picture is not shown while its successor starts
        ended = False
        readable = select.poll()  # not select(): a daemon at scale holds over a thousand descriptors (pidfds)
        readable.register(ours, select.POLLIN)
        readable.register(self.woken, select.POLLIN)
        try:
            ours.settimeout(STOP_WAIT)  # the first line, whole; a process that does not read it is broken
            channel.send({"locals": serialised_locals(self.locals), "level": log.getEffectiveLevel(),
                          "open": [[kind, instance, sentence] for (kind, instance), sentence in self.open.items()]})
            ours.settimeout(None)
            sent: dict | None = None
            while not stop.is_set() and not ended:
                # keepalived's states go when they change (the observer judges with the last ones it was told).
                states = {name: list(value) for name, value in self.states().items()}
                try:
                    if states != sent and channel.send({"states": states}, wait=False):  # a full buffer: next round
                        sent = states
                except OSError as exc:  # the rest of a line it could not take within 1 s: what it says is still read
                    log.debug("wire: cannot tell the observer keepalived's states: %s", exc)
                # Woken by the observer's snapshot (every SNAPSHOT_EVERY s) or its other lines, or by poke(); a stop
                # is heard within JUDGE_EVERY s.
                for fd, _ in readable.poll(JUDGE_EVERY * 1000):
                    if fd == ours.fileno():
                        ended = self._take(channel)
                    else:
                        drain(self.woken)
            if not ended:
                # Told to stop: the end of our stream stops it; what it said until then is taken, within STOP_WAIT.
                ours.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + STOP_WAIT
                while not ended and time.monotonic() < deadline and \
                        readable.poll(max(0.0, deadline - time.monotonic()) * 1000):
                    ended = self._take(channel)
        except OSError as exc:  # the process went with data unread (ECONNRESET), or the pair broke
            log.debug("wire: the observer's channel: %s", exc)
        finally:
            ours.close()
            status = commands.end_helper(self.pid, 0.0 if ended else 0.2)
        if not stop.is_set():  # it ended by itself: Supervised starts it again, with the open alerts it left
            log.error("wire: the observer's process ended (%s)", _ended(status))

    def _take(self, channel: Any) -> bool:
        """Handle the lines that have come; True when the process closed its end."""
        from kahooks.daemon.wire_process import decode
        from kahooks.events.event import Event

        lines, ended = channel.receive()
        for line in lines:
            message = decode(line)
            if message is None:
                log.error("wire: %s", line[:2000].decode("utf-8", "replace"))
            elif isinstance(message.get("snapshot"), dict):
                self.latest = message["snapshot"]
            elif isinstance(message.get("open"), list):  # one judgement's change, whole (wire_process.py)
                self.open = {(kind, instance): sentence for kind, instance, sentence in message["open"]}
                try:  # before the events, as the observer did in the daemon's process
                    self.remember(dict(self.open))
                except OSError as exc:
                    log.error("wire: cannot remember the open alerts: %s", exc)
                for record in message.get("records", []):
                    try:
                        self.record(Event.from_dict(record))
                    except Exception as exc:  # the report stays in status and /metrics; the log says why
                        log.error("wire: cannot record %s: %s", record.get("topic", "an alert"), exc)
            elif isinstance(message.get("log"), list) and len(message["log"]) == 2:
                level, text = message["log"]
                log.log(level if level in LEVELS else logging.ERROR, "%s", text)
        return ended

    def snapshot(self) -> dict:
        if self.latest is not None:
            return self.latest
        return {"interfaces": {name: "starting" for name in self.interfaces}, "packets": 0, "adverts": 0, "arps": 0,
                "ignored": 0, "dropped": 0, "vrids": [], "findings": [],
                "instances": [{"instance": local.name, "interface": local.interface, "vrid": local.vrid}
                              for local in self.locals]}


def _ended(status: int | None) -> str:
    import signal

    if status is None:
        return "not reaped yet"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


def instance_states(notifications: Notifications) -> dict[str, tuple[str, int]]:
    """keepalived's last reported state of each instance, with the priority of its last transition."""
    priorities = {item["name"]: item["priority"] for item in list(notifications.transitions)}
    return {name: (state, priorities.get(name, 0)) for name, (state, _) in list(notifications.instance_states.items())}
