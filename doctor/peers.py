"""Findings that need more than one node: the nodes disagree, or the election cannot do what the weights intend."""

from __future__ import annotations

from dataclasses import replace

from kahooks.doctor.election import Holder, Member, Scenario, Undecided, elect, first_master, groups, standings
from kahooks.doctor.findings import Finding, finding
from kahooks.doctor.model import Node, Tracked


def check_vrids(node: Node) -> list[Finding]:
    found = []
    seen: dict[tuple[int | None, str | None], str] = {}
    for instance in node.instances:
        key = (instance.vrid, instance.interface)
        if key in seen:
            found.append(finding("duplicate-vrid", "error", instance.where.first("virtual_router_id") or instance.where,
                                 f"{instance.name} and {seen[key]} both use virtual_router_id {instance.vrid} on "
                                 f"{instance.interface}: their adverts are taken for each other's",
                                 "give each instance on an interface its own virtual_router_id"))
        seen[key] = instance.name
    return found


def check_agreement(nodes: list[Node]) -> list[Finding]:
    """Each VRRP group: do the nodes agree on what VRRP needs them to agree on?"""
    found = []
    for key, members in groups(nodes).items():
        first = members[0]
        healthy = {member: standings(member.node, frozenset())[member.instance.name] for member in members}
        top = max(standing.priority for standing in healthy.values())
        tied = [member for member in members if healthy[member].priority == top]
        leader = first_master(members, healthy)
        if isinstance(leader, Member) and leader.instance.nopreempt and len(members) > 1:
            where = leader.instance.where
            found.append(finding("nopreempt-start-order", "hint", where.first("nopreempt") or where,
                                 f"{leader.instance.name}: {leader.node.path} has the highest priority and nopreempt: if "
                                 f"it starts after its peer has taken the VIP, it never takes it (the doctor assumes the "
                                 f"nodes start together)", "nopreempt is for nodes of equal standing; or accept it"))
        if len(tied) > 1:
            # vrrp.c vrrp_state_backup: a BACKUP accepts an equal priority, so a tie never takes the VIP back;
            # vrrp_scheduler.c vrrp_init_state: equal priorities, equal down timers: the first to start wins.
            # Addresses (vrrp_state_master_rx) only part two MASTERs that time out at once.
            last = tied[-1].instance.where
            winner = (f"{leader.node.path} wins (it starts first)" if isinstance(leader, Member) and leader in tied
                      else "the node whose keepalived starts first wins (not the higher address, not `state`)")
            found.append(finding("equal-priority", "warning", last.first("priority") or last,
                                 f"{first.instance.name} ({key}): {', '.join(member.node.path for member in tied)} all have "
                                 f"priority {top}: {winner}, and a node that recovers never takes the VIP back",
                                 "give the preferred node a higher priority"))
        if len(nodes) > 1 and len(members) == 1:
            found.append(finding("peer-missing-instance", "warning", first.instance.where,
                                 f"{first.instance.name} ({key}) exists on {first.node.path} only: no peer backs it up",
                                 "give the peer the same virtual_router_id, or check the number"))
        for other in members[1:]:
            a, b = first.instance, other.instance
            pair = f"{a.name} on {first.node.path} and {b.name} on {other.node.path}"
            if a.advert_int != b.advert_int:
                found.append(finding("peer-advert-int", "error", b.where.first("advert_int") or b.where,
                                     f"{pair}: advert_int {a.advert_int:g} vs {b.advert_int:g}: VRRPv2 drops "
                                     f"adverts with another interval, so both become MASTER",
                                     "the same advert_int on every node"))
            if a.version != b.version:
                found.append(finding("peer-version", "error", b.where, f"{pair}: VRRP version {a.version} vs {b.version}",
                                     "the same vrrp_version (or version) on every node"))
            if (a.auth or ("", "")) != (b.auth or ("", "")):
                found.append(finding("peer-auth", "error", b.where.first("authentication") or b.where,
                                     f"{pair}: authentication differs: each drops the other's adverts (split brain)",
                                     "the same auth_type and auth_pass on every node, or none"))
            if sorted(a.vips) != sorted(b.vips):
                found.append(finding("peer-vips", "error", b.where.first("virtual_ipaddress") or b.where,
                                     f"{pair}: virtual_ipaddress {sorted(a.vips)} vs {sorted(b.vips)}: VRRPv2 drops "
                                     f"adverts whose address list differs", "the same VIPs on every node"))
            for one, two, one_member in ((a, b, first), (b, a, other)):
                if one.unicast_peers and two.unicast_src_ip and two.unicast_src_ip not in one.unicast_peers:
                    found.append(finding("peer-unicast", "error", one.where.first("unicast_peer") or one.where,
                                         f"{one.name} on {one_member.node.path} does not list {two.unicast_src_ip} "
                                         f"in unicast_peer: its adverts never reach the peer", "list every other "
                                         "node's unicast_src_ip in unicast_peer"))
    return found


def _with_weight(nodes: list[Node], kind: str, name: str, weight: int) -> list[Node]:
    """The nodes with every tracking of (kind, name) given `weight`, for the smallest-weight search."""
    changed = []
    for node in nodes:
        instances = []
        for instance in node.instances:
            tracked: list[Tracked] = [replace(item, weight=weight) if (item.kind, item.name) == (kind, name) else item
                                      for item in instance.tracked]
            instances.append(replace(instance, tracked=tracked))
        changed.append(replace(node, instances=instances))
    return changed


def _moves(nodes: list[Node], node_path: str, kind: str, name: str, instance_name: str) -> bool:
    """Does (kind, name) failing on the node take instance_name's VIP away from it, with these weights?"""
    node = next(candidate for candidate in nodes if candidate.path == node_path)
    for members in groups(nodes).values():
        mine = [member for member in members if member.node is node and member.instance.name == instance_name]
        if not mine:
            continue
        ok = {member: standings(member.node, frozenset())[member.instance.name] for member in members}
        failed = {member: standings(member.node, frozenset({f"{kind}:{name}"}) if member.node is node
                                    else frozenset())[member.instance.name] for member in members}
        before = first_master(members, ok)
        if not isinstance(before, Member):
            return True  # nobody, or undecided: not surely this node's
        return before is not mine[0] or elect(members, failed, before) is not mine[0]
    return True


def smallest_weight(nodes: list[Node], scenario: Scenario) -> int | None:
    """The weight of least size, of the same sign, that would move the VIP; None if none within range."""
    item_sign = -1
    for node in nodes:
        for instance in node.instances:
            for item in instance.tracked:
                if (item.kind, item.name) == (scenario.kind, scenario.fails) and item.weight:
                    item_sign = 1 if item.weight > 0 else -1
    limit = 254 if scenario.kind == "file" else 253
    for size in range(1, limit + 1):
        weight = size * item_sign
        if _moves(_with_weight(nodes, scenario.kind, scenario.fails, weight), scenario.node, scenario.kind,
                  scenario.fails, scenario.instance):
            return weight
    return None


def check_failover(nodes: list[Node], scenarios: list[Scenario]) -> list[Finding]:
    """A tracked item whose failure on the MASTER leaves it MASTER protects nothing."""
    found: list[Finding] = []
    if len(nodes) < 2:
        return found
    for scenario in scenarios:
        before, after = scenario.master_before, scenario.master_after_failure
        if not isinstance(before, Member) or before is not after or before.node.path != scenario.node:
            continue
        if before.instance.name != scenario.instance:
            continue
        item = next((item for item in before.instance.tracked if item.name == scenario.fails and item.kind == scenario.kind),
                    None)
        if item is None or item.dropped:
            continue
        mine = scenario.standing_after_failure[before]
        others = [member for member in scenario.standing_after_failure if member != before]
        rival = max(others, key=lambda member: scenario.standing_after_failure[member].priority, default=None)
        rival_text = ""
        if rival is not None:
            rival_standing = scenario.standing_after_failure[rival]
            rival_text = (f" {'>=' if mine.priority >= rival_standing.priority else '<'} "
                          f"{rival.node.path}'s {rival_standing.priority}"
                          + (" (nopreempt)" if rival.instance.nopreempt else "")
                          + (" (FAULT)" if rival_standing.fault else ""))
        weight = smallest_weight(nodes, scenario)
        fix = f"weight {weight} on {scenario.fails} (or weight 0: FAULT on failure)" if weight is not None \
            else "weight 0 on it: the instance goes to FAULT and the VIP moves"
        found.append(finding("failover-never-happens", "error", item.where,
                             f"{scenario.fails} failing on {scenario.node} leaves it MASTER of {scenario.instance}: "
                             f"priority {' '.join(mine.parts) + ' = ' if len(mine.parts) > 1 else ''}{mine.priority}"
                             f"{rival_text}", fix))
    return found


def describe(holder: Holder) -> str:
    if isinstance(holder, Undecided):
        return f"undecided ({' or '.join(sorted({member.node.path for member in holder.candidates}))})"
    return holder.node.path if holder is not None else "nobody"
