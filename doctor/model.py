"""A keepalived node as its configuration makes it: scripts, track files, instances, sync groups.

Defaults and rules are keepalived 2.2.7's (vrrp_parser.c, vrrp_track.c, vrrp.c): a script's
weight 0, interval 1, timeout = interval, rise/fall 1; a track_file's weight 1; priority 100,
advert_int 1, VRRP version 2; `nopreempt` and `preempt_delay` cleared by `state MASTER`;
weighted scripts dropped and weighted files and interfaces made weight 0 in a sync group
without `sync_group_tracking_weight`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kahooks.doctor.conf import Document, Statement, checked

PRIO_OWNER = 255
# keepalived 2.2.7's ranges (vrrp_parser.c, vrrp_track.c): (low, high, whole)
SECONDS = (0.001, 4294.0, False)  # a script's interval and timeout: UINT_MAX / TIMER_HZ
SCRIPT_WEIGHT = (-253, 253, True)
TRACK_WEIGHT = (-254, 254, True)  # files, interfaces, processes
COUNT = (1, 2**31 - 1, True)  # rise, fall
PRIORITY = (1, PRIO_OWNER, True)
VRID = (1, 255, True)
ADVERT_INT = (0.01, 255.0, False)
PREEMPT_DELAY = (0.0, 1000.0, False)  # TIMER_MAX_SEC
VERSION = (2, 3, True)


@dataclass
class Script:
    name: str
    command: str
    interval: float
    timeout: float | None  # None: keepalived uses the interval
    weight: int
    reverse: bool
    rise: int
    fall: int
    user: str | None
    where: Statement

    @property
    def effective_timeout(self) -> float:
        return self.timeout if self.timeout is not None else self.interval


@dataclass
class TrackFile:
    name: str
    path: str | None
    weight: int
    reverse: bool
    init_file: bool
    where: Statement


@dataclass
class Tracked:
    """One item an instance tracks, with the weight that applies to it there."""

    kind: str  # script, file, interface, process
    name: str
    weight: int
    reverse: bool
    where: Statement
    dropped: str = ""  # why keepalived stops tracking it, if it does


@dataclass
class Instance:
    name: str
    state: str
    interface: str | None
    vrid: int | None
    priority: int
    advert_int: float
    version: int
    nopreempt: bool
    preempt_delay: float
    vips: list[str]
    unicast_src_ip: str | None
    unicast_peers: list[str]
    auth: tuple[str, str] | None
    tracked: list[Tracked]
    notify: dict[str, Statement]
    sync_group: str | None
    where: Statement


@dataclass
class Node:
    """One keepalived.conf: the node it configures."""

    path: str
    document: Document
    globals: Statement | None
    scripts: dict[str, Script] = field(default_factory=dict)
    files: dict[str, TrackFile] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    sync_groups: dict[str, Statement] = field(default_factory=dict)
    bad_numbers: list[tuple[Statement, str]] = field(default_factory=list)  # (where, why): keepalived ignores them

    def number(self, statement: Statement | None, default: float, limits: tuple[float, float, bool]) -> float:
        """The number `statement` gives, in keepalived's `limits`; a bad one is noted and `default` used."""
        value, problem = checked(statement, default, *limits)
        if problem is not None and statement is not None:
            self.bad_numbers.append((statement, problem))
        return value

    def whole(self, statement: Statement | None, default: int, limits: tuple[float, float, bool]) -> int:
        return int(self.number(statement, default, limits))

    def global_value(self, keyword: str) -> str | None:
        return self.globals.value(keyword) if self.globals is not None else None

    def global_has(self, keyword: str) -> bool:
        return self.globals is not None and self.globals.has(keyword)


def _weight_words(node: Node, child: Statement, limits: tuple[float, float, bool], default_weight: int,
                  default_reverse: bool) -> tuple[int, bool]:
    """`NAME [weight W [reverse|noreverse]]` inside a track_* block."""
    weight, reverse = default_weight, default_reverse
    args = child.args
    if len(args) >= 2 and args[0] == "weight":
        weight = node.whole(Statement(args, child.file, child.line), default_weight, limits)
        if len(args) >= 3:
            reverse = args[2] == "reverse" if args[2] in ("reverse", "noreverse") else reverse
    return weight, reverse


def build(document: Document, path: str | None = None) -> Node:
    statements = document.statements
    globals_ = next((s for s in statements if s.keyword == "global_defs"), None)
    node = Node(path or document.path, document, globals_)
    default_version = node.whole(globals_.first("vrrp_version") if globals_ else None, 2, VERSION)
    for statement in statements:
        if statement.keyword == "vrrp_script" and statement.args:
            weight_statement = statement.first("weight")
            weight = node.whole(weight_statement, 0, SCRIPT_WEIGHT)
            reverse = bool(weight_statement and "reverse" in weight_statement.args)
            interval = node.number(statement.first("interval"), 1.0, SECONDS)
            timeout = statement.first("timeout")
            user = statement.first("user")
            node.scripts[statement.args[0]] = Script(
                statement.args[0], " ".join((statement.first("script") or statement).args), interval,
                node.number(timeout, interval, SECONDS) if timeout is not None else None, weight, reverse,
                node.whole(statement.first("rise"), 1, COUNT), node.whole(statement.first("fall"), 1, COUNT),
                user.args[0] if user is not None and user.args else None, statement)
        elif statement.keyword in ("track_file", "vrrp_track_file") and statement.args and statement.children is not None:
            weight_statement = statement.first("weight")
            node.files[statement.args[0]] = TrackFile(
                statement.args[0], statement.value("file"), node.whole(weight_statement, 1, TRACK_WEIGHT),
                bool(weight_statement and "reverse" in weight_statement.args), statement.has("init_file"), statement)
        elif statement.keyword == "vrrp_sync_group" and statement.args:
            node.sync_groups[statement.args[0]] = statement
    member_of = {}
    for name, group in node.sync_groups.items():
        for block in group.all("group"):
            for member in block.children or []:
                for word in member.words:
                    member_of[word] = name
    for statement in statements:
        if statement.keyword == "vrrp_instance" and statement.args:
            node.instances.append(_instance(node, statement, default_version, member_of.get(statement.args[0])))
    return node


TRACK_BLOCKS = (("script", "track_script"), ("file", "track_file"), ("interface", "track_interface"),
                ("process", "track_process"))


def _tracked_items(node: Node, statement: Statement, weights_ignored: str | None) -> list[Tracked]:
    """What an instance tracks, with keepalived's rules (vrrp.c) for an instance whose weights it ignores
    (`weights_ignored` says why: a sync group, or the address owner): a weighted script is dropped; a
    track file's default weight 1 becomes 0 and any other weight is dropped; a weighted interface
    becomes weight 0 in a sync group and is dropped for the owner. Processes are left as they are."""
    defined: dict[str, dict] = {"script": node.scripts, "file": node.files}
    tracked = []
    for kind, keyword in TRACK_BLOCKS:
        for block in statement.all(keyword):
            for child in block.children or []:
                known = defined.get(kind, {}).get(child.keyword)
                weight, reverse = _weight_words(node, child, SCRIPT_WEIGHT if kind == "script" else TRACK_WEIGHT,
                                                known.weight if known else (1 if kind == "file" else 0),
                                                known.reverse if known else False)
                item = Tracked(kind, child.keyword, weight, reverse, child)
                tracked.append(item)
                if kind in defined and known is None:
                    item.dropped = f"no {'vrrp_script' if kind == 'script' else 'track_file'} {child.keyword} is defined"
                elif weights_ignored is None or not weight or kind == "process":
                    continue
                elif kind == "file" and weight == 1 or kind == "interface" and "sync group" in weights_ignored:
                    item.weight = 0
                else:
                    item.dropped = f"weighted tracking is ignored for {weights_ignored}"
    return tracked


def _instance(node: Node, statement: Statement, default_version: int, sync_group: str | None) -> Instance:
    state = (statement.value("state", "BACKUP") or "BACKUP").upper()
    nopreempt = statement.has("nopreempt") and not (statement.has("preempt") and
                                                   statement.first("preempt").line > statement.first("nopreempt").line)  # type: ignore[union-attr]  # both present
    preempt_delay = node.number(statement.first("preempt_delay"), 0.0, PREEMPT_DELAY)
    priority = node.whole(statement.first("priority"), 100, PRIORITY)
    if state == "MASTER":  # keepalived clears both, with a warning
        nopreempt, preempt_delay = False, 0
    if nopreempt:
        preempt_delay = 0
    if priority == PRIO_OWNER:
        nopreempt = False
    vips: list[str] = []
    for block in statement.all("virtual_ipaddress"):
        vips.extend(child.words[0].split("/")[0] for child in block.children or [] if child.words)
    peers: list[str] = []
    for block in statement.all("unicast_peer"):
        peers.extend(child.words[0] for child in block.children or [] if child.words)
    auth_block = statement.first("authentication")
    auth = (auth_block.value("auth_type", "") or "", auth_block.value("auth_pass", "") or "") if auth_block else None
    group_weights = sync_group is not None and node.sync_groups[sync_group].has("sync_group_tracking_weight")
    if priority == PRIO_OWNER:
        weights_ignored = "the address owner (priority 255)"
    elif sync_group is not None and not group_weights:
        weights_ignored = f"sync group {sync_group} (without sync_group_tracking_weight)"
    else:
        weights_ignored = None
    tracked = _tracked_items(node, statement, weights_ignored)
    notify = {child.keyword: child for child in statement.children or []
              if child.keyword in ("notify", "notify_master", "notify_backup", "notify_fault", "notify_stop")}
    vrid = statement.first("virtual_router_id")
    return Instance(
        statement.args[0], state, statement.value("interface"), node.whole(vrid, -1, VRID) if vrid is not None else None,
        priority, node.number(statement.first("advert_int"), 1.0, ADVERT_INT),
        node.whole(statement.first("version"), default_version, VERSION),
        nopreempt, preempt_delay, vips, statement.value("unicast_src_ip"), peers, auth, tracked, notify,
        sync_group, statement)
