"""The wire observer of `kahooks serve`: VRRP adverts and ARP on each VRRP interface, heard passively.

One AF_PACKET socket per interface named by keepalived.conf, with a classic BPF filter in the kernel
(ARP, IPv4 protocol 112, IPv6 next header 112): no other packet ever wakes Python. It never sends.
What it hears feeds a `segment.Segment`; findings are logged, reported in status.json and /metrics,
and recorded once as ALERT events the channels deliver, then as CLEARED events when they go (the
alertmanager channel resolves the alert; the topic "wire KIND" tells one finding's alert from
another's). Nothing here writes a track file: a forged packet can raise a report, never move a VIP.
At most BUDGET packets a second are decoded; a flood beyond that stays in the kernel, which drops it
(counted as `dropped`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING

from kahooks.daemon.segment import Local, Segment
from kahooks.vrrp_wire import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, IPPROTO_VRRP, Advert, decode

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kahooks.config import Config
    from kahooks.daemon.notifications import Notifications
    from kahooks.daemon.segment import Finding
    from kahooks.daemon.settings import WireSettings
    from kahooks.daemon.snapshot import WireState
    from kahooks.event import Event

log = logging.getLogger("kahooks.serve")

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SKF_AD_PROTOCOL = 0xFFFFF000  # SKF_AD_OFF + SKF_AD_PROTOCOL: the frame's ethertype, in host order
BUDGET = 2000          # packets decoded per second, at most
JUDGE_EVERY = 0.5      # seconds between judgements: the granularity of every finding's timing
ADDRESSES_EVERY = 10.0  # a full re-read of the kernel's addresses, besides netlink's events
RULES_EVERY = 5.0
SNAPLEN = 4096
# (code, jt, jf, k): accept ARP, IPv4 with protocol 112, IPv6 with next header 112; drop the rest.
FILTER = (
    (0x28, 0, 0, SKF_AD_PROTOCOL),     # A = ethertype
    (0x15, 6, 0, ETH_P_ARP),           # ARP -> accept
    (0x15, 0, 2, ETH_P_IP),            # not IPv4 -> IPv6 test
    (0x30, 0, 0, 9),                   # A = IPv4 protocol
    (0x15, 3, 4, IPPROTO_VRRP),        # 112 -> accept, else drop
    (0x15, 0, 3, ETH_P_IPV6),          # not IPv6 -> drop
    (0x30, 0, 0, 6),                   # A = IPv6 next header
    (0x15, 0, 1, IPPROTO_VRRP),        # 112 -> accept, else drop
    (0x06, 0, 0, SNAPLEN),             # accept
    (0x06, 0, 0, 0),                   # drop
)


def open_socket(interface: str) -> socket.socket:
    """A packet socket on `interface` that hears only what FILTER accepts, in and out, and never sends."""
    # Protocol 0 hears nothing until bind: the filter is in place before the first packet can queue.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
    try:
        program = b"".join(struct.pack("HBBI", *line) for line in FILTER)
        buffer = ctypes.create_string_buffer(program)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                        struct.pack("HL", len(FILTER), ctypes.addressof(buffer)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.bind((interface, ETH_P_ALL))
    except OSError:
        sock.close()
        raise
    return sock


def dropped(sock: socket.socket) -> int:
    """Packets the kernel dropped for this socket since the last call (its buffer was full)."""
    try:
        _, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    except OSError:
        return 0
    return drops


# The kernel's addresses, through rtnetlink ------------------------------------------------------

NETLINK_ROUTE = 0
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLMSG_DONE, NLMSG_ERROR = 3, 2
RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x10, 0x100
MAX_ADDRESSES = 4096


def kernel_addresses(timeout: float = 1.0) -> set[str]:
    """Every address of every interface of this network namespace (an RTM_GETADDR dump)."""
    found: set[str] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as sock:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        sock.send(struct.pack("=IHHII", 24, RTM_GETADDR, 0x301, 1, 0) + struct.pack("BBBBI", 0, 0, 0, 0, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < MAX_ADDRESSES:
            data = sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16 or kind in (NLMSG_DONE, NLMSG_ERROR):
                    return found
                if kind == RTM_NEWADDR:
                    found.update(_address_of(data[offset + 16:offset + length]))
                offset += (length + 3) & ~3
    return found


def _address_of(message: bytes) -> list[str]:
    if len(message) < 8:
        return []
    family = message[0]
    out = []
    offset = 8
    while offset + 4 <= len(message):
        length, kind = struct.unpack_from("=HH", message, offset)
        if length < 4:
            break
        value = message[offset + 4:offset + length]
        if kind in (1, 2) and family in (socket.AF_INET, socket.AF_INET6) and len(value) in (4, 16):
            out.append(socket.inet_ntop(family, value))  # IFA_ADDRESS, IFA_LOCAL
        offset += (length + 3) & ~3
    return out


def address_events() -> socket.socket | None:
    """A netlink socket that becomes readable when an address comes or goes."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                             NETLINK_ROUTE)
        sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
    except OSError:
        return None
    return sock


def local_macs() -> set[str]:
    """The MAC of every interface here (keepalived's VMACs included): ARP from these is ours."""
    macs: set[str] = set()
    try:
        names = os.listdir("/sys/class/net")[:1024]
    except OSError:
        return macs
    for name in names:
        try:
            with open(os.path.join("/sys/class/net", name, "address")) as handle:
                macs.add(handle.read(64).strip().lower())
        except OSError:
            continue
    return macs


# The rule that drops VRRP ------------------------------------------------------------------------

def dropping_rules(timeout: float = 2.0) -> list[str]:
    """The nftables and iptables rules that drop or reject VRRP (protocol 112), one line each."""
    from kahooks import commands

    rules: list[str] = []
    try:
        nft = commands.run(["nft", "list", "ruleset"], timeout)
    except OSError:
        nft = None
    if nft is not None and nft.code == 0:
        table = chain = ""
        for line in nft.output.splitlines()[:20000]:
            words = line.split()
            if words[:1] == ["table"] and len(words) >= 3:
                table = " ".join(words[1:3])
            elif words[:1] == ["chain"] and len(words) >= 2:
                chain = words[1]
            elif ("vrrp" in words or "112" in words) and ("drop" in words or "reject" in words):
                rules.append(f"nft table {table} chain {chain}: {' '.join(words)[:200]}")
    for program in ("iptables-save", "ip6tables-save"):
        try:
            saved = commands.run([program], timeout)
        except OSError:
            continue
        if saved.code != 0:
            continue
        table = ""
        for line in saved.output.splitlines()[:20000]:
            words = line.split()
            if line.startswith("*"):
                table = line[1:].strip()
            elif words[:1] == ["-A"] and {"vrrp", "112"} & set(words) and {"DROP", "REJECT"} & set(words):
                rules.append(f"{program.split('-')[0]} table {table}: {line[:200]}")
    return rules[:5]


# keepalived.conf -> what the wire needs ----------------------------------------------------------

def configured(path: str) -> tuple[list[Local], str]:
    """The VRRP instances of keepalived.conf at `path` that name an interface and a VRID, and why none."""
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
                             instance.advert_int, instance.version, frozenset(instance.vips),
                             instance.unicast_src_ip, frozenset(instance.unicast_peers), auth))
    if not locals_:
        return [], f"{path} names no VRRP instance with an interface and a virtual_router_id"
    return locals_, ""


# The observer ------------------------------------------------------------------------------------

class Observer:
    """The observer thread's state: the segment, the sockets, what it has reported."""

    def __init__(self, locals_: list[Local], states: Callable[[], dict[str, tuple[str, int]]],
                 record: Callable[[Event], None]) -> None:
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
        self.rules: list[str] = []
        self.rules_checked = 0.0

    def run(self, stop: threading.Event) -> None:
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
            if now - window >= 1.0:
                window, used = now, 0
            if used >= BUDGET:  # the rest of this second's packets wait in (or are dropped by) the kernel
                stop.wait(max(0.0, min(next_judge, window + 1.0) - now))
                continue
            waiting = [*self.sockets.values(), *([events] if events is not None else [])]
            ready, _, _ = select.select(waiting, [], [], max(0.0, min(next_judge, next_addresses) - now))
            for sock in ready:
                if sock is events:
                    self._drain(events)
                    next_addresses = min(next_addresses, time.monotonic() + 0.05)
                else:
                    used += self._read(sock, BUDGET - used)

    def _drain(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                sock.recv(65536)
            except (BlockingIOError, OSError):
                return

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
                    if packet_type != PACKET_OUTGOING:  # what this node sends (its own gratuitous ARP) is ours
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
            self.segment.expire(now)
            findings = self.segment.findings(now)
        before = {(finding.kind, finding.instance) for finding in self.findings}
        after = {(finding.kind, finding.instance) for finding in findings}
        if any(finding.kind == "blocked" for finding in findings) and \
                (("blocked" not in {kind for kind, _ in before}) or time.monotonic() - self.rules_checked > RULES_EVERY):
            self.rules = dropping_rules()
            self.rules_checked = time.monotonic()
        findings = [self._with_rules(finding) for finding in findings]
        for finding in findings:
            if (finding.kind, finding.instance) not in before:
                log.warning("wire: %s", finding.sentence)
                self._alert(finding, cleared=False)
        for finding in self.findings:
            if (finding.kind, finding.instance) not in after:
                log.info("wire: cleared: %s", finding.sentence)
                self._alert(finding, cleared=True)
        with self.lock:
            self.findings = findings

    def _with_rules(self, finding: Finding) -> Finding:
        from dataclasses import replace

        if finding.kind != "blocked":
            return finding
        named = f"; the ruleset drops VRRP: {' | '.join(self.rules)}" if self.rules else \
            "; no nftables or iptables rule drops protocol 112 (look at the switch, the bridge and keepalived)"
        return replace(finding, sentence=finding.sentence + named)

    def _alert(self, finding: Finding, cleared: bool) -> None:
        from kahooks.event import Event

        make = Event.cleared if cleared else Event.alert
        try:
            self.record(make(finding.instance, f"wire: {finding.sentence}", source="wire", topic=f"wire {finding.kind}"))
        except Exception as exc:  # the report stays in status and /metrics; the log says why it went nowhere
            log.error("wire: cannot record the %s for %s: %s", "clearing" if cleared else "alert", finding.instance, exc)

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


class Wire:
    """The daemon's side: start the observer for a configuration, stop it, show it."""

    def __init__(self) -> None:
        self.observer: Observer | None = None
        self.thread: Any = None
        self.why_off = "not started"

    def restart(self, config: Config, notifications: Notifications) -> None:
        """Stop the observer of the previous configuration; start one when [wire] and keepalived.conf ask."""
        from kahooks.daemon.threads import Supervised

        self.stop()
        settings: WireSettings = config.sections["wire"]
        if not settings.enabled:
            self.why_off = "off: [wire] enabled = false"
            return
        locals_, why = configured(settings.keepalived_conf)
        if not locals_:
            self.why_off = f"off: {why}"
            log.info("wire: %s", self.why_off)
            return
        serve = config.sections["serve"]
        spool_dir = config.spool_dir

        def record(event: Event) -> None:
            from kahooks.spool import Spool

            if not serve.deliver:
                return
            Spool(spool_dir).ensure().record(event)
            worker = notifications.worker
            if worker is not None:
                worker.wake.set()

        observer = Observer(locals_, lambda: instance_states(notifications), record)
        self.observer = observer
        self.why_off = ""
        self.thread = Supervised("wire", observer.run).start()
        log.info("wire: watching VRRP on %s for %s", ", ".join(observer.interfaces),
                 ", ".join(f"{local.name} (VRID {local.vrid})" for local in locals_))

    def stop(self, wait: float = 0.0) -> None:
        if self.thread is not None:
            self.thread.stop()
            if wait:
                self.thread.join(wait)
        self.thread = self.observer = None

    def snapshot(self) -> WireState:
        if self.observer is None:
            return {"enabled": False, "why": self.why_off, "interfaces": {}, "packets": 0, "adverts": 0, "arps": 0,
                    "ignored": 0, "dropped": 0, "vrids": [], "findings": [], "instances": []}
        return {"enabled": True, "why": "", **self.observer.snapshot()}  # type: ignore[typeddict-item]


def instance_states(notifications: Notifications) -> dict[str, tuple[str, int]]:
    """keepalived's last reported state of each instance, with the priority of its last transition."""
    priorities = {item["name"]: item["priority"] for item in list(notifications.transitions)}
    return {name: (state, priorities.get(name, 0)) for name, (state, _) in list(notifications.instance_states.items())}
