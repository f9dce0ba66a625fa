"""daemon/segment.py: each finding from what the wire says, with the time it takes; and the picture's bounds."""

from __future__ import annotations

import random

from kahooks.daemon.segment import AGE, ARP_MACS, FOREIGN_KEYS, SOURCES, Local, Segment
from kahooks.system.vrrp_wire import Advert, Arp
from tests.support.packets import HERE, LOCAL, PEER, VIP, advert


def segment(local: Local = LOCAL, state: str = "MASTER") -> Segment:
    seen = Segment([local], started=0.0)
    seen.addresses = {HERE}
    seen.macs = {"02:00:00:00:00:12"}
    seen.states = {"VI_1": (state, 100)} if state else {}
    return seen


def run(seen: Segment, seconds: float, *packets: tuple[Advert, bool], step: float = 1.0,
        start: float = 0.0) -> dict[str, float]:
    """Every `step` s from `start`, each advert once, judging every 0.1 s: kind -> when first found."""
    first: dict[str, float] = {}
    now = start
    while now < start + seconds:
        if round((now - start) / step, 3) % 1 == 0:
            for packet, outgoing in packets:
                seen.advert("eth0", packet, outgoing, now)
        for finding in seen.findings(now):
            first.setdefault(finding.kind, now)
        now = round(now + 0.1, 3)
    return first


def test_a_normal_pair_has_no_finding() -> None:
    assert run(segment(), 20, (advert(HERE, 100), True)) == {}  # we are MASTER, the peer is BACKUP (silent)
    assert run(segment(state="BACKUP"), 20, (advert(PEER, 150), False)) == {}


def test_blocked_when_a_higher_peer_is_heard_while_we_are_master_within_three_intervals() -> None:
    seen = segment()
    first = run(seen, 10, (advert(PEER, 150), False), (advert(HERE, 100), True))
    assert first["blocked"] <= 3.0
    assert "192.0.2.11 at priority 150 (ours 100)" in next(f for f in seen.findings(9.9) if f.kind == "blocked").sentence
    # and two masters advertise: past 3 intervals and the skew
    assert 3.0 < first["two_masters"] <= 5.0


def test_an_equal_priority_peer_blocks_only_with_the_higher_address() -> None:
    assert "blocked" in run(segment(), 6, (advert("192.0.2.13", 100), False), (advert(HERE, 100), True))
    assert "blocked" not in run(segment(), 6, (advert("192.0.2.5", 100), False), (advert(HERE, 100), True))


def test_a_lower_peer_preempted_at_once_is_not_a_finding() -> None:
    seen = segment()
    run(seen, 1.5, (advert(PEER, 50), False), (advert(HERE, 100), True))  # the peer steps down after one advert
    assert run(seen, 10, (advert(HERE, 100), True), start=1.5) == {}


def test_vrid_collision_by_address_set_and_by_unicast_peer_list() -> None:
    seen = segment(state="BACKUP")
    first = run(seen, 3, (advert("192.0.2.50", 200, addresses=("198.51.100.1",)), False))
    assert "collision" in first and "blocked" not in first
    sentence = next(f for f in seen.findings(2.9) if f.kind == "collision").sentence
    assert "192.0.2.50 advertises our VRID with addresses 198.51.100.1, ours are 192.0.2.100" in sentence
    unicast = Local("VI_1", "eth0", 51, 4, 100, 1.0, 2, frozenset({VIP}), HERE, frozenset({PEER}), "PASS")
    assert "collision" not in run(segment(unicast, "BACKUP"), 3, (advert(PEER, 150), False))
    assert "collision" in run(segment(unicast, "BACKUP"), 3, (advert("192.0.2.77", 150), False))


def test_mismatch_of_interval_version_and_auth_type_explains_a_both_master() -> None:
    seen = segment()
    first = run(seen, 8, (advert(PEER, 150, interval=2), False), (advert(HERE, 100), True), step=1)
    assert "mismatch" in first and "blocked" not in first  # keepalived itself drops those adverts
    assert "sends an advert every 2 s, here 1 s" in next(f for f in seen.findings(7.9) if f.kind == "mismatch").sentence
    v3 = run(segment(state="BACKUP"), 3, (advert(PEER, 150, version=3, auth=None), False))
    assert "mismatch" in v3
    auth = segment(state="BACKUP")
    run(auth, 3, (advert(PEER, 150, auth=0), False))
    assert "auth_type none, here PASS" in next(f for f in auth.findings(2.9) if f.kind == "mismatch").sentence


def test_master_gone_after_the_master_down_interval_with_nobody_advertising() -> None:
    seen = segment(state="BACKUP")
    run(seen, 5, (advert(PEER, 150), False))
    first = run(seen, 10, start=5)
    # last advert at 4.0; master-down = 3 * 1 + (256 - 100) / 256 = 3.61 s, and one interval for
    # keepalived's own MASTER line to reach us
    assert 8.6 <= first["master_gone"] <= 8.8
    assert "no advert for" in next(f for f in seen.findings(14) if f.kind == "master_gone").sentence
    assert run(seen, 2, (advert(PEER, 150), False), start=15) == {}  # it clears when adverts come back


def test_master_gone_counts_from_when_keepalived_here_became_backup_not_from_a_fault() -> None:
    """A lone node leaving FAULT waits one master-down interval as BACKUP, then is MASTER: no finding.
    One that stays BACKUP past it (its keepalived wedged) is reported, timed from the BACKUP."""
    seen = segment(state="FAULT")
    assert run(seen, 20) == {}  # nobody advertises while this node is FAULT: its own check says why
    seen.states = {"VI_1": ("BACKUP", 100)}
    assert run(seen, 3.6, start=20) == {}
    seen.states = {"VI_1": ("MASTER", 100)}
    assert run(seen, 10, (advert(HERE, 100), True), start=23.6) == {}
    wedged = segment(state="FAULT")
    run(wedged, 20)
    wedged.states = {"VI_1": ("BACKUP", 100)}
    assert 24.6 <= run(wedged, 10, start=20)["master_gone"] <= 24.8
    assert "no advert since the observer started" in wedged.findings(30)[0].sentence


def test_no_master_gone_on_an_interface_the_observer_cannot_hear() -> None:
    """A missing or refused interface hears nothing: its silence is no finding (the interface's state says why)."""
    deaf = segment(state="BACKUP")
    deaf.deaf = {"eth0"}
    assert run(deaf, 20) == {}
    deaf.deaf = set()  # listening again: the silence counts from now
    assert 24.6 <= run(deaf, 10, start=20)["master_gone"] <= 24.8


def test_duplicate_vip_from_another_mac_only_while_we_hold_it() -> None:
    seen = segment()
    seen.arp("eth0", Arp(1, "02:00:00:00:00:99", VIP, "00:00:00:00:00:00", "192.0.2.1"), 1.0)
    assert not [f for f in seen.findings(1.1) if f.kind == "duplicate_vip"]  # not held here
    seen.addresses.add(VIP)
    found = [f for f in seen.findings(1.2) if f.kind == "duplicate_vip"]
    assert found and "02:00:00:00:00:99 claims it too" in found[0].sentence
    seen.arp("eth0", Arp(2, "02:00:00:00:00:12", VIP, "00:00:00:00:00:00", "192.0.2.1"), 1.3)  # our own MAC
    assert not [f for f in seen.findings(12.0) if f.kind == "duplicate_vip"]  # aged past ARP_FRESH


def test_a_flood_of_forged_vrids_sources_and_macs_stays_bounded_and_keeps_the_real_peer() -> None:
    seen = segment(state="BACKUP")
    rng = random.Random(5)
    now = 0.0
    for index in range(20000):
        now = index * 0.0001
        if index % 2000 == 0:
            seen.advert("eth0", advert(PEER, 150), False, now)  # the real peer, every 0.2 s here
        forged = advert(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}", rng.randrange(1, 255),
                        vrid=51 if index % 2 else rng.randrange(1, 256))  # half of them on our VRID
        seen.advert("eth0", forged, False, now)
        seen.arp("eth0", Arp(2, f"02:00:00:{index % 256:02x}:{index // 256 % 256:02x}:00", VIP, "00:" * 5 + "00",
                             "192.0.2.1"), now)
    assert len(seen.adverts) <= FOREIGN_KEYS + 1
    assert all(len(sources) <= SOURCES for sources in seen.adverts.values())
    assert PEER in seen.adverts[("eth0", 4, 51)]
    assert all(len(macs) <= ARP_MACS for macs in seen.arps.values())
    seen.expire(now + AGE + 1)
    assert seen.adverts == {} and seen.arps == {}
