"""Two-node keepalived configurations whose elections `kahooks doctor` predicts and real keepalived settles.

Each entry is one pair (lb1, lb2): weights positive, negative and zero, close and far
priorities, nopreempt, preempt_delay, several scripts, track files with weights, reverse,
two instances, sync groups. Every name (instance, script, track file) starts with the entry's
name and every entry has its own virtual_router_id and VIP, so all entries run side by side in
one keepalived per node (its keepalived.conf includes them) and do not disturb each other.

A tracked item fails when its flag file exists: a script (`{work}/check NAME`) exits 1, and a
track file holds 1 (0 when healthy), as kahooks serve writes them. Where the priority decides
(no FAULT), the instances speak VRRPv3 every 0.2 s, so the moment of the failure against the
adverts moves the failover by at most 0.2 s; FAULT cases keep keepalived's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBNET = "198.51.100"
FAST = "    version 3\n    advert_int 0.2\n"


@dataclass(frozen=True)
class Entry:
    name: str
    what: str
    lb1: str
    lb2: str


SCRIPT_INTERVAL = 1  # every corpus script's interval, in seconds


def script(name: str, weight: int | None = None, reverse: bool = False, fall: int = 1) -> str:
    lines = [f'vrrp_script {name} {{', f'    script "{{work}}/check {name}"', f"    interval {SCRIPT_INTERVAL}", "    timeout 1",
             f"    fall {fall}", "    rise 1"]
    if weight is not None:
        lines.append(f"    weight {weight}{' reverse' if reverse else ''}")
    return "\n".join(lines) + "\n}\n"


def track_file(name: str, weight: int | None = None, reverse: bool = False) -> str:
    lines = [f"track_file {name} {{", f"    file {{work}}/track/{name}", "    init_file 0"]
    if weight is not None:
        lines.append(f"    weight {weight}{' reverse' if reverse else ''}")
    return "\n".join(lines) + "\n}\n"


def instance(name: str, vrid: int, priority: int, scripts: tuple[str, ...] = (), files: tuple[str, ...] = (),
             state: str = "BACKUP", extra: str = "", fast: bool = False) -> str:
    tracks = ""
    if scripts:
        tracks += "    track_script {\n" + "".join(f"        {item}\n" for item in scripts) + "    }\n"
    if files:
        tracks += "    track_file {\n" + "".join(f"        {item}\n" for item in files) + "    }\n"
    return (f"vrrp_instance {name} {{\n    state {state}\n    interface eth0\n    virtual_router_id {vrid}\n"
            f"    priority {priority}\n{FAST if fast else ''}{extra}"
            f"    virtual_ipaddress {{\n        {SUBNET}.{vrid}/24 dev eth0\n    }}\n{tracks}}}\n")


def sync_group(name: str, members: tuple[str, ...], extra: str = "") -> str:
    return (f"vrrp_sync_group {name} {{\n    group {{\n" + "".join(f"        {member}\n" for member in members)
            + f"    }}\n{extra}}}\n")


def pair(name: str, what: str, vrid: int, priorities: tuple[int, int], *, kind: str = "script",
         weight: int | None = None, reverse: bool = False, fast: bool = False,
         extra: tuple[str, str] = ("", ""), states: tuple[str, str] = ("BACKUP", "BACKUP"), fall: int = 1) -> Entry:
    """The common shape: one instance per node tracking one script or one track file (weight None: the default)."""
    configs = []
    for node, priority, node_extra, state in zip(("lb1", "lb2"), priorities, extra, states):
        item = f"{name}_{node}"  # each node fails its own item
        if kind == "file":
            head = track_file(item, weight, reverse)
            body = instance(f"{name}_VI", vrid, priority, files=(item,), state=state, extra=node_extra, fast=fast)
        else:
            head = script(item, weight, reverse, fall)
            body = instance(f"{name}_VI", vrid, priority, scripts=(item,), state=state, extra=node_extra, fast=fast)
        configs.append(head + body)
    return Entry(name, what, configs[0], configs[1])


def two_scripts(name: str, vrid: int) -> Entry:
    configs = []
    for node, priority in (("lb1", 150), ("lb2", 100)):
        configs.append(script(f"{name}_{node}_a", -30) + script(f"{name}_{node}_b", -30)
                       + instance(f"{name}_VI", vrid, priority, scripts=(f"{name}_{node}_a", f"{name}_{node}_b"),
                                  fast=True))
    return Entry(name, "two scripts of weight -30: either alone cannot move the VIP (150-30 > 100)", *configs)


def two_instances(name: str, vrid: int) -> Entry:
    configs = []
    for node, (first, second) in (("lb1", (150, 100)), ("lb2", (100, 150))):
        item = f"{name}_{node}"
        configs.append(script(item) + instance(f"{name}_VIa", vrid, first, scripts=(item,))
                       + instance(f"{name}_VIb", vrid + 1, second, scripts=(item,)))
    return Entry(name, "two instances, each node MASTER of one; a failure moves only the one it held", *configs)


def synced(name: str, vrid: int, weighted: bool) -> Entry:
    configs = []
    for node, priority in (("lb1", 150), ("lb2", 100)):
        item = f"{name}_{node}"
        head = script(item, -60) if weighted else track_file(item, 0)
        tracked = {"scripts": (item,)} if weighted else {"files": (item,)}
        configs.append(head + instance(f"{name}_VIa", vrid, priority, **tracked)  # type: ignore[arg-type]
                       + instance(f"{name}_VIb", vrid + 1, priority)
                       + sync_group(f"{name}_G", (f"{name}_VIa", f"{name}_VIb")))
    what = ("a sync group ignores a weighted script: nothing moves" if weighted
            else "a sync group: one member's FAULT takes both instances over")
    return Entry(name, what, *configs)


CORPUS: list[Entry] = [
    pair("c01", "script weight 0: FAULT, the peer takes over after its skew", 101, (150, 100)),
    pair("c02", "script weight -60: 150-60 < 100, the VIP moves", 102, (150, 100), weight=-60, fast=True),
    pair("c03", "script weight -30: 150-30 > 100, the VIP never moves", 103, (150, 100), weight=-30, fast=True),
    pair("c04", "script weight +60 on both: 150 < 100+60, the VIP moves", 104, (150, 100), weight=60, fast=True),
    pair("c05", "script weight +20 on both: 150 > 100+20, the VIP never moves", 105, (150, 100), weight=20,
         fast=True),
    pair("c06", "track_file weight 0: FAULT", 106, (150, 100), kind="file", weight=0),
    pair("c07", "track_file weight -60: a failed check (1) takes 60", 107, (150, 100), kind="file", weight=-60, fast=True),
    pair("c08", "track_file default weight 1: a failed check raises the priority", 108, (150, 100), kind="file",
         fast=True),
    pair("c09", "track_file weight 60 reverse: a failed check takes 60", 109, (150, 100), kind="file", weight=60,
         reverse=True, fast=True),
    pair("c10", "script weight -60 reverse: a failing script adds 60", 110, (150, 100), weight=-60,
         reverse=True, fast=True),
    pair("c11", "nopreempt on both: after recovery the VIP stays where it went", 111, (150, 100), kind="file",
         weight=0, extra=("    nopreempt\n", "    nopreempt\n")),
    pair("c12", "preempt_delay 2 on lb1: it takes the VIP back, later", 112, (150, 100),
         extra=("    preempt_delay 2\n", "")),
    pair("c13", "nopreempt with state MASTER: keepalived clears it, lb1 preempts", 113, (150, 100),
         extra=("    nopreempt\n", ""), states=("MASTER", "BACKUP")),
    two_scripts("c14", 114),
    two_instances("c15", 115),
    synced("c17", 117, weighted=False),
    synced("c19", 119, weighted=True),
    pair("c21", "close priorities 101/100, weight -2: moves", 121, (101, 100), weight=-2, fast=True),
    pair("c22", "100/99, weight -1: a tie, and a BACKUP does not take over on a tie", 122, (100, 99),
         weight=-1, fast=True),
    pair("c23", "track_file weight -254: FAULT through the weight", 123, (150, 100), kind="file", weight=-254),
    pair("c24", "script fall 2, weight 0: two failed runs before FAULT", 124, (150, 100), fall=2),
    pair("c25", "priority 255, the address owner: keepalived ignores the weight -60, the VIP never moves", 125,
         (255, 100), weight=-60, fast=True),
    pair("c26", "state MASTER at the lower priority gives nothing: the higher priority wins the first election",
         126, (100, 150), extra=("    nopreempt\n", ""), states=("MASTER", "BACKUP")),
]
