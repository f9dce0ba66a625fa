"""Random two-node keepalived pairs for the differential test, from the grammar operators write.

`generate(seed)` composes one pair: both nodes share the instances (names, virtual_router_id,
VRRP version, advert_int, unicast or multicast, sync group); each node has its own priority
(unset, 255, close or far), `state`, `nopreempt`, `preempt_delay` and tracked items: track
scripts (weights of both signs, `reverse`, fall/rise, fractional intervals), track files
(any weight, and a failed value other than 1 at times) and a track interface (eth1).
The same seed gives the same `Spec`, configuration text byte for byte: `random.Random(seed)`
is the only source of choices, and the text is a template whose `@WORK@` the runner replaces
with its work folder (so a replay anywhere writes the same files but for that folder).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

NODES = ("n1", "n2")
ADDRESSES = {"n1": "192.0.2.11", "n2": "192.0.2.12"}  # what netns.Network gives nodes 11 and 12
WORK = "@WORK@"
FIRST_VRID = 51


@dataclass(frozen=True)
class Item:
    """One tracked item of one node: what the runner fails and recovers."""

    node: str
    kind: str  # script, file, interface
    name: str
    failed_value: int = 1  # a track file's content while failed (healthy: 0)


@dataclass(frozen=True)
class Timing:
    """The slowest timers of a pair (as written, before keepalived rounds anything): how long to wait."""

    advert_int: float
    script_interval: float
    counts: int  # the largest fall or rise
    preempt_delay: float


@dataclass
class Spec:
    seed: int
    configs: dict[str, str]  # node -> keepalived.conf template (@WORK@ for the work folder)
    items: list[Item]
    vips: dict[str, str]  # instance -> its VIP
    timing: Timing
    summary: list[str] = field(default_factory=list)  # one line per choice, for reports

    def config(self, node: str, work: str) -> str:
        return self.configs[node].replace(WORK, work)


# Weighted choices: common values often, edge values sometimes.
PRIORITIES = [None, None, 255, 150, 150, 100, 100, 101, 99, 200, 50, 254, 1]
SCRIPT_WEIGHTS = [None, 0, 0, -60, -60, -30, -2, -253, 2, 30, 60, 253]
FILE_WEIGHTS = [None, None, 0, 0, -60, -60, -30, -254, 30, 60, 254, -1]
INTERFACE_WEIGHTS = [None, None, 0, -60, -30, 30, 60]
INTERVALS = ["1", "1", "1", "2", "0.5", "1.5"]
ADVERTS = ["1", "1", "1", "0.5", "2", "0.25", "0.2"]
FAILED_VALUES = [1, 1, 1, 1, 2, 3, 5, -1, 100]


def _weight(rng: random.Random, choices: list[int | None]) -> str:
    weight = rng.choice(choices)
    if weight is None:
        return ""
    return f" weight {weight}{' reverse' if rng.random() < 0.2 else ''}"


def _script(name: str, rng: random.Random) -> tuple[str, float, int]:
    interval = rng.choice(INTERVALS)
    fall, rise = rng.choice([1, 1, 2, 3]), rng.choice([1, 1, 2])
    lines = [f"vrrp_script {name} {{", f'    script "{WORK}/check {name}"', f"    interval {interval}"]
    if rng.random() < 0.3:
        lines.append(f"    timeout {interval}")
    if fall != 1 or rng.random() < 0.3:
        lines.append(f"    fall {fall}")
    if rise != 1 or rng.random() < 0.3:
        lines.append(f"    rise {rise}")
    weight = _weight(rng, SCRIPT_WEIGHTS)
    if weight:
        lines.append(f"   {weight}")
    return "\n".join(lines) + "\n}\n", float(interval), max(fall, rise)


def _track_file(name: str, rng: random.Random) -> str:
    lines = [f"track_file {name} {{", f"    file {WORK}/track/{name}"]
    weight = _weight(rng, FILE_WEIGHTS)
    if weight:
        lines.append(f"   {weight}")
    lines.append("    init_file 0 overwrite" if rng.random() < 0.5 else "    init_file")
    return "\n".join(lines) + "\n}\n"


def generate(seed: int) -> Spec:
    rng = random.Random(seed)
    summary: list[str] = []
    version = rng.choice([2, 2, 3, 3, None])  # None: unset, keepalived's default (2)
    advert = rng.choice(ADVERTS)
    if version != 3 and advert in ("0.25", "0.2") and rng.random() < 0.5:
        advert = "1"  # VRRPv2 with sub-second adverts: sometimes, not most of the time
    unicast = rng.random() < 0.4
    synced = rng.random() < 0.3
    instances = ["VI_1", "VI_2"] if synced else ["VI_1"]
    global_version = version is not None and rng.random() < 0.3
    summary.append(f"version={version} advert_int={advert} unicast={unicast} sync_group={synced} "
                   f"global_version={global_version}")
    configs: dict[str, str] = {}
    items: list[Item] = []
    intervals, counts, delays = [1.0], [1], [0.0]
    owners = 0
    for node in NODES:
        head = [f"global_defs {{\n    router_id {node}\n    enable_script_security\n    script_user keepalived_script\n"
                + (f"    vrrp_version {version}\n" if global_version else "") + "}\n"]
        tracked: dict[str, list[str]] = {instance: [] for instance in instances}
        wanted = rng.choice([0, 1, 1, 1, 2, 2, 3]) if node == "n2" or rng.random() < 0.9 else 0
        kinds = [rng.choice(["script", "script", "file", "file", "interface"]) for _ in range(wanted)]
        if node == "n2" and not items and not kinds:
            kinds = [rng.choice(["script", "file", "interface"])]  # every pair fails something
        if kinds.count("interface") > 1:
            kinds = [kind for kind in kinds if kind != "interface"] + ["interface"]
        for number, kind in enumerate(kinds, 1):
            where = rng.choice(instances)
            if kind == "script":
                name = f"{node}s{number}"
                text, interval, count = _script(name, rng)
                head.append(text)
                intervals.append(interval)
                counts.append(count)
                item = Item(node, kind, name)
                tracked[where].append(f"track_script {{\n        {name}"
                                      + (_weight(rng, SCRIPT_WEIGHTS) if rng.random() < 0.2 else "") + "\n    }")
            elif kind == "file":
                name = f"{node}f{number}"
                head.append(_track_file(name, rng))
                item = Item(node, kind, name, rng.choice(FAILED_VALUES))
                tracked[where].append(f"track_file {{\n        {name}"
                                      + (_weight(rng, FILE_WEIGHTS) if rng.random() < 0.2 else "") + "\n    }")
            else:
                item = Item(node, kind, "eth1")
                tracked[where].append(f"track_interface {{\n        eth1{_weight(rng, INTERFACE_WEIGHTS)}\n    }}")
            items.append(item)
            summary.append(f"{node}: {kind} {item.name} on {where}"
                           + (f" failed value {item.failed_value}" if kind == "file" else ""))
        priority = rng.choice(PRIORITIES)
        if priority == 255:
            owners += 1
            if owners > 1:
                priority = 150  # two address owners fight forever: not a question for the doctor
        state = rng.choice([None, None, "BACKUP", "MASTER"])
        nopreempt = rng.random() < 0.25
        preempt_delay = rng.choice([None, None, None, "1", "2", "0.5"])
        if preempt_delay:
            delays.append(float(preempt_delay))
        summary.append(f"{node}: priority={priority} state={state} nopreempt={nopreempt} "
                       f"preempt_delay={preempt_delay}")
        body = []
        if synced:
            body.append(f"vrrp_sync_group G1 {{\n    group {{\n        {instances[0]}\n        {instances[1]}\n    }}\n}}\n")
        for index, instance in enumerate(instances):
            lines = [f"vrrp_instance {instance} {{"]
            if state:
                lines.append(f"    state {state}")
            lines += ["    interface eth0", f"    virtual_router_id {FIRST_VRID + index}"]
            if priority is not None:
                lines.append(f"    priority {priority}")
            lines.append(f"    advert_int {advert}")
            if version is not None and not global_version:
                lines.append(f"    version {version}")
            if nopreempt:
                lines.append("    nopreempt")
            if preempt_delay:
                lines.append(f"    preempt_delay {preempt_delay}")
            if unicast:
                peer = ADDRESSES["n2" if node == "n1" else "n1"]
                lines += [f"    unicast_src_ip {ADDRESSES[node]}", f"    unicast_peer {{\n        {peer}\n    }}"]
            lines.append(f"    virtual_ipaddress {{\n        192.0.2.{100 + index}/24 dev eth0\n    }}")
            lines += [f"    {block}" for block in tracked[instance]]
            body.append("\n".join(lines) + "\n}\n")
        configs[node] = "".join(head) + "".join(body)
    timing = Timing(max(float(advert), 1.0), max(intervals), max(counts), max(delays))
    vips = {instance: f"192.0.2.{100 + index}" for index, instance in enumerate(instances)}
    return Spec(seed, configs, items, vips, timing, summary)
