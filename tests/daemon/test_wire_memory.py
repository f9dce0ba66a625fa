"""The wire's open alerts outlive the daemon (daemon/wire_memory.py): a restarted observer clears, once it has
heard long enough to judge, each alert its predecessor left open that no longer holds, and adopts without a
second ALERT each one that still does. The file it reads is bounded and a foreign one is ignored."""

from __future__ import annotations

import json
from pathlib import Path

from kahooks.daemon import wire_memory
from kahooks.daemon.segment import KINDS, Local
from kahooks.daemon.wire_observer import Observer
from kahooks.events.event import Event
from tests.support.packets import LOCAL, PEER, advert


def observer(state: Path, recorded: list[Event], keepalived: str, locals_: list[Local] | None = None) -> Observer:
    """What the daemon's Wire builds at its start: the observer, from the alerts its previous run left open."""
    return Observer(locals_ or [LOCAL], lambda: {"VI_1": (keepalived, 100)}, recorded.append,
                    wire_memory.load(str(state), KINDS), lambda alerts: wire_memory.save(str(state), alerts))


def events(recorded: list[Event]) -> list[tuple[str, str, str]]:
    return [(event.state, event.name, event.topic) for event in recorded]


def alerted_master_gone(state: Path) -> str:
    """A first daemon alerts 'master gone' for VI_1, then dies (its alert left open): the alert's text."""
    recorded: list[Event] = []
    first = observer(state, recorded, "BACKUP")
    start = first.segment.started
    first.judge(start)
    first.judge(start + 10)
    assert events(recorded) == [("ALERT", "VI_1", "wire master_gone")]
    assert json.loads((state / wire_memory.NAME).read_text()) == \
        [{"kind": "master_gone", "instance": "VI_1", "sentence": recorded[0].detail.removeprefix("wire: ")}]
    return recorded[0].detail


def test_an_alert_left_open_by_a_restart_is_cleared_once_the_new_observer_has_judged_it_gone(tmp_path: Path) -> None:
    detail = alerted_master_gone(tmp_path)
    recorded: list[Event] = []
    second = observer(tmp_path, recorded, "MASTER")  # it took over meanwhile: the master is not gone
    start = second.segment.started
    second.segment.advert("eth0", advert(PEER, 50), False, start + 0.5)
    for moment in (start + 0.5, start + 3.0, start + 5.0):
        second.judge(moment)
    assert recorded == []  # not before every finding could have been seen again (master gone: over 4 s)
    second.judge(start + second.settle)
    assert events(recorded) == [("CLEARED", "VI_1", "wire master_gone")]
    assert recorded[0].detail == detail  # the alert's own words: the channels say what cleared
    assert json.loads((tmp_path / wire_memory.NAME).read_text()) == []
    second.judge(start + 20)
    assert len(recorded) == 1


def test_an_alert_that_still_holds_after_a_restart_is_adopted_not_raised_again(tmp_path: Path) -> None:
    alerted_master_gone(tmp_path)
    recorded: list[Event] = []
    second = observer(tmp_path, recorded, "BACKUP")  # still nobody advertises
    start = second.segment.started
    for moment in (start, start + 5.0, start + 10.0):
        second.judge(moment)
    assert [finding.kind for finding in second.findings] == ["master_gone"] and recorded == []
    second.segment.advert("eth0", advert(PEER, 150), False, start + 10.5)  # the master is back
    second.judge(start + 11)
    assert events(recorded) == [("CLEARED", "VI_1", "wire master_gone")]


def test_an_alert_of_an_instance_no_longer_configured_is_cleared_too(tmp_path: Path) -> None:
    alerted_master_gone(tmp_path)
    recorded: list[Event] = []
    other = Local("VI_2", "eth0", 52, 4, 100, 1.0, 2, frozenset({"192.0.2.101"}))
    second = observer(tmp_path, recorded, "MASTER", [other])
    second.judge(second.segment.started + second.settle)
    assert ("CLEARED", "VI_1", "wire master_gone") in events(recorded)


def test_the_file_is_bounded_and_a_foreign_one_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / wire_memory.NAME
    assert wire_memory.load(str(tmp_path), KINDS) == {}  # none yet
    for foreign in ("not json", "{}", '"x"', json.dumps([{"kind": "other", "instance": "VI_1", "sentence": "s"},
                                                         {"kind": "blocked", "instance": 3, "sentence": "s"},
                                                         {"kind": "blocked", "instance": "", "sentence": "s"}])):
        path.write_text(foreign)
        assert wire_memory.load(str(tmp_path), KINDS) == {}, foreign
    many = [{"kind": KINDS[index % len(KINDS)], "instance": f"VI_{index}", "sentence": "x" * 5000}
            for index in range(1000)]
    path.write_text(json.dumps(many))
    assert wire_memory.load(str(tmp_path), KINDS) == {}  # larger than any file save writes: ignored whole
    path.write_text(json.dumps([{**item, "sentence": "x" * 2050} for item in many[:300]]))
    loaded = wire_memory.load(str(tmp_path), KINDS)
    assert len(loaded) == wire_memory.MAX_ALERTS and {len(text) for text in loaded.values()} == {wire_memory.MAX_SENTENCE}
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text(json.dumps(many[:1]))
    assert wire_memory.load(str(tmp_path), KINDS) == {}  # a link is not followed
