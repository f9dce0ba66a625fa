"""The doctor's model: each effective value as keepalived 2.2.7 and 2.3.3 derive it (their source, cited in
doctor/model.py). The three disagreements with real keepalived are proven in the lab (tests/lab/test_doctor.py);
these pin the rules read from the source, each against the value keepalived uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from kahooks.doctor import conf, election, readers, versions
from kahooks.doctor.model import Node, build
from kahooks.doctor.report import diagnose


def node_of(tmp_path: Path, text: str, rules: str = "2.2.7", name: str = "k.conf",
            values: dict[str, int] | None = None) -> Node:
    path = tmp_path / name
    path.write_text(text)
    return build(conf.read(str(path), "lb1"), str(path), rules, values)


def instance(body: str = "", tracks: str = "", name: str = "VI_1", vrid: int = 51, priority: str = "    priority 150\n",
             vip: str = "192.0.2.10") -> str:
    return (f"vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id {vrid}\n{priority}{body}"
            f"    virtual_ipaddress {{\n        {vip}\n    }}\n{tracks}}}\n")


SCRIPT = 'vrrp_script chk {{\n    script "/bin/true"\n{body}}}\n'


@pytest.mark.parametrize("text, low, high, result", [
    ("150", 1, 255, (True, 150, False)), ("150.5", 1, 255, (True, 150, True)), ("abc", 0, 9, (True, 0, True)),
    ("300", 1, 255, (False, 300, True)), ("-5", 0, 9, (False, 5, True)), (" 7", 0, 9, (True, 7, False)),
])
def test_unsigned_numbers_as_lib_parser_reads_them(text: str, low: int, high: int, result: tuple) -> None:
    ok, value, problem = readers.read_unsigned(text, low, high, True)
    assert (ok, abs(value), problem is not None) == result


@pytest.mark.parametrize("text, expected", [
    ("0.5", (True, 500000)), ("1", (True, 1000000)), ("0.0000015", (True, 2)), ("1e3", (True, 1)),
    ("-1", (False, 0)), ("255.0000001", (True, 255000000)),
])
def test_decimals_as_lib_parser_reads_them(text: str, expected: tuple) -> None:
    ok, value, _ = readers.read_decimal(text, 0, 255 * 10**6, 6, True)
    assert (ok, value) == expected


def test_state_master_without_priority_is_the_owner_and_drops_weighted_scripts(tmp_path: Path) -> None:
    node = node_of(tmp_path, SCRIPT.format(body="    weight -60\n")
                   + instance("    state MASTER\n", "    track_script {\n        chk\n    }\n", priority=""))
    vi = node.instances[0]
    assert (vi.priority, vi.priority_set, vi.state) == (255, False, "MASTER")
    assert vi.tracked[0].dropped.startswith("weighted tracking is ignored for the address owner")
    assert [item.code for item in node.surprises] == ["master-without-priority"]
    backup = node_of(tmp_path, instance("    state BACKUP\n", priority=""), name="b.conf").instances[0]
    lower = node_of(tmp_path, instance("    state master\n", priority=""), name="c.conf").instances[0]
    bad = node_of(tmp_path, instance("    state MASTER\n", priority="    priority 150.5\n"), name="d.conf")
    assert backup.priority == 100 and (lower.priority, lower.state) == (100, "BACKUP")  # strcmp: case matters
    assert bad.instances[0].priority == 100 and bad.bad_numbers  # read_unsigned(..., false): the default


@pytest.mark.parametrize("rules", versions.MODELLED)
def test_a_weighted_interface_in_a_sync_group_keeps_its_weight(tmp_path: Path, rules: str) -> None:
    text = (instance(tracks="    track_interface {\n        eth1 weight -30\n    }\n")
            + instance(name="VI_2", vrid=52, vip="192.0.2.11")
            + "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n")
    node = node_of(tmp_path, text, rules)
    item = node.instances[0].tracked[0]
    assert (item.kind, item.weight, item.dropped) == ("interface", -30, "")
    assert [surprise.code for surprise in node.surprises] == ["keepalived-sync-weight-applied"]
    standing = election.standings(node, frozenset({"interface:eth1"}))
    assert standing["VI_1"] == election.Standing(False, 120, ("150", "-30 eth1"))
    weighted = node_of(tmp_path, text.replace("    }\n}\n", "    }\n    sync_group_tracking_weight\n}\n"), rules, "w.conf")
    assert not weighted.surprises and weighted.instances[0].tracked[0].weight == -30


def test_other_weights_in_a_sync_group_are_dropped_or_made_fault(tmp_path: Path) -> None:
    text = (SCRIPT.format(body="    weight -30\n") + "track_file tf {\n    file /run/tf\n}\n"
            + "track_file tw {\n    file /run/tw\n    weight -10\n}\n"
            + instance(tracks="    track_script {\n        chk\n    }\n    track_file {\n        tf\n        tw\n    }\n")
            + instance(name="VI_2", vrid=52, vip="192.0.2.11")
            + "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n")
    tracked = {item.name: item for item in node_of(tmp_path, text).instances[0].tracked}
    assert tracked["chk"].dropped and tracked["tw"].dropped
    assert (tracked["tf"].weight, tracked["tf"].dropped) == (0, "")  # weight 1 is made 0: FAULT


def test_a_sync_group_tracks_for_all_its_members_with_weights_unless_one_is_the_owner(tmp_path: Path) -> None:
    group = "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n    track_script {\n        chk\n    }\n}\n"
    text = SCRIPT.format(body="    weight -60\n") + instance() + instance(name="VI_2", vrid=52, vip="192.0.2.11") + group
    node = node_of(tmp_path, text)
    assert [(item.name, item.weight, item.group) for vi in node.instances for item in vi.tracked] == \
        [("chk", -60, "G"), ("chk", -60, "G")]
    assert election.standings(node, frozenset({"script:chk"}))["VI_2"].priority == 90
    owner = node_of(tmp_path, text.replace("priority 150", "priority 255"), name="o.conf")
    assert [item.weight for item in owner.instances[1].tracked] == [0]  # sync_group_tracking_init
    assert election.standings(owner, frozenset({"script:chk"}))["VI_2"].fault


def test_vrrp_v2_rounds_advert_int_and_2_2_rounds_script_intervals(tmp_path: Path) -> None:
    text = SCRIPT.format(body="    interval 0.5\n    timeout 1.5\n    weight -60\n") + instance("    advert_int 0.5\n")
    old = node_of(tmp_path, text, "2.2.7")
    assert (old.scripts["chk"].interval, old.scripts["chk"].timeout, old.instances[0].advert_int) == (1.0, 1.0, 1.0)
    assert [item.code for item in old.surprises] == ["keepalived-timer-rounded"] * 3
    new = node_of(tmp_path, text, "2.3.3", "n.conf")
    assert (new.scripts["chk"].interval, new.scripts["chk"].timeout, new.instances[0].advert_int) == (0.5, 1.5, 1.0)
    v3 = node_of(tmp_path, text.replace("advert_int 0.5", "advert_int 0.015\n    version 3"), name="v3.conf")
    assert v3.instances[0].advert_int == 0.02 and v3.instances[0].version == 3
    assert node_of(tmp_path, instance("    advert_int 1.5\n"), name="r.conf").instances[0].advert_int == 2.0
    assert node_of(tmp_path, instance("    advert_int 0.4\n"), name="z.conf").instances[0].advert_int == 1.0


def test_failover_times_follow_the_rounded_timers(tmp_path: Path) -> None:
    """VRRPv2 advert_int 0.5 and interval 0.5: keepalived 2.2.7 runs both at 1 s (the issue's 2.7-3.5 s)."""
    body = SCRIPT.format(body="    interval 0.5\n    weight -60\n")
    track = "    track_script {\n        chk\n    }\n"
    (tmp_path / "lb1.conf").write_text(body + instance("    advert_int 0.5\n", track))
    (tmp_path / "lb2.conf").write_text(body + instance("    advert_int 0.5\n", track, priority="    priority 100\n"))
    for rules, low, high in (("2.2.7", 2.609, 4.609), ("2.3.3", 2.609, 4.109)):
        report = diagnose(str(tmp_path / "lb1.conf"), [str(tmp_path / "lb2.conf")], "lb1", False,
                          versions.asked(rules))
        mine = next(s for s in report.scenarios if s.node == str(tmp_path / "lb1.conf"))
        assert (mine.failover_min_s, mine.failover_max_s) == (low, high), rules


def test_a_preempt_delay_keeps_the_backup_accepting_adverts_until_it_ends(tmp_path: Path) -> None:
    """vrrp.c vrrp_state_backup: the adverts that come before preempt_time are accepted and restart the down
    timer; one landing on it is accepted or not (delay 2, advert_int 1: seen 6.3-6.6 s, the lab's seed 96,
    where the doctor said at most 5.6 s)."""
    body = SCRIPT.format(body="    interval 1\n    weight -60\n")
    track = "    track_script {\n        chk\n    }\n"
    (tmp_path / "lb1.conf").write_text(body + instance("", track))
    # detection 0..1 s (fall 1, interval 1); skew (256 - 100) / 256 = 0.609 s
    for delay, low, high in (("2", 4.609, 7.609), ("0.5", 3.609, 5.609), ("1", 3.609, 6.609)):
        (tmp_path / "lb2.conf").write_text(body + instance(f"    preempt_delay {delay}\n", track,
                                                           priority="    priority 100\n"))
        report = diagnose(str(tmp_path / "lb1.conf"), [str(tmp_path / "lb2.conf")], "lb1", False,
                          versions.asked("2.2.7"))
        mine = next(s for s in report.scenarios if s.node == str(tmp_path / "lb1.conf"))
        assert (mine.failover_min_s, mine.failover_max_s) == (low, high), delay


def test_script_weights_clamped_kept_or_refused_as_keepalived_does(tmp_path: Path) -> None:
    text = (SCRIPT.format(body="    weight 300\n") + instance(tracks="    track_script {\n        chk\n    }\n"))
    script_weight = node_of(tmp_path, text).instances[0].tracked[0]
    assert script_weight.weight == 300  # vrrp_vscript_weight_handler assigns it all the same
    override = node_of(tmp_path, text.replace("        chk\n", "        chk weight -254 reverse\n"), name="o.conf")
    assert (override.instances[0].tracked[0].weight, override.instances[0].tracked[0].reverse) == (-253, True)
    interface = node_of(tmp_path, instance(tracks="    track_interface {\n        eth1 weight 300\n    }\n"), name="i.conf")
    assert interface.instances[0].tracked[0].weight == 0  # alloc_track_if: an invalid weight is 0, FAULT
    own = node_of(tmp_path, instance(tracks="    track_interface {\n        eth0 weight -10\n    }\n"), name="e.conf")
    assert "own interface" in own.instances[0].tracked[0].dropped


def test_track_file_values_other_than_one(tmp_path: Path) -> None:
    text = ("track_file tf {\n    file /run/tf\n    weight -10\n    weight -20\n}\n"
            + instance(tracks="    track_file {\n        tf\n    }\n"))
    node = node_of(tmp_path, text, values={"tf": 5})
    assert node.files["tf"].weight == -10 and [item.code for item in node.surprises] == ["keepalived-weight-ignored"]
    assert election.standings(node, frozenset({"file:tf"}))["VI_1"] == election.Standing(False, 100, ("150", "-50 tf"))
    assert election.standings(node_of(tmp_path, text, values={"tf": 26}, name="f.conf"),
                              frozenset({"file:tf"}))["VI_1"].fault  # 26 x -10 <= -254: FAULT
    zero = node_of(tmp_path, text.replace("weight -10\n    weight -20", "weight 0"), values={"tf": -3}, name="z.conf")
    assert election.standings(zero, frozenset({"file:tf"}))["VI_1"].fault  # weight 0: any non-zero value


def test_track_bfd_with_its_instance_weight(tmp_path: Path) -> None:
    text = ("bfd_instance b1 {\n    neighbor_ip 192.0.2.2\n    weight -40\n}\n"
            + instance(tracks="    track_bfd {\n        b1\n    }\n"))
    node = node_of(tmp_path, text)
    assert election.standings(node, frozenset({"bfd:b1"}))["VI_1"].priority == 110
    missing = node_of(tmp_path, instance(tracks="    track_bfd {\n        nope\n    }\n"), name="m.conf")
    assert "no bfd_instance nope" in missing.instances[0].tracked[0].dropped


def test_preemption_defaults_that_depend_on_other_keywords(tmp_path: Path) -> None:
    master = node_of(tmp_path, instance("    state MASTER\n    nopreempt\n    preempt_delay 5\n")).instances[0]
    assert (master.nopreempt, master.preempt_delay) == (False, 0)
    nopreempt = node_of(tmp_path, instance("    nopreempt\n    preempt_delay 5\n"), name="n.conf").instances[0]
    assert (nopreempt.nopreempt, nopreempt.preempt_delay) == (True, 0)
    delayed = node_of(tmp_path, instance("    preempt_delay 2.5\n    down_timer_adverts 5\n"), name="d.conf").instances[0]
    assert (delayed.preempt_delay, delayed.down_timer_adverts) == (2.5, 5)
    strict = node_of(tmp_path, "global_defs {\n    vrrp_strict\n}\n" + instance("    state MASTER\n    preempt_delay 2\n"),
                     name="s.conf").instances[0]
    assert (strict.state, strict.preempt_delay) == ("BACKUP", 0)
    v3 = node_of(tmp_path, instance("    version 3\n    authentication {\n        auth_type PASS\n"
                                    "        auth_pass secret\n    }\n"), name="a.conf").instances[0]
    assert v3.auth is None  # "VRRP version 3 does not support authentication"
    v6 = node_of(tmp_path, instance(vip="fe80::1"), name="6.conf").instances[0]
    assert v6.version == 3


def _tied(src: str, peers: list[str], tracks: str = "") -> str:
    listed = "".join(f"        {peer}\n" for peer in peers)
    return (SCRIPT.format(body="    weight 0\n") if tracks else "") + instance(
        f"    unicast_src_ip {src}\n    unicast_peer {{\n{listed}    }}\n", tracks, priority="    priority 100\n")


def test_a_tie_at_start_is_undecided_not_the_higher_address(tmp_path: Path) -> None:
    # vrrp_scheduler.c vrrp_init_state: equal priorities, equal down timers: the first keepalived to start
    # wins; vrrp_state_backup accepts an equal priority, so the address never comes into it (seen in the lab:
    # the lower address kept the VIP when it started first, seed 32).
    (tmp_path / "lb1.conf").write_text(_tied("192.0.2.2", ["192.0.2.3"], "    track_script {\n        chk\n    }\n"))
    (tmp_path / "lb2.conf").write_text(_tied("192.0.2.3", ["192.0.2.2"]))
    lb1, lb2 = str(tmp_path / "lb1.conf"), str(tmp_path / "lb2.conf")
    report = diagnose(lb1, [lb2], "lb1", False, versions.asked("2.2.7"))
    tie = [item for item in report.findings if item.code == "equal-priority"]
    assert len(tie) == 1 and "starts first wins (not the higher address" in tie[0].message
    assert "never takes the VIP back" in tie[0].message
    [scenario] = [scenario.as_json() for scenario in report.scenarios]
    assert scenario["master_before"] == "undecided" and scenario["undecided_between"] == [lb1, lb2]
    # chk is weight 0: lb1 goes to FAULT. Held by lb1: it moves to lb2 after lb2's skew; by lb2: it stays.
    assert scenario["if_master_before"][lb1]["master_after_failure"] == lb2
    assert scenario["if_master_before"][lb1]["failover_max_s"] == round(1 + 156 / 256, 3)  # an interval, the skew
    assert scenario["if_master_before"][lb2]["master_after_failure"] == lb2
    assert scenario["if_master_before"][lb2]["failover_max_s"] is None
    # Both branches agree on where it ends: the common answer is given, not "undecided".
    assert scenario["master_after_failure"] == lb2 and scenario["master_after_recovery"] == lb2


def test_two_backups_tied_when_the_master_leaves_the_higher_address_stays(tmp_path: Path) -> None:
    # Both time out on the priority-0 advert's skew at once: two MASTERs, and vrrp_state_master_rx sends
    # the lower address (vrrp_saddr_cmp) back to BACKUP. lb3 has no unicast_src_ip: it is what the others
    # name in unicast_peer... with two peers each, no single one: then it cannot be told.
    tracks = "    track_script {\n        chk\n    }\n"
    (tmp_path / "lb1.conf").write_text(SCRIPT.format(body="    weight 0\n") + instance("    unicast_src_ip 192.0.2.2\n", tracks))
    (tmp_path / "lb2.conf").write_text(_tied("192.0.2.3", ["192.0.2.2", "192.0.2.4"]))
    (tmp_path / "lb3.conf").write_text(_tied("192.0.2.4", ["192.0.2.2", "192.0.2.3"]))
    lb1, lb2, lb3 = (str(tmp_path / f"lb{n}.conf") for n in (1, 2, 3))
    [scenario] = [s.as_json() for s in diagnose(lb1, [lb2, lb3], "lb1", False, versions.asked("2.2.7")).scenarios]
    assert scenario["master_before"] == lb1 and scenario["master_after_failure"] == lb3
    (tmp_path / "lb3.conf").write_text(instance("    unicast_peer {\n        192.0.2.2\n        192.0.2.3\n    }\n",
                                                priority="    priority 100\n"))
    [scenario] = [s.as_json() for s in diagnose(lb1, [lb2, lb3], "lb1", False, versions.asked("2.2.7")).scenarios]
    assert scenario["master_after_failure"] == "undecided"  # lb3's address is nowhere: never null (nobody)


def test_a_sync_group_moves_only_when_every_member_would(tmp_path: Path) -> None:
    # vrrp_sync.c vrrp_sync_can_goto_master: lb2's VI_1 would preempt when lb1's eth1 drops VI_1 to 90,
    # but its VI_2 (lb1 still 150) does not want MASTER: the group stays on lb1 (seen in the lab, seeds 8, 19).
    group = "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
    eth1 = "    track_interface {\n        eth1 weight -60\n    }\n"
    (tmp_path / "lb1.conf").write_text(group + instance(tracks=eth1) + instance(name="VI_2", vrid=52, vip="192.0.2.11"))
    (tmp_path / "lb2.conf").write_text(group + instance(priority="    priority 100\n")
                                       + instance(name="VI_2", vrid=52, vip="192.0.2.11", priority="    priority 100\n"))
    lb1, lb2 = str(tmp_path / "lb1.conf"), str(tmp_path / "lb2.conf")
    scenarios = [s.as_json() for s in diagnose(lb1, [lb2], "lb1", False, versions.asked("2.2.7")).scenarios]
    assert {(s["instance"], s["master_before"], s["master_after_failure"]) for s in scenarios} == \
        {("VI_1", lb1, lb1), ("VI_2", lb1, lb1)}
    # With lb2's VI_2 above lb1's too, both members would preempt: the whole group moves.
    (tmp_path / "lb2.conf").write_text(group + instance(priority="    priority 100\n")
                                       + instance(name="VI_2", vrid=52, vip="192.0.2.11", priority="    priority 200\n"))
    scenarios = [s.as_json() for s in diagnose(lb1, [lb2], "lb1", False, versions.asked("2.2.7")).scenarios]
    assert {(s["instance"], s["master_after_failure"]) for s in scenarios} == {("VI_1", lb2), ("VI_2", lb2)}


def test_state_master_gives_a_sync_group_no_head_start(tmp_path: Path) -> None:
    # vrrp.c vrrp_complete_init: a sync group with a member that is not an address owner starts every
    # member BACKUP, `state MASTER` or not: lb2 (254, nopreempt) times out first and keeps it (seed 75).
    group = "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
    for name, state, priority in (("lb1", "    state MASTER\n", "99"), ("lb2", "    nopreempt\n", "254")):
        (tmp_path / f"{name}.conf").write_text(
            group + instance(state, "    track_interface {\n        eth1\n    }\n", priority=f"    priority {priority}\n")
            + instance(state, name="VI_2", vrid=52, vip="192.0.2.11", priority=f"    priority {priority}\n"))
    lb1, lb2 = str(tmp_path / "lb1.conf"), str(tmp_path / "lb2.conf")
    scenarios = [s.as_json() for s in diagnose(lb1, [lb2], "lb1", False, versions.asked("2.2.7")).scenarios]
    assert scenarios and {s["master_before"] for s in scenarios} == {lb2}


def test_a_weight_0_script_can_hold_the_higher_node_back_at_start(tmp_path: Path) -> None:
    # vrrp_track.c initialise_track_script_state: a weight-0 script keeps the instance waiting for its
    # first result, then the full down timer; lb2 at 99 may time out first, and nopreempt keeps it there
    # (seen in the lab, seed 19). Without nopreempt lb1 takes it back: decided.
    chk = SCRIPT.format(body="    weight 0\n")
    tracks = "    track_script {\n        chk\n    }\n"
    (tmp_path / "lb1.conf").write_text(chk + instance("    nopreempt\n", tracks, priority="    priority 100\n"))
    (tmp_path / "lb2.conf").write_text(instance(priority="    priority 99\n"))
    lb1, lb2 = str(tmp_path / "lb1.conf"), str(tmp_path / "lb2.conf")
    [scenario] = [s.as_json() for s in diagnose(lb1, [lb2], "lb1", False, versions.asked("2.2.7")).scenarios]
    assert scenario["master_before"] == "undecided" and "first result" in scenario["undecided_why"]
    (tmp_path / "lb1.conf").write_text(chk + instance("", tracks, priority="    priority 100\n"))
    [scenario] = [s.as_json() for s in diagnose(lb1, [lb2], "lb1", False, versions.asked("2.2.7")).scenarios]
    assert scenario["master_before"] == lb1


def test_the_local_version_is_read_from_keepalived() -> None:
    assert versions.parse("Keepalived v2.2.7 (01/16,2022)\n\nCopyright") == (2, 2, 7)
    assert versions.rules_for((2, 3, 1)) == "2.3.3" and versions.rules_for((2, 1, 5)) == "2.2.7"
    assert versions.parse("nonsense") is None and versions.parse("") is None
    assert versions.local().rules in versions.MODELLED


def test_close_down_timers_at_start_race_when_the_higher_node_does_not_preempt(tmp_path: Path) -> None:
    # vrrp_scheduler.c vrrp_init_state: each keepalived starts its down timer when it starts; 99 against
    # 100 differ by 1/256 advert_int (0.8 ms with VRRPv3 advert_int 0.2), less than two starts "together"
    # are apart: lb2 at 99 may time out first, and lb1's nopreempt keeps it there (seed 83, both versions).
    v3 = "    advert_int 0.2\n    version 3\n"
    (tmp_path / "lb1.conf").write_text(instance(v3 + "    nopreempt\n", priority="    priority 100\n"))
    (tmp_path / "lb2.conf").write_text(instance(v3, priority="    priority 99\n"))
    for rules in versions.MODELLED:
        members = [election.Member(node, node.instances[0]) for node in
                   (node_of(tmp_path, (tmp_path / f"{name}.conf").read_text(), rules, f"{name}-x.conf")
                    for name in ("lb1", "lb2"))]
        state = {member: election.Standing(False, member.instance.priority, ()) for member in members}
        first = election.first_master(members, state)
        assert isinstance(first, election.Undecided) and "nopreempt" in first.why, rules
    # Without nopreempt lb1 takes it back whoever starts first: decided. Far apart (250: 0.12 s sooner), lb1 times out first.
    members[0].instance.nopreempt = False
    assert election.first_master(members, state) is members[0]
    members[0].instance.nopreempt, members[0].instance.priority = True, 250
    state = {member: election.Standing(False, member.instance.priority, ()) for member in members}
    assert election.first_master(members, state) is members[0]
