"""The wire's picture of each VRRP segment, and the findings it supports (issue 27).

Pure: `Segment` is fed decoded adverts and ARP packets, the kernel's addresses and keepalived's
own states, each with the time; `findings(now)` judges. Bounded whatever the wire sends: the
VRIDs this node configures keep a slot each, foreign ones share FOREIGN_KEYS; each VRID keeps
SOURCES sources (one heard again keeps its place: a flood of forged sources, each heard once,
only replaces its own kind) and each VIP ARP_MACS MACs; whatever is not heard for AGE seconds is
forgotten. A peer first heard during a sustained flood may wait for a place until the flood ends.
Nothing here acts: a finding is a report, never a track file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from kahooks.system.vrrp_wire import Advert, Arp

KINDS = ("blocked", "two_masters", "collision", "duplicate_vip", "mismatch", "master_gone")
SOURCES = 16
FOREIGN_KEYS = 64
ARP_MACS = 8
PROBATION = 2.0  # seconds a source heard once keeps its place before a newcomer may take it
AGE = 60.0
ARP_FRESH = 10.0  # an ARP from another MAC for a VIP we hold is reported this long after it was heard

Key = tuple[str, int, int]  # (interface, address family, VRID)


@dataclass(frozen=True)
class Local:
    """One vrrp_instance of the local keepalived.conf, as the wire needs it."""

    name: str
    interface: str
    vrid: int
    family: int
    priority: int
    advert_int: float
    version: int
    vips: frozenset[str]
    unicast_src_ip: str | None = None
    unicast_peers: frozenset[str] = frozenset()
    auth_type: str = "none"   # none, PASS or AH (v2)

    @property
    def key(self) -> Key:
        return (self.interface, self.family, self.vrid)

    def interval_seen(self) -> float:
        """The interval keepalived puts in its adverts: VRRPv2 carries whole seconds."""
        return float(max(1, round(self.advert_int))) if self.version == 2 else round(self.advert_int, 2)


@dataclass
class Seen:
    """One source advertising one VRID."""

    source: str
    priority: int
    interval: float
    version: int
    auth: str
    addresses: tuple[str, ...]
    checksum_ok: bool
    outgoing: bool
    first: float
    last: float
    count: int = 1


@dataclass(frozen=True)
class Finding:
    kind: str
    instance: str
    interface: str
    vrid: int
    sentence: str
    since: float


@dataclass
class Segment:
    locals: list[Local]
    started: float
    adverts: dict[Key, dict[str, Seen]] = field(default_factory=dict)
    # (interface, VIP) -> MAC -> [first heard, last heard, count]
    arps: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)
    addresses: set[str] = field(default_factory=set)   # every address the kernel gives this node
    macs: set[str] = field(default_factory=set)        # every MAC of this node's interfaces
    states: dict[str, tuple[str, int]] = field(default_factory=dict)  # instance -> keepalived's (state, priority)
    deaf: set[str] = field(default_factory=set)  # interfaces not heard now (missing, refused): no silence there
    since: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, instance) -> condition began
    held: dict[tuple[str, str], float] = field(default_factory=dict)   # (kind, instance) -> reported since
    _pending: set[tuple[str, str]] = field(default_factory=set)       # conditions holding at this judgement
    # The foreign keys of `adverts`, the least lately heard first: a flood of forged VRIDs evicts in O(1).
    _foreign: dict[Key, None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.configured = {local.key for local in self.locals}
        self.vips = {(local.interface, vip) for local in self.locals for vip in local.vips}
        self.peers = {peer for local in self.locals for peer in local.unicast_peers}

    # What the wire and the kernel say ----------------------------------------------------------

    def advert(self, interface: str, advert: Advert, outgoing: bool, now: float) -> None:
        key = (interface, advert.family, advert.vrid)
        sources = self.adverts.get(key)
        foreign = key not in self.configured
        if sources is None:
            if foreign and len(self._foreign) >= FOREIGN_KEYS:
                oldest = next(iter(self._foreign))
                del self._foreign[oldest], self.adverts[oldest]
            sources = self.adverts[key] = {}
        if foreign:  # heard now: last in the line of eviction (a source refused its place below is heard too)
            self._foreign.pop(key, None)
            self._foreign[key] = None
        seen = sources.get(advert.source)
        if seen is None:
            if len(sources) >= SOURCES and not self._evict_source(sources, outgoing or advert.source in self.peers, now):
                return
            sources[advert.source] = Seen(advert.source, advert.priority, advert.interval, advert.version,
                                          advert.auth_name, advert.addresses, advert.checksum_ok, outgoing, now, now)
            return
        seen.priority, seen.interval, seen.version = advert.priority, advert.interval, advert.version
        seen.auth, seen.addresses, seen.checksum_ok = advert.auth_name, advert.addresses, advert.checksum_ok
        seen.outgoing = seen.outgoing or outgoing
        seen.last = now
        seen.count += 1

    def _evict_source(self, sources: dict[str, Seen], known: bool, now: float) -> bool:
        """Make room for a new source: a source heard once and not for PROBATION s goes first; one heard
        again keeps its place against newcomers (a forged flood cannot push out a peer heard each second),
        except against this node's own adverts and a configured unicast peer."""
        stale = [source for source, seen in sources.items() if seen.count == 1 and now - seen.last > PROBATION]
        if stale:
            del sources[min(stale, key=lambda source: sources[source].last)]
            return True
        if known:
            del sources[min(sources, key=lambda source: (sources[source].count, sources[source].last))]
            return True
        return False

    def arp(self, interface: str, arp: Arp, now: float) -> None:
        """Only ARP that names one of our VIPs as its sender is kept: that is all finding 4 needs."""
        key = (interface, arp.sender_ip)
        if key not in self.vips:
            return
        macs = self.arps.setdefault(key, {})
        entry = macs.get(arp.sender_mac)
        if entry is None:
            if len(macs) >= ARP_MACS:
                del macs[min(macs, key=lambda mac: (macs[mac][2], macs[mac][1]))]
            macs[arp.sender_mac] = [now, now, 1]
        else:
            entry[1] = now
            entry[2] += 1

    def expire(self, now: float) -> None:
        for key in list(self.adverts):
            sources = self.adverts[key]
            for source in [source for source, seen in sources.items() if now - seen.last > AGE]:
                del sources[source]
            if not sources:
                del self.adverts[key]
                self._foreign.pop(key, None)
        for vip in list(self.arps):
            macs = self.arps[vip]
            for mac in [mac for mac, entry in macs.items() if now - entry[1] > AGE]:
                del macs[mac]
            if not macs:
                del self.arps[vip]

    # The findings ----------------------------------------------------------------------------

    def findings(self, now: float) -> list[Finding]:
        """What holds now; each (kind, instance) keeps the time it was first reported until it clears."""
        found: dict[tuple[str, str], str] = {}
        self._pending = set()
        for local in self.locals:
            found.update(self._judge(local, now))
        for key in [key for key in self.held if key not in found]:
            del self.held[key]
        for key in [key for key in self.since if key not in self._pending]:
            del self.since[key]
        result = []
        for (kind, name), sentence in sorted(found.items()):
            local = next(local for local in self.locals if local.name == name)
            since = self.held.setdefault((kind, name), now)
            result.append(Finding(kind, name, local.interface, local.vrid, sentence, since))
        return result

    def _held_for(self, kind: str, name: str, now: float, holds: bool, needed: float) -> bool:
        """A condition that must last `needed` seconds before it is a finding."""
        began = self._began(kind, name, now, holds)
        return began is not None and now - began >= needed

    def _began(self, kind: str, name: str, now: float, holds: bool) -> float | None:
        """When a condition that holds now began (it is forgotten the first judgement it does not hold)."""
        if not holds:
            return None
        self._pending.add((kind, name))
        return self.since.setdefault((kind, name), now)

    def _judge(self, local: Local, now: float) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        name, where = local.name, f"on {local.interface} for VRID {local.vrid} ({local.name})"
        sources = self.adverts.get(local.key, {})
        interval = local.interval_seen()
        state, reported_priority = self.states.get(name, ("", 0))

        def fresh(seen: Seen, intervals: float = 3) -> bool:
            return now - seen.last <= intervals * max(seen.interval, 0.01) + 0.2

        ours = [seen for seen in sources.values() if (seen.outgoing or seen.source in self.addresses) and fresh(seen)]
        peers = [seen for seen in sources.values()
                 if not (seen.outgoing or seen.source in self.addresses) and fresh(seen) and seen.priority > 0]
        master = state == "MASTER" if state else any(seen.priority > 0 for seen in ours)
        priority = reported_priority if state and reported_priority > 0 else local.priority
        skew = (256 - priority) / 256 * interval

        explained = set()
        for seen in peers:  # 5: the nodes of one VRID disagree on how they speak
            wrong = []
            if seen.version != local.version:
                wrong.append(f"VRRP version {seen.version}, here {local.version}")
            if abs(seen.interval - interval) > 0.005:
                wrong.append(f"an advert every {seen.interval:g} s, here {interval:g} s")
            if local.version == 2 and seen.version == 2 and seen.auth != local.auth_type:
                wrong.append(f"auth_type {seen.auth}, here {local.auth_type}")
            if wrong:
                explained.add(seen.source)
                out[("mismatch", name)] = f"mismatch {where}: {seen.source} sends {', '.join(wrong)}"
        for seen in peers:  # 3: another cluster on our VRID
            mine = {vip for vip in local.vips if (":" in vip) == (local.family == 6)}
            if local.unicast_peers and seen.source not in local.unicast_peers:
                why = "an address that is not one of its unicast_peer"
            elif mine and set(seen.addresses) != mine:
                why = f"addresses {', '.join(seen.addresses) or 'none'}, ours are {', '.join(sorted(mine))}"
            else:
                continue
            explained.add(seen.source)
            out[("collision", name)] = f"VRID collision {where}: {seen.source} advertises our VRID with {why}"
        our_source = local.unicast_src_ip or (ours[0].source if ours else "")
        winners = [seen for seen in peers if seen.source not in explained and fresh(seen, 1.5)
                   and (seen.priority > priority or (seen.priority == priority and _greater(seen.source, our_source)))]
        if self._held_for("blocked", name, now, master and bool(winners), 2 * interval):  # 1
            best = max(winners, key=lambda seen: seen.priority)
            out[("blocked", name)] = (f"VRRP blocked locally {where}: keepalived is MASTER here, yet adverts from "
                                      f"{best.source} at priority {best.priority} (ours {priority}) reach the "
                                      "interface: something between the NIC and keepalived drops them")
        advertising = [seen for seen in ours + peers if seen.priority > 0 and fresh(seen, 1.5)]
        if self._held_for("two_masters", name, now, len({seen.source for seen in advertising}) > 1,
                          3 * interval + skew):  # 2
            listed = ", ".join(f"{seen.source} (priority {seen.priority})" for seen in advertising[:4])
            out[("two_masters", name)] = f"two masters {where}: {listed} all advertise"
        vips_held = [(vip, macs) for (iface, vip), macs in self.arps.items()
                     if iface == local.interface and vip in local.vips and vip in self.addresses]
        for vip, macs in vips_held:  # 4
            others = [mac for mac, entry in macs.items() if mac not in self.macs and now - entry[1] <= ARP_FRESH]
            if others:
                heard = "a Neighbor Advertisement" if ":" in vip else "ARP"
                out[("duplicate_vip", name)] = (f"duplicate VIP {where}: {vip} is held here, and {heard} from "
                                                f"{', '.join(sorted(others))} claims it too")
        # 6: silence counts from the last advert, and from when keepalived here entered a state in which
        # it should take over itself (BACKUP) or cannot tell (stopped, unknown): leaving FAULT, a lone node
        # waits one master-down interval before it becomes MASTER, and must not be reported for it.
        master_down = 3 * interval + skew
        # Silence on an interface we cannot hear (missing, refused) says nothing.
        waiting = self._began("waiting", name, now, state in ("BACKUP", "STOP", "") and local.interface not in self.deaf)
        last = max((seen.last for seen in sources.values() if seen.priority > 0), default=self.started)
        quiet = max(last, self.started, waiting if waiting is not None else now)
        # One more interval past keepalived's own timer: its MASTER line reaches us a little after it fires.
        if now - quiet > master_down + max(interval, 1.0):
            heard = "since the observer started" if last == self.started else f"for {now - last:.1f} s"
            out[("master_gone", name)] = (f"master gone {where}: no advert {heard} (master-down interval "
                                          f"{master_down:.1f} s), local keepalived is {state or 'unknown'}, "
                                          "and nobody took over")
        return out


def _greater(one: str, other: str) -> bool:
    """RFC 5798 6.4.3: on equal priority the higher primary address wins."""
    try:
        first, second = ipaddress.ip_address(one), ipaddress.ip_address(other)
    except ValueError:
        return False
    return first.version == second.version and int(first) > int(second)
