"""The wire observer's loop (the main thread of its own process, daemon/wire_process.py): it reads what
the kernel's filter lets through, feeds the segment, judges it every JUDGE_EVERY s, and records an ALERT
when a finding begins and a CLEARED when it goes.

At most BUDGET packets a second are decoded; a flood beyond that stays in the kernel, which drops
it (counted as `dropped`). The snapshot (sent to the daemon for status.json and /metrics) reads under `lock`
what the loop writes.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from kahooks.daemon.segment import Local, Segment
from kahooks.daemon.wire_kernel import (
    PACKET_OUTGOING,
    SNAPLEN,
    address_events,
    dropped,
    dropping_rules,
    kernel_addresses,
    local_macs,
    open_socket,
)
from kahooks.system.vrrp_wire import Advert, decode

if TYPE_CHECKING:
    from collections.abc import Callable

    from kahooks.daemon.segment import Finding
    from kahooks.events.event import Event

log = logging.getLogger("kahooks.serve")

BUDGET = 2000          # packets decoded per second, at most
JUDGE_EVERY = 0.5      # seconds between judgements: the granularity of every finding's timing
ADDRESSES_EVERY = 10.0  # a full re-read of the kernel's addresses, besides netlink's events
RULES_EVERY = 5.0


class Observer:
    """The observer thread's state: the segment, the sockets, what it has reported."""

    def __init__(self, locals_: list[Local], states: Callable[[], dict[str, tuple[str, int]]],
                 record: Callable[[Event], None], remembered: dict[tuple[str, str], str] | None = None,
                 remember: Callable[[dict[tuple[str, str], str]], None] | None = None) -> None:
        self.segment = Segment(locals_, time.time())
        self.interfaces = sorted({local.interface for local in locals_})
        self.states = states
        self.record = record
        self.lock = threading.Lock()     # the snapshot reads what the thread writes
        self.sockets: dict[str, socket.socket] = {}
        self.problems: dict[str, str] = {}  # interface -> why it is not heard
        self.packets = 0
        self.adverts = 0
        self.arps = 0
        self.ignored = 0
        self.dropped = 0
        self.findings: list[Finding] = []
        self.rules: dict[tuple[str, int], list[str]] = {}  # (interface, family) -> what drops VRRP there
        self.rules_checked = 0.0
        # Set when the daemon stops this observer: it then hands its open alerts on (daemon/wire.py) and must
        # change them no more, even if a slow judgement (reading the ruleset) outlives the daemon's wait.
        self.stopping = threading.Event()
        # (kind, instance) -> sentence: every ALERT recorded and not yet CLEARED, this observer's and those a
        # previous one left open (daemon/wire_memory.py); `remember` is told each change.
        self.open: dict[tuple[str, str], str] = dict(remembered or {})
        self.remember = remember
        # A left-open alert that does not hold is cleared only once every finding could have been seen again:
        # the longest wait of any (master gone: the master-down interval and one more advert interval).
        self.control: socket.socket | None = None
        self.on_control: Callable[[], bool] | None = None
        self.on_judged: Callable[[], None] | None = None
        self.settle = max(4 * local.interval_seen() + max(local.interval_seen(), 1.0) for local in locals_) \
            + JUDGE_EVERY

    def run(self, stop: threading.Event, control: socket.socket | None = None,
            on_control: Callable[[], bool] | None = None, on_judged: Callable[[], None] | None = None) -> None:
        """Observe until `stop`. `control` (the daemon's channel) is waited on with the packet sockets, and
        `on_control` called when it is readable: True when keepalived's states changed, which are judged at
        once (VRRP blocked counts from the moment keepalived here is known to be MASTER, not from the next
        judgement); `on_judged` after each judgement. One thread does it all:
        a second one would wait for the interpreter lock for as long as packets keep coming (see
        daemon/wire_process.py), and the snapshot it was to send would lag the flood it describes."""
        self.stopping = stop
        self.control, self.on_control, self.on_judged = control, on_control, on_judged
        events = address_events()
        try:
            self._loop(stop, events)
        finally:
            for sock in self.sockets.values():
                sock.close()
            self.sockets.clear()
            if events is not None:
                events.close()

    def _loop(self, stop: threading.Event, events: socket.socket | None) -> None:
        next_judge = next_addresses = 0.0
        window, used = time.monotonic(), 0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_addresses:
                self._open_missing()
                self._read_addresses()
                next_addresses = now + ADDRESSES_EVERY
            if now >= next_judge:
                self.judge(time.time())
                next_judge = now + JUDGE_EVERY
                if self.on_judged is not None:
                    self.on_judged()
            if now - window >= 1.0:
                window, used = now, 0
            if used >= BUDGET:  # the rest of this second's packets wait in (or are dropped by) the kernel
                stop.wait(max(0.0, min(next_judge, window + 1.0) - now))
                continue
            waiting = [*self.sockets.values(), *(sock for sock in (events, self.control) if sock is not None)]
            ready, _, _ = select.select(waiting, [], [], max(0.0, min(next_judge, next_addresses) - now))
            for sock in ready:
                if sock is self.control and self.on_control is not None:
                    if self.on_control():
                        next_judge = time.monotonic()
                elif sock is events:
                    drain(events)
                    next_addresses = min(next_addresses, time.monotonic() + 0.05)
                else:
                    used += self._read(sock, BUDGET - used)


    def _read(self, sock: socket.socket, allowed: int) -> int:
        count = 0
        while count < min(allowed, 256):
            try:
                data, address = sock.recvfrom(SNAPLEN)
            except (BlockingIOError, InterruptedError):
                break
            count += 1
            interface, ethertype, packet_type = address[0], address[1], address[2]
            found = decode(ethertype, data)
            now = time.time()
            with self.lock:
                self.packets += 1
                if isinstance(found, Advert):
                    self.adverts += 1
                    self.segment.advert(interface, found, packet_type == PACKET_OUTGOING, now)
                elif found is not None:
                    self.arps += 1
                    if packet_type != PACKET_OUTGOING:  # what this node sends (its own gratuitous ARP, NA) is ours
                        if not found.sender_mac:  # an NA without its target's MAC: the frame's source claims it
                            found = replace(found, sender_mac=":".join(f"{byte:02x}" for byte in address[4][:6]))
                        self.segment.arp(interface, found, now)
                else:
                    self.ignored += 1
        return count

    def _open_missing(self) -> None:
        for interface in self.interfaces:
            if interface in self.sockets:
                continue
            try:
                self.sockets[interface] = open_socket(interface)
                if interface in self.problems:
                    log.info("wire: listening on %s again", interface)
                self.problems.pop(interface, None)
            except OSError as exc:
                from kahooks.errors import os_words

                if interface not in self.problems:
                    log.warning("wire: cannot listen on %s: %s", interface, os_words(exc))
                self.problems[interface] = os_words(exc)

    def _read_addresses(self) -> None:
        try:
            addresses = kernel_addresses()
        except OSError as exc:
            log.debug("wire: cannot read the kernel's addresses: %s", exc)
            return
        macs = local_macs()
        with self.lock:
            self.segment.addresses = addresses
            self.segment.macs = macs

    def judge(self, now: float) -> None:
        """Judge the segment; a new finding is logged and recorded once, a cleared one logged and recorded."""
        for sock in list(self.sockets.values()):
            self.dropped += dropped(sock)
        states = self.states()
        with self.lock:
            self.segment.states = states
            self.segment.deaf = set(self.problems)  # interfaces it tried and could not open
            self.segment.expire(now)
            findings = self.segment.findings(now)
        after = {(finding.kind, finding.instance) for finding in findings}
        blocked_before = any(finding.kind == "blocked" for finding in self.findings)
        if any(finding.kind == "blocked" for finding in findings) and \
                (not blocked_before or time.monotonic() - self.rules_checked > RULES_EVERY):
            self.rules = {where: dropping_rules(interface=where[0], family=where[1])
                          for where in {self._where(finding) for finding in findings if finding.kind == "blocked"}}
            self.rules_checked = time.monotonic()
        findings = [self._with_rules(finding) for finding in findings]
        if self.stopping.is_set():
            return
        previous = {(finding.kind, finding.instance): finding.sentence for finding in self.findings}
        settled = now - self.segment.started >= self.settle
        # New findings; one a previous observer alerted and that still holds is adopted, not alerted again.
        raised = [finding for finding in findings if (finding.kind, finding.instance) not in self.open]
        gone = [(key, previous.get(key, sentence)) for key, sentence in self.open.items()
                if key not in after and (key in previous or settled)]
        for finding in raised:
            self.open[(finding.kind, finding.instance)] = finding.sentence
        for key, _ in gone:
            del self.open[key]
        if (raised or gone) and self.remember is not None:
            try:  # before the events: a crash between leaves a clearing too many, never one too few
                self.remember(dict(self.open))
            except OSError as exc:
                log.error("wire: cannot remember the open alerts: %s", exc)
        for finding in raised:
            log.warning("wire: %s", finding.sentence)
            self._alert(finding.kind, finding.instance, finding.sentence, cleared=False)
        for (kind, instance), sentence in gone:
            log.info("wire: cleared: %s", sentence)
            self._alert(kind, instance, sentence, cleared=True)
        with self.lock:
            self.findings = findings

    def _with_rules(self, finding: Finding) -> Finding:
        if finding.kind != "blocked":
            return finding
        rules = self.rules.get(self._where(finding), [])
        named = f"; the ruleset drops VRRP: {' | '.join(rules)}" if rules else \
            "; no nftables or iptables rule drops protocol 112 (look at the switch, the bridge and keepalived)"
        return replace(finding, sentence=finding.sentence + named)

    def _where(self, finding: Finding) -> tuple[str, int]:
        """The interface and address family of a finding's instance: the rules that matter to it."""
        families = [local.family for local in self.segment.locals if local.name == finding.instance]
        return (finding.interface, families[0] if families else 0)

    def _alert(self, kind: str, instance: str, sentence: str, cleared: bool) -> None:
        from kahooks.daemon.wire_memory import event

        try:
            self.record(event(kind, instance, sentence, cleared))
        except Exception as exc:  # the report stays in status and /metrics; the log says why it went nowhere
            log.error("wire: cannot record the %s for %s: %s", "clearing" if cleared else "alert", instance, exc)

    def snapshot(self) -> dict:
        with self.lock:
            segment = self.segment
            vrids = []
            for (interface, family, vrid), sources in sorted(segment.adverts.items()):
                names = [local.name for local in segment.locals if local.key == (interface, family, vrid)]
                vrids.append({"interface": interface, "family": family, "vrid": vrid,
                              "instance": names[0] if names else None,
                              "sources": [{"source": seen.source, "priority": seen.priority,
                                           "interval": seen.interval, "version": seen.version, "auth": seen.auth,
                                           "addresses": list(seen.addresses[:32]), "local": seen.outgoing or
                                           seen.source in segment.addresses, "last": seen.last,
                                           "count": seen.count, "checksum_ok": seen.checksum_ok}
                                          for seen in sorted(sources.values(), key=lambda seen: seen.source)]})
            return {"interfaces": {name: self.problems.get(name, "listening") for name in self.interfaces},
                    "packets": self.packets, "adverts": self.adverts, "arps": self.arps,
                    "ignored": self.ignored, "dropped": self.dropped, "vrids": vrids,
                    "findings": [{"kind": finding.kind, "instance": finding.instance,
                                  "interface": finding.interface, "vrid": finding.vrid,
                                  "sentence": finding.sentence, "since": finding.since}
                                 for finding in self.findings],
                    "instances": [{"instance": local.name, "interface": local.interface, "vrid": local.vrid}
                                  for local in segment.locals]}


def drain(sock: socket.socket) -> None:
    """Read what a non-blocking socket holds and throw it away (what matters is that it woke us), at most
    64 reads: a sender that keeps writing cannot hold the loop here."""
    for _ in range(64):
        try:
            sock.recv(65536)
        except OSError:  # BlockingIOError: empty
            return
