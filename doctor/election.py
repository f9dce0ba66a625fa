"""The VRRP election, simulated: who is MASTER after a tracked item fails, after how long, and after it recovers.

The rules are keepalived's, the same in 2.2.7 and 2.3.3 (vrrp.c vrrp_state_backup, vrrp_track.c):
- a tracked item changes the effective priority: a script, interface or BFD with weight W>0 adds W
  while up, W<0 subtracts |W| while down, `reverse` swaps the direction, weight 0 puts the
  instance in FAULT (vrrp_track.c process_script_update_priority, keepalived_netlink.c
  process_if_status_change); a track file adds value x weight, kept within -254..253, and
  -254 is FAULT; weight 0: non-zero is FAULT (track_file.c update_track_file_status).
  Track files hold 0 while healthy and, when failed, 1 (kahooks' value) or what --file-value says.
  The effective priority stays within 1..254; priority 255 (address owner) never changes
  (vrrp_track.c vrrp_set_effective_priority).
- a sync group faults all its instances when one of them faults;
- a MASTER that faults sends a priority-0 advert: the best BACKUP takes over after its skew
  time, (256 - priority)/256 s (VRRPv3: x advert_int);
- a BACKUP whose priority is above the MASTER's discards its adverts (unless `nopreempt`)
  and takes over when its down timer ends: down_timer_adverts (3) adverts + skew after the last
  advert it accepted (vrrp.h VRRP_MS_DOWN_TIMER), so 2..3 advert intervals + skew after the
  change (+ `preempt_delay`); the intervals are the effective ones (VRRPv2 whole seconds);
- a script's failure is seen after `fall` runs: (fall-1)..fall intervals after it fails, with the
  interval keepalived uses (2.2.7: whole seconds); track files (inotify), interfaces (netlink),
  processes (proc connector) and BFD sessions at once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kahooks.doctor.model import PRIO_OWNER, Instance, Node, Tracked


@dataclass(frozen=True, eq=False)  # one object per node's instance: compared and hashed by identity
class Member:
    """One node's instance in a VRRP group (the instances of all nodes with one virtual_router_id)."""

    node: Node
    instance: Instance


@dataclass(frozen=True)
class Standing:
    fault: bool
    priority: int
    parts: tuple[str, ...]  # how the priority came to be, for messages ("150", "-30 chk_haproxy")


@dataclass
class Scenario:
    node: str
    instance: str
    fails: str
    kind: str
    master_before: Member | None
    master_after_failure: Member | None
    failover_s: float | None  # the longest it can take
    failover_min_s: float | None
    failover_max_s: float | None
    master_after_recovery: Member | None
    standing_after_failure: dict[Member, Standing]

    def as_json(self) -> dict:
        def path(member: Member | None) -> str | None:
            return member.node.path if member is not None else None

        return {"node": self.node, "instance": self.instance, "fails": self.fails, "tracked_as": self.kind,
                "master_before": path(self.master_before),
                "master_after_failure": path(self.master_after_failure), "failover_s": self.failover_s,
                "failover_min_s": self.failover_min_s, "failover_max_s": self.failover_max_s,
                "master_after_recovery": path(self.master_after_recovery)}


def contribution(item: Tracked, failing: bool) -> tuple[bool, int]:
    """(puts the instance in FAULT, priority change) of one tracked item, failing or not."""
    if item.dropped:
        return False, 0
    multiplier = -1 if item.reverse else 1
    if item.kind == "file":
        value = item.value if failing else 0
        if item.weight == 0:
            return (value != 0) == (multiplier == 1), 0
        status = value * item.weight * multiplier
        return (True, 0) if status <= -254 else (False, min(status, 253))
    ok = not failing
    if item.weight == 0:
        return ok != (multiplier == 1), 0
    if ok:
        return False, item.weight * multiplier if item.weight > 0 else 0
    return False, item.weight * multiplier if item.weight < 0 else 0


def standings(node: Node, failing: frozenset[str]) -> dict[str, Standing]:
    """Every instance of `node` with the named tracked items failing ("script:chk", "file:f", ...)."""
    result: dict[str, Standing] = {}
    for instance in node.instances:
        fault, total, parts = False, instance.priority, [str(instance.priority)]
        for item in instance.tracked:
            item_fault, delta = contribution(item, f"{item.kind}:{item.name}" in failing)
            fault = fault or item_fault
            if delta:
                total += delta
                parts.append(f"{delta:+d} {item.name}")
        priority = instance.priority if instance.priority == PRIO_OWNER else max(1, min(254, total))
        result[instance.name] = Standing(fault, priority, tuple(parts))
    for group in node.sync_groups:  # one member in FAULT takes the group there
        members = [instance.name for instance in node.instances if instance.sync_group == group]
        if any(result[name].fault for name in members):
            for name in members:
                result[name] = Standing(True, result[name].priority, result[name].parts)
    return result


def groups(nodes: list[Node]) -> dict[str, list[Member]]:
    """The instances of all nodes, grouped by virtual_router_id (and interface where one node reuses a VRID)."""
    found: dict[str, list[Member]] = {}
    for node in nodes:
        vrids = [instance.vrid for instance in node.instances]
        for instance in node.instances:
            key = f"vrid {instance.vrid}"
            if vrids.count(instance.vrid) > 1:
                key += f" on {instance.interface}"
            found.setdefault(key, []).append(Member(node, instance))
    return found


def _address(member: Member) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(member.instance.unicast_src_ip or "")
    except ValueError:
        return None


def best(candidates: list[Member], state: dict[Member, Standing]) -> Member | None:
    """The highest priority; on a tie the higher primary address, or None when it cannot be told."""
    if not candidates:
        return None
    top = max(state[member].priority for member in candidates)
    leaders = [member for member in candidates if state[member].priority == top]
    if len(leaders) == 1:
        return leaders[0]
    addresses = [_address(member) for member in leaders]
    if all(address is not None for address in addresses):
        return max(leaders, key=lambda member: _address(member))  # type: ignore[arg-type, return-value]  # all known
    return None


def elect(members: list[Member], state: dict[Member, Standing], current: Member | None) -> Member | None:
    """Who holds the VIP once things settle, starting from `current` as MASTER."""
    alive = [member for member in members if not state[member].fault]
    if current is None or current not in alive:
        return best(alive, state)  # no MASTER: the down timers race, the smallest skew wins
    challengers = [member for member in alive if member != current and not member.instance.nopreempt
                   and state[member].priority > state[current].priority]
    return best(challengers, state) if challengers else current


def starts_master(instance: Instance) -> bool:
    """Only an address owner (priority 255) starts as MASTER at once. keepalived 2.2 starts every other
    instance in BACKUP with the full down timer, whatever its `state` (vrrp_scheduler.c vrrp_init_state),
    and one held in INIT by a weight-0 script comes up in BACKUP too (try_up_instance)."""
    return instance.priority == PRIO_OWNER


def first_master(members: list[Member], state: dict[Member, Standing]) -> Member | None:
    """The MASTER after all nodes start together: the owner, else the first down timer to end (the highest priority)."""
    starting = [member for member in members if starts_master(member.instance) and not state[member].fault]
    return elect(members, state, best(starting, state) if starting else None)


def skew(member: Member, priority: int) -> float:
    instance = member.instance
    factor = instance.advert_int if instance.version == 3 else 1.0
    return (256 - priority) / 256 * factor


def detection(node: Node, item: Tracked) -> tuple[float, float]:
    """(earliest, latest) seconds from the item failing to keepalived acting on it."""
    if item.kind == "script" and item.name in node.scripts:
        script = node.scripts[item.name]
        return (script.fall - 1) * script.interval, script.fall * script.interval
    return 0.0, 0.0


def takeover(before: Member, after: Member, state: dict[Member, Standing]) -> tuple[float, float]:
    """(earliest, latest) seconds from keepalived acting to `after` being MASTER."""
    new_skew = skew(after, state[after].priority)
    if state[before].fault:
        return new_skew, new_skew  # the old MASTER's priority-0 advert cuts the down timer to the skew
    advert = before.instance.advert_int if after.instance.version == 3 else after.instance.advert_int
    delay = after.instance.preempt_delay
    adverts = after.instance.down_timer_adverts
    return delay + (adverts - 1) * advert + new_skew, delay + adverts * advert + new_skew


def simulate(nodes: list[Node]) -> list[Scenario]:
    """Every tracked item of every node, failed then recovered, against every VRRP group of that node."""
    grouped = groups(nodes)
    healthy = {node.path: standings(node, frozenset()) for node in nodes}
    scenarios = []
    for node in nodes:
        items: dict[str, Tracked] = {}
        for instance in node.instances:
            for item in instance.tracked:
                items.setdefault(f"{item.kind}:{item.name}", item)
        for key, item in items.items():
            failed_here = standings(node, frozenset({key}))
            for members in grouped.values():
                mine = [member for member in members if member.node is node]
                tracks = any(candidate.kind == item.kind and candidate.name == item.name
                             for member in mine for candidate in member.instance.tracked)
                if not mine or not tracks and all(failed_here[member.instance.name] == healthy[node.path][member.instance.name]
                                                  for member in mine):
                    continue  # this group does not feel the item at all
                ok_state = {member: healthy[member.node.path][member.instance.name] for member in members}
                failed_state = {member: (failed_here if member.node is node else healthy[member.node.path])
                                [member.instance.name] for member in members}
                before = first_master(members, ok_state)
                after = elect(members, failed_state, before)
                recovered = elect(members, ok_state, after)
                low = high = None
                if after is not None and before is not None and after != before:
                    seen = detection(node, item)
                    took = takeover(before, after, failed_state)
                    low, high = seen[0] + took[0], seen[1] + took[1]
                scenarios.append(Scenario(
                    node.path, mine[0].instance.name, item.name, item.kind, before, after,
                    round(high, 3) if high is not None else None,  # the longest it can take: what to plan for
                    round(low, 3) if low is not None else None, round(high, 3) if high is not None else None,
                    recovered, failed_state))
    return scenarios
