"""A keepalived node as keepalived itself makes it from its configuration: every effective value.

Read from keepalived's source, tags v2.2.7 (Debian 12) and v2.3.3 (Debian 13); each rule names the
file:function it follows. Numbers are read by keepalived's own readers (readers.py, lib/parser.c):
digits before garbage are kept where a handler allows it, so `interval 0.5` is 0 in 2.2.7.

- vrrp_script (vrrp_parser.c vrrp_vscript_*_handler, vrrp_data.c alloc_vrrp_script): weight 0,
  interval 1 s, timeout 0 (= the interval), rise/fall 1. 2.2.7 reads interval and timeout as whole
  seconds (read_unsigned: 0.5 is 0, made 1; 1.5 is 1); 2.3.3 to the millisecond. An out-of-range
  weight is kept all the same (the handler assigns it whatever read_int says).
- track_file (trackers/track_file.c track_file_*_handler): weight 1; the first weight other than
  1 sticks ("Weight already set").
- instance (vrrp_parser.c, vrrp.c vrrp_complete_instance): no priority is 255 (the address owner)
  with `state MASTER`, else 100; a bad priority is 100. advert_int 1 s; VRRPv2 rounds it to whole
  seconds, VRRPv3 to 10 ms and at most 40.95 s. `state MASTER` clears nopreempt and preempt_delay;
  the owner clears nopreempt; nopreempt clears preempt_delay; version 3 ignores authentication.
- tracking in a sync group without sync_group_tracking_weight, or for the address owner
  (vrrp.c vrrp_complete_instance "In case of VRRP SYNC"): weighted scripts and BFDs dropped, a
  track file's weight 1 made 0 and other weights dropped, weighted interfaces made weight 0 in
  a sync group (dropped for the owner) - but keepalived added the interface with its weight
  earlier in the same function (add_vrrp_to_interface), and that copy is what acts: the weight
  still applies (both versions). Items a vrrp_sync_group tracks apply to every member with their
  weights (vrrp.c sync_group_tracking_init); a member that is the address owner makes them weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kahooks.doctor import readers
from kahooks.doctor.conf import Document, Statement

PRIO_OWNER = 255
PRIO_DEFAULT = 100
TIMER_HZ = 1_000_000  # keepalived's timers count microseconds
UINT_SECONDS = readers.UINT_MAX // TIMER_HZ  # 4294: a script's interval and timeout
DOWN_TIMER_ADVERTS = 3
VERSIONS = ("2.2.7", "2.3.3")
# Where keepalived does what no operator would want: the source the findings cite.
SOURCE = {
    "owner": "vrrp.c:vrrp_complete_instance (\"If no priority has been set, derive it from the initial state\")",
    "sync-interface": "vrrp.c:vrrp_complete_instance (add_vrrp_to_interface copies the weight before the "
                      "\"In case of VRRP SYNC\" zeroing)",
    "advert-v2": "vrrp.c:vrrp_complete_instance (\"VRRPv2 advertisement interval ... must be an integer. rounding\")",
    "advert-v3": "vrrp.c:vrrp_complete_instance (\"VRRPv3 advertisement interval ... must be in units of 10ms\")",
    "script-seconds": "vrrp_parser.c:vrrp_vscript_interval_handler/vrrp_vscript_timeout_handler "
                      "(read_unsigned_strvec: whole seconds, 0 made 1)",
    "script-weight": "vrrp_parser.c:vrrp_vscript_weight_handler (assigns the weight even when out of range)",
    "interface-weight": "vrrp_track.c:alloc_track_if (an invalid weight is 0: FAULT on failure)",
    "file-weight": "track_file.c:track_file_weight_handler (\"Weight already set\")",
}


@dataclass
class Surprise:
    """A place where keepalived does something no operator would want: a finding that says so."""

    code: str
    where: Statement
    message: str
    fix: str
    source: str  # file:function in keepalived's source


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
    failed_value: int = 1  # what the file holds while its check fails (kahooks writes 1; --file-value)


@dataclass
class Bfd:
    name: str
    weight: int
    reverse: bool
    where: Statement


@dataclass
class Tracked:
    """One item an instance tracks, with the weight that applies to it there."""

    kind: str  # script, file, interface, process, bfd
    name: str
    weight: int
    reverse: bool
    where: Statement
    dropped: str = ""  # why keepalived stops tracking it, if it does
    group: str | None = None  # tracked by this vrrp_sync_group for all its members
    value: int = 1  # a track file's value while failed


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
    down_timer_adverts: int = DOWN_TIMER_ADVERTS
    priority_set: bool = True  # False: keepalived derived it from `state`


@dataclass
class Node:
    """One keepalived.conf: the node it configures, as keepalived `rules` (a version) makes it."""

    path: str
    document: Document
    globals: Statement | None
    rules: str = VERSIONS[0]
    scripts: dict[str, Script] = field(default_factory=dict)
    files: dict[str, TrackFile] = field(default_factory=dict)
    bfds: dict[str, Bfd] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    sync_groups: dict[str, Statement] = field(default_factory=dict)
    bad_numbers: list[tuple[Statement, str]] = field(default_factory=list)  # (where, why and what keepalived does)
    surprises: list[Surprise] = field(default_factory=list)

    def note(self, statement: Statement, problem: str | None, outcome: str) -> None:
        if problem is not None:
            self.bad_numbers.append((statement, f"{statement.keyword} {problem}: keepalived {outcome}"))

    def global_has(self, keyword: str) -> bool:
        return self.globals is not None and self.globals.has(keyword)


def _word(statement: Statement, index: int = 0) -> str:
    return statement.args[index] if len(statement.args) > index else ""


def _seconds(node: Node, statement: Statement, default: float) -> float:
    """A vrrp_script interval or timeout (vrrp_parser.c vrrp_vscript_interval_handler, both versions)."""
    text = _word(statement)
    if node.rules == "2.3.3":  # read_decimal_unsigned_strvec(..., 0, (UINT_MAX / TIMER_HZ) * 1000, 3, true)
        ok, value, problem = readers.read_decimal(text, 0, UINT_SECONDS * 1000, 3, True)
        seconds = (value or 1000) / 1000
    else:  # read_unsigned_strvec(..., 0, UINT_MAX / TIMER_HZ, true): whole seconds
        ok, value, problem = readers.read_unsigned(text, 0, UINT_SECONDS, True)
        seconds = float(value or 1)
        whole, dot, fraction = text.partition(".")
        if ok and problem is not None and dot and whole.isdigit() and fraction.isdigit():
            node.surprises.append(Surprise(
                "keepalived-timer-rounded", statement,
                f"{statement.keyword} {text}: keepalived {node.rules} reads whole seconds only and runs it every "
                f"{seconds:g} s (0 is made 1); the doctor's timings use {seconds:g} s",
                f"{statement.keyword} {max(1, round(float(value or 1)))} (whole seconds), or keepalived 2.3",
                SOURCE["script-seconds"]))
            return seconds
    if not ok:
        node.note(statement, problem, f"ignores the line ({default:g} s)")
        return default
    node.note(statement, problem, f"uses {seconds:g} s")
    return seconds


def _unsigned(node: Node, statement: Statement | None, low: int, high: int, default: int, ignore: bool = True) -> int:
    if statement is None:
        return default
    ok, value, problem = readers.read_unsigned(_word(statement), low, high, ignore)
    node.note(statement, problem, f"uses {value if ok else default}")
    return value if ok else default


def _script(node: Node, statement: Statement) -> Script:
    interval: float = 1.0
    timeout: float | None = None
    weight, reverse, rise, fall = 0, False, 1, 1
    for child in statement.children or []:  # each handler in order, as keepalived calls them
        if child.keyword == "interval":
            interval = _seconds(node, child, interval)
        elif child.keyword == "timeout":
            timeout = _seconds(node, child, timeout if timeout is not None else 0.0) or None
        elif child.keyword == "weight":
            ok, weight, problem = readers.read_int(_word(child), -253, 253, True)
            if not ok and problem is not None:
                node.note(child, problem, f"uses {weight} all the same ({SOURCE['script-weight']})")
            else:
                node.note(child, problem, f"uses {weight}")
            reverse = reverse or _word(child, 1) == "reverse"
        elif child.keyword in ("rise", "fall"):
            value = _unsigned(node, child, 1, readers.INT_MAX, 1)
            rise, fall = (value, fall) if child.keyword == "rise" else (rise, value)
    user = statement.first("user")
    return Script(statement.args[0], " ".join((statement.first("script") or statement).args), interval, timeout,
                  weight, reverse, rise, fall, user.args[0] if user is not None and user.args else None, statement)


def _track_file(node: Node, statement: Statement) -> TrackFile:
    weight, reverse = 1, False
    for child in statement.all("weight"):
        if weight != 1:  # track_file_weight_handler: "Weight already set ... ignoring"
            node.surprises.append(Surprise(
                "keepalived-weight-ignored", child,
                f"track_file {statement.args[0]}: keepalived keeps the first weight ({weight}) and ignores this one",
                "one weight line", SOURCE["file-weight"]))
            continue
        ok, value, problem = readers.read_int(_word(child), -254, 254, True)
        weight = value if ok else 1
        node.note(child, problem, f"uses weight {weight}")
        reverse = reverse or _word(child, 1) == "reverse"
    return TrackFile(statement.args[0], statement.value("file"), weight, reverse, statement.has("init_file"), statement)


def _bfd(node: Node, statement: Statement) -> Bfd:
    weight, reverse = 0, False
    for child in statement.all("weight"):  # bfd_parser.c bfd_vrrp_weight_handler: a bad weight is ignored
        ok, value, problem = readers.read_int(_word(child), -253, 253, True)
        weight = value if ok else weight
        node.note(child, problem, f"uses weight {weight}")
        reverse = reverse or _word(child, 1) == "reverse"
    return Bfd(statement.args[0], weight, reverse, statement)


def build(document: Document, path: str | None = None, rules: str = VERSIONS[0],
          file_values: dict[str, int] | None = None) -> Node:
    statements = document.statements
    globals_ = next((s for s in statements if s.keyword == "global_defs"), None)
    node = Node(path or document.path, document, globals_, rules)
    default_version = 2
    for statement in globals_.all("vrrp_version") if globals_ is not None else []:
        ok, value, problem = readers.read_int(_word(statement), 2, 3, True)  # global_parser.c vrrp_version_handler
        default_version = value if ok else default_version
        node.note(statement, problem, f"uses VRRP version {default_version}")
    for statement in statements:
        if statement.keyword == "vrrp_script" and statement.args:
            node.scripts[statement.args[0]] = _script(node, statement)
        elif statement.keyword in ("track_file", "vrrp_track_file") and statement.args and statement.children is not None:
            if statement.value("file"):  # track_file_end_handler: "No file set for track_file - ignoring"
                node.files[statement.args[0]] = _track_file(node, statement)
        elif statement.keyword == "bfd_instance" and statement.args and statement.children is not None:
            node.bfds[statement.args[0]] = _bfd(node, statement)
        elif statement.keyword == "vrrp_sync_group" and statement.args:
            node.sync_groups[statement.args[0]] = statement
    for name, value in (file_values or {}).items():
        if name in node.files:
            node.files[name].failed_value = value
    names = {statement.args[0] for statement in statements if statement.keyword == "vrrp_instance" and statement.args}
    member_of: dict[str, str] = {}
    for name, group in node.sync_groups.items():
        for block in group.all("group"):
            for member in block.children or []:
                for word in member.words:  # sync.c vrrp_sync_set_group: the first group naming it wins
                    if word in names and word not in member_of:
                        member_of[word] = name
    node.sync_groups = {name: group for name, group in node.sync_groups.items() if name in member_of.values()}
    for statement in statements:
        if statement.keyword == "vrrp_instance" and statement.args:
            node.instances.append(_instance(node, statement, default_version, member_of.get(statement.args[0])))
    _sync_group_tracking(node)
    return node


TRACK_BLOCKS = (("script", "track_script"), ("file", "track_file"), ("interface", "track_interface"),
                ("process", "track_process"), ("bfd", "track_bfd"))


def _tracked_item(node: Node, kind: str, child: Statement, own_interface: str | None,
                  seen: set[tuple[str, str]]) -> Tracked:
    """One line of a track_* block, read as vrrp_track.c alloc_track_* / track_file.c vrrp_alloc_track_file do."""
    name, args = child.keyword, child.args
    defaults: dict[str, tuple[int, bool]] = {"interface": (0, False), "process": (0, False)}
    known: dict[str, Script] | dict[str, TrackFile] | dict[str, Bfd] | None = \
        {"script": node.scripts, "file": node.files, "bfd": node.bfds}.get(kind)  # type: ignore[assignment]  # by kind
    if known is not None:
        if name not in known:
            label = {"script": "vrrp_script", "file": "track_file", "bfd": "bfd_instance"}[kind]
            return Tracked(kind, name, 0, False, child, f"no {label} {name} is defined")
        defaults[kind] = (known[name].weight, known[name].reverse)
    weight, reverse = defaults[kind]
    item = Tracked(kind, name, weight, reverse, child)
    if kind == "file":
        item.value = node.files[name].failed_value
    if (kind, name) in seen:
        item.dropped = f"a duplicate {kind} {name}: keepalived ignores the second"
        return item
    seen.add((kind, name))
    if kind == "interface" and own_interface is not None and name == own_interface:
        item.dropped = "it is the instance's own interface, which keepalived tracks anyway (weight 0: FAULT)"
        return item
    if not args:
        return item
    if args[0] != "weight" or len(args) == 1:
        why = "weight without a value" if args[0] == "weight" else f"unknown option {args[0]}"
        item.dropped = f"keepalived ignores the line ({why})"
        return item
    limit = 253 if kind == "bfd" else 254
    ok, value, problem = readers.read_int(args[1], -limit, limit, True)
    fallback = 0 if kind == "interface" else weight  # alloc_track_if: an invalid weight is 0
    item.weight = value if ok else fallback
    if kind in ("script", "interface") and abs(item.weight) == 254:  # "cannot be +/-254. Setting to +/-253"
        item.weight = 253 if item.weight > 0 else -253
        problem = problem or f"{args[1]!r}: +/-254 is not allowed"
    if problem is not None:
        node.bad_numbers.append((child, f"{name} weight {problem}: keepalived uses weight {item.weight}"
                                 + (f" ({SOURCE['interface-weight']})" if kind == "interface" and not ok else "")))
    if len(args) >= 3:
        if args[2] in ("reverse", "noreverse") and (args[2] == "reverse" or kind != "interface"):
            item.reverse = args[2] == "reverse"
        elif kind == "file":  # vrrp_alloc_track_file: an unknown option drops the line
            item.dropped = f"keepalived ignores the line (unknown option {args[2]})"
    return item


def _tracked_items(node: Node, statement: Statement, own_interface: str | None) -> list[Tracked]:
    tracked: list[Tracked] = []
    seen: set[tuple[str, str]] = set()
    for kind, keyword in TRACK_BLOCKS:
        for block in statement.all(keyword):
            tracked.extend(_tracked_item(node, kind, child, own_interface, seen) for child in block.children or [])
    return tracked


def _ignore_weights(node: Node, instance_name: str, tracked: list[Tracked], why: str, sync: bool) -> None:
    """vrrp.c vrrp_complete_instance, "In case of VRRP SYNC ... If address owner, then we must totally ignore weights"."""
    for item in tracked:
        if item.dropped or not item.weight or item.kind == "process":
            continue
        if item.kind == "file" and item.weight == 1:
            item.weight = 0  # "ignoring weight from tracked file ... specify weight 0"
        elif item.kind == "interface" and sync:
            # keepalived logs "ignoring ... weight" and sets the weight 0, but add_vrrp_to_interface already
            # copied it to the interface's tracking list, which is what acts on a change: the weight applies.
            node.surprises.append(Surprise(
                "keepalived-sync-weight-applied", item.where,
                f"{instance_name}: keepalived says it ignores track_interface {item.name}'s weight {item.weight} in "
                f"{why}, and applies it all the same (2.2.7 and 2.3.3): the interface failing changes the "
                f"priority by {item.weight}, it does not cause a FAULT",
                "weight 0 (FAULT on failure, for the whole group), or `sync_group_tracking_weight` in the sync "
                "group to say the weight is meant", SOURCE["sync-interface"]))
        else:
            item.dropped = f"weighted tracking is ignored for {why}"


def _instance(node: Node, statement: Statement, default_version: int, sync_group: str | None) -> Instance:
    name = statement.args[0]
    state = "INIT"
    priority: int | None = None
    advert_us = 0
    version: int | None = None
    nopreempt = False
    preempt_delay_us = 0
    down_timer_adverts = DOWN_TIMER_ADVERTS
    strict = node.global_has("vrrp_strict")
    for child in statement.children or []:  # the handlers in order (vrrp_parser.c)
        keyword, word = child.keyword, _word(child)
        if keyword == "state":  # vrrp_state_handler: case matters; BACKUP after MASTER is ignored
            state = "MASTER" if word == "MASTER" else (state if state == "MASTER" else "BACKUP")
        elif keyword == "priority":  # vrrp_prio_handler: a bad priority is the default, 100
            ok, value, problem = readers.read_unsigned(word, 1, PRIO_OWNER, False)
            priority = value if ok else PRIO_DEFAULT
            node.note(child, problem, f"uses priority {priority}")
        elif keyword == "advert_int":  # vrrp_adv_handler: read_decimal_unsigned_strvec(TIMER_HZ/100, 255 * TIMER_HZ)
            ok, value, problem = readers.read_decimal(word, TIMER_HZ // 100, 255 * TIMER_HZ, 6, True)
            advert_us = value if ok and value > 0 else advert_us
            node.note(child, problem, f"uses {advert_us / TIMER_HZ if advert_us else 1:g} s" if ok else "ignores the line")
        elif keyword == "version":  # vrrp_version_handler: a conflicting second version is ignored
            ok, value, problem = readers.read_int(word, 2, 3, True)
            version = value if ok and version is None else version
            node.note(child, problem, "ignores the line" if not ok else f"uses version {value}")
        elif keyword == "nopreempt":
            nopreempt = True
        elif keyword == "preempt":
            nopreempt = False
        elif keyword == "preempt_delay":  # vrrp_preempt_delay_handler: a bad one is 0
            ok, value, problem = readers.read_decimal(word, 0, 1000 * TIMER_HZ, 6, True)
            preempt_delay_us = value if ok else 0
            node.note(child, problem, f"uses {preempt_delay_us / TIMER_HZ:g} s")
        elif keyword == "down_timer_adverts":
            down_timer_adverts = _unsigned(node, child, 1, 100, down_timer_adverts)
        elif keyword == "strict_mode":
            strict = word not in ("false", "off", "no", "0") if word else True
    vips: list[str] = []
    for block in statement.all("virtual_ipaddress"):
        vips.extend(child.words[0].split("/")[0] for child in block.children or [] if child.words)
    if version is None:  # vrrp_complete_instance: IPv6 is version 3, else the global vrrp_version
        version = 3 if vips and ":" in vips[0] else default_version
    priority_set = priority is not None
    if priority is None:  # vrrp_complete_instance: "If no priority has been set, derive it from the initial state"
        priority = PRIO_OWNER if state == "MASTER" else PRIO_DEFAULT
    if state == "INIT" or strict and (state == "MASTER") != (priority == PRIO_OWNER):
        state = "MASTER" if priority == PRIO_OWNER else "BACKUP"
    advert_int = _advert_int(node, statement, advert_us or TIMER_HZ, version)
    if priority == PRIO_OWNER:
        nopreempt = False  # "nopreempt is incompatible with priority 255"
    if state == "MASTER":
        nopreempt, preempt_delay_us = False, 0  # "will not work with initial state MASTER - clearing"
    if strict or nopreempt:
        preempt_delay_us = 0
    if strict:
        down_timer_adverts = DOWN_TIMER_ADVERTS
    peers: list[str] = []
    for block in statement.all("unicast_peer"):
        peers.extend(child.words[0] for child in block.children or [] if child.words)
    auth_block = statement.first("authentication")
    auth = (auth_block.value("auth_type", "") or "", auth_block.value("auth_pass", "") or "") if auth_block else None
    if auth is not None and (version == 3 or strict or not auth[1]):
        auth = None  # "VRRP version 3 does not support authentication", strict mode, no password: ignored
    interface = statement.value("interface")
    tracked = _tracked_items(node, statement, interface)
    group_weights = sync_group is not None and any(
        node.sync_groups[sync_group].has(keyword) for keyword in ("sync_group_tracking_weight", "global_tracking"))
    if sync_group is not None and not group_weights:
        _ignore_weights(node, name, tracked, f"sync group {sync_group} (without sync_group_tracking_weight)", True)
    elif priority == PRIO_OWNER:
        _ignore_weights(node, name, tracked, "the address owner (priority 255)", False)
    if priority == PRIO_OWNER and not priority_set and state == "MASTER":
        weighted = [item for item in tracked if item.dropped.startswith("weighted")]
        node.surprises.append(Surprise(
            "master-without-priority", statement.first("state") or statement,
            f"{name}: state MASTER without a priority line runs at priority 255, the address owner: it keeps "
            f"the VIP whatever happens short of a FAULT"
            + (f", and its weighted {', '.join(item.name for item in weighted)} cannot move it" if weighted else ""),
            "give it a priority (for example 150) below 255", SOURCE["owner"]))
    notify = {child.keyword: child for child in statement.children or []
              if child.keyword in ("notify", "notify_master", "notify_backup", "notify_fault", "notify_stop")}
    vrid = None
    for child in statement.all("virtual_router_id"):
        ok, value, problem = readers.read_unsigned(_word(child), 1, 255, False)
        vrid = value if ok else vrid
        node.note(child, problem, "ignores the line")
    return Instance(name, state, interface, vrid if vrid is not None else (-1 if statement.has("virtual_router_id") else None),
                    priority, advert_int, version, nopreempt, preempt_delay_us / TIMER_HZ, vips,
                    statement.value("unicast_src_ip"), peers, auth, tracked, notify, sync_group, statement,
                    down_timer_adverts, priority_set)


def _advert_int(node: Node, statement: Statement, advert_us: int, version: int) -> float:
    """vrrp.c vrrp_complete_instance, "Check that the advertisement interval is valid"."""
    where = statement.first("advert_int") or statement
    given = advert_us
    if version == 2:
        if advert_us >= 256 * TIMER_HZ:
            advert_us = 255 * TIMER_HZ
        elif advert_us % TIMER_HZ:
            advert_us = (advert_us + TIMER_HZ // 2) // TIMER_HZ * TIMER_HZ or TIMER_HZ
        source = SOURCE["advert-v2"]
    else:
        centi = TIMER_HZ // 100
        if advert_us >= 4096 * centi:
            advert_us = 4095 * centi
        elif advert_us % centi:
            advert_us = (advert_us + centi // 2) // centi * centi or centi
            if node.rules == "2.3.3" and advert_us == 4096 * centi:  # "Ensure don't round outside [0.01,40.95]"
                advert_us = 4095 * centi
        source = SOURCE["advert-v3"]
    if advert_us != given:
        node.surprises.append(Surprise(
            "keepalived-timer-rounded", where,
            f"{statement.args[0]}: advert_int {given / TIMER_HZ:g} is {advert_us / TIMER_HZ:g} s for VRRPv{version}: "
            f"keepalived rounds it (adverts, the down timer and failover all follow)",
            "advert_int in whole seconds for VRRPv2, or `version 3` for fractions (10 ms steps)", source))
    return advert_us / TIMER_HZ


def _sync_group_tracking(node: Node) -> None:
    """vrrp.c sync_group_tracking_init: a sync group's own track_* apply to each member, with their weights,
    unless a member is the address owner (then weight 0)."""
    for name, group in node.sync_groups.items():
        members = [instance for instance in node.instances if instance.sync_group == name]
        has_owner = any(instance.priority == PRIO_OWNER for instance in members)
        items = _tracked_items(node, group, None)
        for item in items:
            item.group = name
            if has_owner and item.weight and not item.dropped:
                item.weight = 0
        for instance in members:
            instance.tracked.extend(Tracked(item.kind, item.name, item.weight, item.reverse, item.where,
                                            item.dropped, name, item.value) for item in items)
