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
- a sync group faults all its instances when one of them faults, and moves as one: a member goes
  MASTER only when every member wants to (vrrp_sync.c vrrp_sync_can_goto_master, both versions),
  so a group whose members would not all preempt stays where it is (_elect_units);
- a tie: a BACKUP accepts an advert of equal priority (vrrp.c vrrp_state_backup: `hd->priority >=
  vrrp->effective_priority`), so it never preempts on a tie; only two MASTERs of equal priority
  compare addresses (vrrp_state_master_rx, vrrp_saddr_cmp: the higher stays). Started together,
  nodes of equal priority have equal down timers (vrrp_scheduler.c vrrp_init_state): the first
  keepalived to start wins, which no configuration says: "undecided", with the outcome for each
  candidate (if_master_before);
- a MASTER that faults sends a priority-0 advert: the best BACKUP takes over after its skew
  time, (256 - priority)/256 s (VRRPv3: x advert_int);
- a BACKUP whose priority is above the MASTER's discards its adverts (unless `nopreempt`)
  and takes over when its down timer ends: down_timer_adverts (3) adverts + skew after the last
  advert it accepted (vrrp.h VRRP_MS_DOWN_TIMER), so 2..3 advert intervals + skew after the
  change; with `preempt_delay` it still accepts the adverts that come before the delay ends
  (accepted_after_change); the intervals are the effective ones (VRRPv2 whole seconds);
- a script's failure is seen after `fall` runs: (fall-1)..fall intervals after it fails, with the
  interval keepalived uses (2.2.7: whole seconds); track files (inotify), interfaces (netlink),
  processes (proc connector) and BFD sessions at once.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Union

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


@dataclass(frozen=True)
class Undecided:
    """Who holds the VIP depends on what no configuration says: which keepalived starts first.

    JSON: the string "undecided" (never null, which is "nobody"), with the candidates beside it."""

    candidates: tuple[Member, ...]
    why: str


UNDECIDED = "undecided"
Holder = Union[Member, Undecided, None]
Unit = dict[str, Member]  # one node's members of a set of linked VRRP groups (its sync group), by group key


@dataclass
class Branch:
    """What follows from one MASTER before the failure."""

    master_after_failure: Holder
    failover_min_s: float | None
    failover_max_s: float | None
    master_after_recovery: Holder

    def as_json(self) -> dict:
        return {"master_after_failure": _json(self.master_after_failure), "failover_s": self.failover_max_s,
                "failover_min_s": self.failover_min_s, "failover_max_s": self.failover_max_s,
                "master_after_recovery": _json(self.master_after_recovery)}


def _json(holder: Holder) -> str | None:
    """A node's path, None (nobody), or "undecided" (the configuration cannot tell: never None)."""
    if isinstance(holder, Undecided):
        return UNDECIDED
    return holder.node.path if holder is not None else None


@dataclass
class Scenario:
    node: str
    instance: str
    fails: str
    kind: str
    master_before: Holder
    master_after_failure: Holder
    failover_s: float | None  # the longest it can take
    failover_min_s: float | None
    failover_max_s: float | None
    master_after_recovery: Holder
    standing_after_failure: dict[Member, Standing]
    branches: dict[str, Branch] = field(default_factory=dict)  # master_before undecided: by who it is

    def as_json(self) -> dict:
        out: dict[str, object] = {
            "node": self.node, "instance": self.instance, "fails": self.fails, "tracked_as": self.kind,
            "master_before": _json(self.master_before),
            "master_after_failure": _json(self.master_after_failure), "failover_s": self.failover_s,
            "failover_min_s": self.failover_min_s, "failover_max_s": self.failover_max_s,
            "master_after_recovery": _json(self.master_after_recovery)}
        if isinstance(self.master_before, Undecided):
            out["undecided_between"] = sorted({member.node.path for member in self.master_before.candidates})
            out["undecided_why"] = self.master_before.why
            out["if_master_before"] = {path: branch.as_json() for path, branch in self.branches.items()}
        return out


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


def _address(member: Member, group: list[Member]) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The member's primary address: its unicast_src_ip; else, in a group of two, the one address the
    other node names in unicast_peer (keepalived sends from the interface's primary address)."""
    text = member.instance.unicast_src_ip
    if not text:
        others = [other for other in group if other is not member]
        if len(others) == 1 and len(others[0].instance.unicast_peers) == 1:
            text = others[0].instance.unicast_peers[0]
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def linked(grouped: dict[str, list[Member]], key: str) -> list[str]:
    """The VRRP groups that go where `key` goes: the groups of the other members of each node's sync group,
    when every node that has one of them has all of them in one sync group; else `key` alone."""
    where = {(id(member.node), member.instance.name): name for name, members in grouped.items() for member in members}
    keys = [key]
    for member in grouped[key]:
        group = member.instance.sync_group
        if group is None:
            continue
        for instance in member.node.instances:
            other = where[(id(member.node), instance.name)]
            if instance.sync_group == group and other not in keys:
                keys.append(other)
    if len(keys) == 1:
        return keys
    nodes = {id(member.node): member.node for name in keys for member in grouped[name]}
    for node in nodes.values():
        mine = [member for name in keys for member in grouped[name] if member.node is node]
        if len(mine) != len(keys) or len({member.instance.sync_group for member in mine}) != 1 \
                or mine[0].instance.sync_group is None:
            return [key]  # the nodes do not couple these groups the same way: each group on its own
    return keys


def units(grouped: dict[str, list[Member]], keys: list[str]) -> list[Unit]:
    """Per node (in the order the nodes were given), its members of the groups `keys`."""
    found: dict[int, Unit] = {}
    for name in keys:
        for member in grouped[name]:
            found.setdefault(id(member.node), {})[name] = member
    return list(found.values())


def _fault(unit: Unit, state: dict[Member, Standing]) -> bool:
    return any(state[member].fault for member in unit.values())


def _by_address(tied: list[Unit], group: list[Member]) -> Unit | None:
    """vrrp.c vrrp_state_master_rx (2.2.7 and 2.3.3): of two MASTERs of equal priority, the one whose
    address is lower (vrrp_saddr_cmp) goes BACKUP: the higher address stays. None when one is unknown."""
    if any(len(unit) != 1 for unit in tied):
        return None
    addresses = [_address(next(iter(unit.values())), group) for unit in tied]
    known = [address for address in addresses if address is not None]
    if len(known) != len(tied) or len({address.version for address in known}) != 1:
        return None
    return tied[max(range(len(tied)), key=lambda index: known[index])]  # type: ignore[arg-type]  # one family


def _race(candidates: list[Unit], timer, why: str) -> Unit | Undecided | None:
    """The unit whose timers end first; equal timers: `why` decides, which the configuration does not say."""
    if not candidates:
        return None
    times = {id(unit): timer(unit) for unit in candidates}
    first = min(times.values())
    tied = [unit for unit in candidates if abs(times[id(unit)] - first) < 1e-9]
    if len(tied) == 1:
        return tied[0]
    return Undecided(tuple(member for unit in tied for member in unit.values()), why)


def _elect_units(all_units: list[Unit], state: dict[Member, Standing], current: Unit | None,
                 rounds: int = 4) -> Unit | Undecided | None:
    """Who holds the group(s) once things settle, from `current` as MASTER (vrrp.c vrrp_state_backup:
    a BACKUP discards a lower priority's adverts unless nopreempt and takes over when its down timer
    ends; an equal or higher priority it accepts, so a tie never preempts. In a sync group a member
    whose timer ends goes MASTER only when every member wants MASTER (vrrp_sync.c
    vrrp_sync_can_goto_master, "prefer backup state to avoid thrashing", both versions): the whole
    group moves only when every member of it would preempt; then vrrp_sync_master takes the
    others along, and the old MASTER's members, outbid, go BACKUP together (vrrp_sync_backup)."""
    for _ in range(rounds):  # each round settles one MASTER; a few suffice (every move raises the priority)
        alive = [unit for unit in all_units if not _fault(unit, state)]
        if current is None or current not in alive:
            # The old MASTER's priority-0 advert (FAULT, stop) cuts every BACKUP's timer to its skew:
            # the smallest skew (highest priority) ends first; in a sync group the last member's.
            winner = _race(alive, lambda unit: max(skew(member, state[member].priority) for member in unit.values()),
                           "equal priorities after the MASTER left: both time out at once, the higher address wins")
            group = [member for unit in all_units for member in unit.values()]
            if isinstance(winner, Undecided) and (decided := _by_address(
                    [unit for unit in alive if any(member in winner.candidates for member in unit.values())], group)):
                winner = decided
            if not isinstance(winner, dict):
                return winner
            current = winner
            continue
        challengers = [unit for unit in alive if unit is not current and all(
            not member.instance.nopreempt and state[member].priority > state[current[name]].priority
            for name, member in unit.items())]
        if not challengers:
            return current
        best_one = _race(challengers, lambda unit: -min(state[member].priority for member in unit.values()),
                         "equal priorities among the challengers")
        if not isinstance(best_one, dict):
            return best_one
        current = best_one
    return current


# How late a weight-0 script's first result can come (a fork and exec as script_user; more under load):
# until it does, the instance waits in INIT/FAULT and only then starts its full down timer.
SCRIPT_START_SLACK_S = 0.5
# Two keepalived started "together" (a boot, a restart of both, the lab's) start some milliseconds
# apart: first down timers closer than this end in either order (vrrp_scheduler.c vrrp_init_state
# starts each timer when its own keepalived reads its config). A lower priority at 99 against
# nopreempt at 100 differs by 1/256 advert_int (0.8 ms at VRRPv3 advert_int 0.2): a race, not a
# decision (seen in the lab on 2.2.7 and 2.3.3, seed 83: n1 at 99 started first and kept it).
START_SPREAD_S = 0.05


def start_delay(member: Member, unit: Unit, state: dict[Member, Standing]) -> tuple[float, float]:
    """(earliest, latest) from keepalived's start to this member's first down timer ending
    (vrrp_scheduler.c vrrp_init_state, 2.2.7 and 2.3.3): the address owner at once (ms_down_timer 1 us);
    everyone else the full down timer, whatever `state` says. In a sync group with any member that is
    not an owner, every `state MASTER` is made BACKUP (vrrp.c vrrp_complete_init, "if any sync group
    has member wanting to start in master state"): the full down timer too (seen in the lab, seed 75).
    An instance (or a member of its sync group) tracking a weight-0 script waits for the script's first
    result before any of it (vrrp_track.c initialise_track_script_state: num_script_init;
    vrrp_init_script runs it at once)."""
    instance = member.instance
    synced = [other.instance for other in unit.values()] if instance.sync_group is not None else [instance]
    waits = any(item.kind == "script" and item.weight == 0 and not item.dropped
                for other in synced for item in other.tracked)
    slack = SCRIPT_START_SLACK_S if waits else 0.0
    if all(other.priority == PRIO_OWNER and other.state == "MASTER" for other in synced):
        return slack, slack
    delay = instance.down_timer_adverts * instance.advert_int + skew(member, state[member].priority)
    return delay, delay + slack


def _first_units(all_units: list[Unit], state: dict[Member, Standing]) -> Unit | Undecided | None:
    """The MASTER after all nodes start together: the first whose (group's) timers end, and then whoever
    preempts it. Timers that end at the same moment, or may end in either order (a script's first
    result), make it undecided, unless every possible first MASTER ends with the same holder. The
    first to start wins a tie, which no configuration says (an address decides only between two
    MASTERs that time out within an advert's trip of each other, vrrp.c vrrp_state_master_rx)."""
    alive = [unit for unit in all_units if not _fault(unit, state)]
    if not alive:
        return None
    # A sync group goes MASTER when its last member wants to (vrrp_sync.c vrrp_sync_can_goto_master).
    spans = {id(unit): (max(start_delay(member, unit, state)[0] for member in unit.values()),
                        max(start_delay(member, unit, state)[1] for member in unit.values())) for unit in alive}
    latest_first = min(span[1] for span in spans.values()) + START_SPREAD_S
    possible = [unit for unit in alive if spans[id(unit)][0] <= latest_first + 1e-9]
    outcomes: list[Unit | Undecided | None] = []
    for unit in possible:
        outcome = _elect_units(all_units, state, unit)
        if not any(outcome is other for other in outcomes):
            outcomes.append(outcome)
    if len(outcomes) == 1:
        return outcomes[0]
    tied = len({spans[id(unit)] for unit in possible}) == 1
    held = any(spans[id(unit)][0] != spans[id(unit)][1] for unit in possible)
    why = ("equal priorities: the node whose keepalived starts first takes it, and a tie never takes it back"
           if tied else "a weight-0 script's first result holds an instance back for an unknown moment at start, "
                        "and the later node does not preempt" if held else
           f"first down timers less than {START_SPREAD_S:g} s apart (close priorities): the node whose keepalived "
           "starts first takes it, and the other does not preempt (nopreempt)")
    return Undecided(tuple(member for unit in outcomes if isinstance(unit, dict) for member in unit.values()), why)


def _holder(result: Unit | Undecided | None, key: str) -> Holder:
    if isinstance(result, dict):
        return result[key]
    return result


def _unit_of(all_units: list[Unit], holder: Holder) -> Unit | None:
    if isinstance(holder, Member):
        return next((unit for unit in all_units if holder in unit.values()), None)
    return None


def elect(members: list[Member], state: dict[Member, Standing], current: Member | None) -> Holder:
    """One VRRP group on its own: who holds the VIP once things settle, starting from `current` as MASTER."""
    all_units = [{"": member} for member in members]
    return _holder(_elect_units(all_units, state, _unit_of(all_units, current)), "")


def first_master(members: list[Member], state: dict[Member, Standing]) -> Holder:
    """One VRRP group on its own: the MASTER after all nodes start together (Undecided on a tie)."""
    return _holder(_first_units([{"": member} for member in members], state), "")


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
    adverts = after.instance.down_timer_adverts
    first, last = accepted_after_change(after.instance.preempt_delay, advert)
    # The first advert that shows the change comes within an interval (a change of priority sends none at
    # once: vrrp_set_effective_priority); the down timer runs from the last advert accepted after it.
    return first * advert + adverts * advert + new_skew, advert + last * advert + adverts * advert + new_skew


def accepted_after_change(preempt_delay: float, advert: float) -> tuple[int, int]:
    """How many adverts after the first lower-priority one a BACKUP still accepts, (fewest, most).

    vrrp.c vrrp_state_backup (2.2.7 and 2.3.3 alike): without preempt_delay a lower-priority advert is
    discarded, so the down timer runs from the advert before it (-1). With one, the first starts the delay
    (preempt_time = timer_now() + preempt_delay) and is accepted, as is every advert while `preempt_time >
    time_now`: those k intervals after the first with k * advert < preempt_delay. One landing on preempt_time
    itself (a delay a whole number of intervals) is accepted or not by microseconds: seen accepted on both
    versions (the lab's seed 96: delay 2, advert_int 1, takeover 6.3-6.6 s), so both are possible.
    """
    if preempt_delay <= 0:
        return -1, -1
    ratio = preempt_delay / advert
    whole = round(ratio)
    if abs(ratio - whole) < 1e-6:
        return whole - 1, whole
    return math.ceil(ratio) - 1, math.ceil(ratio) - 1


def _branch(node: Node, item: Tracked, keys: list[str], key: str, all_units: list[Unit], start: Unit,
            ok_state: dict[Member, Standing], failed_state: dict[Member, Standing]) -> Branch:
    after = _elect_units(all_units, failed_state, start)
    if isinstance(after, Undecided):
        recovered: Unit | Undecided | None = after
    else:
        recovered = _elect_units(all_units, ok_state, after)
    low = high = None
    if isinstance(after, dict) and after is not start:
        seen = detection(node, item)
        # A sync group moves when its last member's timer ends (vrrp_sync.c vrrp_sync_can_goto_master).
        took = [takeover(start[name], after[name], failed_state) for name in keys]
        low, high = seen[0] + max(t[0] for t in took), seen[1] + max(t[1] for t in took)
    return Branch(_holder(after, key), round(low, 3) if low is not None else None,
                  round(high, 3) if high is not None else None, _holder(recovered, key))


def simulate(nodes: list[Node]) -> list[Scenario]:
    """Every tracked item of every node, failed then recovered, against every VRRP group of that node
    (with the groups its sync group links to it: they move together)."""
    grouped = groups(nodes)
    healthy = {node.path: standings(node, frozenset()) for node in nodes}
    scenarios = []
    for node in nodes:
        items: dict[str, Tracked] = {}
        for instance in node.instances:
            for item in instance.tracked:
                items.setdefault(f"{item.kind}:{item.name}", item)
        for key_item, item in items.items():
            failed_here = standings(node, frozenset({key_item}))
            for key, members in grouped.items():
                mine = [member for member in members if member.node is node]
                keys = linked(grouped, key)
                feel = [member for name in keys for member in grouped[name] if member.node is node]
                tracks = any(candidate.kind == item.kind and candidate.name == item.name
                             for member in feel for candidate in member.instance.tracked)
                if not mine or not tracks and all(failed_here[member.instance.name] == healthy[node.path][member.instance.name]
                                                  for member in feel):
                    continue  # this group (and its sync group) does not feel the item at all
                everyone = [member for name in keys for member in grouped[name]]
                ok_state = {member: healthy[member.node.path][member.instance.name] for member in everyone}
                failed_state = {member: (failed_here if member.node is node else healthy[member.node.path])
                                [member.instance.name] for member in everyone}
                all_units = units(grouped, keys)
                first = _first_units(all_units, ok_state)
                branches: dict[str, Branch] = {}
                if isinstance(first, Undecided):
                    for unit in all_units:
                        if unit[key] in first.candidates:
                            branches[unit[key].node.path] = _branch(node, item, keys, key, all_units, unit, ok_state,
                                                                    failed_state)
                    undecided = Undecided(tuple(unit[key] for unit in all_units if unit[key] in first.candidates),
                                          first.why)
                    before: Holder = undecided
                    outcome = _merge(list(branches.values()), undecided)
                else:
                    before = _holder(first, key)
                    outcome = _branch(node, item, keys, key, all_units, first, ok_state, failed_state) \
                        if isinstance(first, dict) else _branch_from_nobody(all_units, failed_state, ok_state, key)
                scenarios.append(Scenario(
                    node.path, mine[0].instance.name, item.name, item.kind, before, outcome.master_after_failure,
                    outcome.failover_max_s,  # the longest it can take: what to plan for
                    outcome.failover_min_s, outcome.failover_max_s, outcome.master_after_recovery,
                    {member: failed_state[member] for member in members}, branches))
    return scenarios


def _branch_from_nobody(all_units: list[Unit], failed_state: dict[Member, Standing],
                        ok_state: dict[Member, Standing], key: str) -> Branch:
    after = _elect_units(all_units, failed_state, None)
    recovered = after if isinstance(after, Undecided) else _elect_units(
        all_units, ok_state, after if isinstance(after, dict) else None)
    return Branch(_holder(after, key), None, None, _holder(recovered, key))


def _merge(branches: list[Branch], before: Undecided) -> Branch:
    """The branches' common outcome; where they differ, undecided too."""
    def common(values: list[Holder]) -> Holder:
        first = values[0]
        if all(value is first for value in values):
            return first
        candidates = tuple(value for value in values if isinstance(value, Member))
        return Undecided(candidates, before.why)

    lows = {branch.failover_min_s for branch in branches}
    highs = {branch.failover_max_s for branch in branches}
    return Branch(common([branch.master_after_failure for branch in branches]),
                  lows.pop() if len(lows) == 1 else None, highs.pop() if len(highs) == 1 else None,
                  common([branch.master_after_recovery for branch in branches]))
