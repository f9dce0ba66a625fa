"""Events: parsed once from keepalived's argv, flags or FIFO lines; immutable; round-trip through JSON."""

from __future__ import annotations

import pytest

from kahooks.errors import UsageError
from kahooks.event import Event, NotAnEvent


def test_from_argv() -> None:
    event = Event.from_argv(["INSTANCE", "VI_1", "MASTER", "100"])
    assert (event.type, event.name, event.state, event.priority, event.source) == \
        ("INSTANCE", "VI_1", "MASTER", 100, "argv")
    assert event.id and event.host and event.time > 0


@pytest.mark.parametrize("line, expected", [
    ('INSTANCE "VI_1" MASTER 100', ("INSTANCE", "VI_1", "MASTER", 100)),
    ('GROUP "VG_1" BACKUP 0', ("GROUP", "VG_1", "BACKUP", 0)),
    ('INSTANCE "VI 2" MASTER_RX_LOWER_PRI 150\n', ("INSTANCE", "VI 2", "MASTER_RX_LOWER_PRI", 150)),
    ('INSTANCE "VI_1" MASTER_PRIORITY 90', ("INSTANCE", "VI_1", "MASTER_PRIORITY", 90)),
    ('INSTANCE "VI_1" BACKUP_PRIORITY 80', ("INSTANCE", "VI_1", "BACKUP_PRIORITY", 80)),
    ('INSTANCE "VI_1" FAULT 0', ("INSTANCE", "VI_1", "FAULT", 0)),
    ('INSTANCE "VI_1" STOP 100', ("INSTANCE", "VI_1", "STOP", 100)),
])
def test_from_fifo_line(line: str, expected: tuple) -> None:
    event = Event.from_fifo_line(line)
    assert (event.type, event.name, event.state, event.priority) == expected
    assert event.source == "fifo"


@pytest.mark.parametrize("line", ["VS [192.168.201.15]:tcp:80 UP",
                                  "RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN", "FWM 123 UP"])
def test_lvs_lines_are_not_events(line: str) -> None:
    with pytest.raises(NotAnEvent):
        Event.from_fifo_line(line)


@pytest.mark.parametrize("line", ["", "garbage", 'INSTANCE VI_1 MASTER 100', 'INSTANCE "VI_1" MASTER',
                                  'INSTANCE "VI_1" LEADER 100', 'NODE "VI_1" MASTER 100',
                                  'INSTANCE "VI_1" MASTER 999', 'INSTANCE "VI_1" MASTER high',
                                  'INSTANCE "VI_1 MASTER 100'])
def test_garbage_lines(line: str) -> None:
    with pytest.raises(UsageError):
        Event.from_fifo_line(line)


@pytest.mark.parametrize("words, message", [
    (["INSTANCE", "VI_1", "MASTER"], "got 3 words"),
    (["SERVER", "VI_1", "MASTER", "100"], "not INSTANCE or GROUP"),
    (["INSTANCE", "VI_1", "PRIMARY", "100"], "state 'PRIMARY' is not one of"),
    (["INSTANCE", "VI_1", "MASTER", "-1"], "outside 0-255"),
    (["INSTANCE", "", "MASTER", "100"], "bad instance name"),
])
def test_bad_argv(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Event.from_argv(words)


def test_immutable_and_json_round_trip() -> None:
    import json

    event = Event.from_argv(["GROUP", "VG_1", "FAULT", "0"])
    with pytest.raises(AttributeError):
        event.state = "MASTER"
    assert Event.from_dict(json.loads(event.to_json())) == event


def test_ids_are_unique_and_sort_by_time() -> None:
    events = [Event.from_argv(["INSTANCE", "VI_1", "MASTER", "100"]) for _ in range(50)]
    assert len({event.id for event in events}) == 50
    assert [event.time for event in events] == sorted(event.time for event in events)
