"""Events: parsed once from keepalived's argv, flags or FIFO lines; immutable; round-trip through JSON."""

from __future__ import annotations

import pytest

from kahooks.errors import UsageError
from kahooks.events.event import Event


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


# keepalived 2.2.7 check/ipwrapper.c:
#   notify_fifo_vs: snprintf(line, size + 1, "VS %s %s\n", vs_str, state);
#   notify_fifo_rs: snprintf(line, size + 1, "RS %s %s %s\n", rs_str, vs_str, state);
# with rs_str from lib/utils.c inet_sockaddrtotrio_r: "[%s]:%s:%d" (address, tcp/udp/sctp/none, port),
# and vs_str from check/check_data.c format_vs: the same, or "FWM %u", or "[%s]:%d" (group name, its number).
# Every form, through the real FIFO reader: tests/core/test_lvs.py.
@pytest.mark.parametrize("line, expected", [
    ("VS [192.168.201.15]:tcp:80 UP", ("VS", "[192.168.201.15]:tcp:80", "[192.168.201.15]:tcp:80", "UP", "")),
    ("VS [192.168.201.15]:tcp:80 DOWN", ("VS", "[192.168.201.15]:tcp:80", "[192.168.201.15]:tcp:80", "DOWN",
                                         "quorum lost")),
    ("RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN", ("RS", "[1.2.3.4]:tcp:80", "[192.168.201.15]:tcp:80",
                                                         "DOWN", "")),
    ("RS [2001:db8::7]:udp:53 [2001:db8::1]:udp:53 UP", ("RS", "[2001:db8::7]:udp:53", "[2001:db8::1]:udp:53",
                                                        "UP", "")),
    ("VS FWM 123 DOWN", ("VS", "FWM 123", "FWM 123", "DOWN", "quorum lost")),
    ("RS [10.0.0.1]:none:0 FWM 123 UP", ("RS", "[10.0.0.1]:none:0", "FWM 123", "UP", "")),  # fwmark DR/TUN
    ("RS [10.0.0.1]:tcp:80 FWM 123 UP", ("RS", "[10.0.0.1]:tcp:80", "FWM 123", "UP", "")),
    ("VS [web]:443 UP", ("VS", "[web]:443", "[web]:443", "UP", "")),
])
def test_lvs_lines_as_keepalived_writes_them(line: str, expected: tuple | None) -> None:
    if expected is None:
        with pytest.raises(UsageError):
            Event.from_fifo_line(line)
        return
    event = Event.from_fifo_line(line)
    assert (event.type, event.name, event.virtual_server, event.state, event.detail) == expected
    assert event.priority == 0 and event.is_lvs and event.source == "fifo"
    assert Event.from_dict(event.as_dict()) == event


@pytest.mark.parametrize("line", ["VS [192.168.201.15]:tcp:80 SIDEWAYS", "RS [1.2.3.4]:tcp:80 UP",
                                  "RS 1.2.3.4:80 [192.168.201.15]:tcp:80 UP", "VS  UP", "FWM 123 UP"])
def test_lvs_garbage(line: str) -> None:
    with pytest.raises(UsageError):
        Event.from_fifo_line(line)


def test_the_same_real_server_in_two_virtual_servers_has_two_histories() -> None:
    first = Event.from_fifo_line("RS [10.0.0.1]:tcp:80 [192.0.2.50]:tcp:80 DOWN")
    second = Event.from_fifo_line("RS [10.0.0.1]:tcp:80 [192.0.2.51]:tcp:80 DOWN")
    assert first.key != second.key and first.name == second.name


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


def test_to_json_is_json_dumps_character_for_character() -> None:
    """Event.to_json writes its JSON without the json package (start-up): byte-equal to json.dumps."""
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    texts = st.text(max_size=40)

    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(texts, texts, texts, st.integers(0, 255), st.floats(0, 4e9), texts)
    def same(name: str, detail: str, host: str, priority: int, stamp: float, topic: str) -> None:
        event = Event("ALERT", name, "ALERT", priority, stamp, host, "18eec-ab", "argv", detail, "", topic)
        assert event.to_json() == json.dumps(event.as_dict(), sort_keys=True)

    same()
    for event in (Event.from_argv(["INSTANCE", "VI_1", "MASTER", "100"]),
                  Event.lvs("RS", "[10.0.0.1]:tcp:80", "[192.0.2.50]:tcp:80", "DOWN", "fifo"),
                  Event.alert("VI \u00e9\U0001f600\t\\", "a\nb\x00c\u2028\"", "wire", topic="wire x")):
        assert event.to_json() == json.dumps(event.as_dict(), sort_keys=True)
        assert Event.from_dict(json.loads(event.to_json())) == event
