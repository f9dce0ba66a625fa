"""Every LVS line keepalived 2.2.7 and 2.3.3 can write, read through the real FIFO reader; addresses checked.

The forms, and where keepalived makes them, are in kahooks/events/lvs.py's docstring (check/ipwrapper.c
notify_fifo_vs/_rs, check/check_data.c format_vs/format_rs and validate_check_config, lib/utils.c
inet_sockaddrtotrio_r). Each line goes into a real FIFO, written the way keepalived writes it (one
write per line, non-blocking), and comes out of kahooks.notify.fifo.serve_fifo and kahooks.events.event.fifo_event: the
path `ka-notify fifo` and `kahooks serve` take.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kahooks.errors import UsageError
from kahooks.events.event import Event
from kahooks.events.event import fifo_event as event_from_line
from kahooks.events.lvs import key
from kahooks.lab.netns import wait_for
from kahooks.notify.fifo import serve_fifo
from tests.support.programs import run

# (line, its event: name, virtual_server, state, and the keys rules match the two servers on)
FORMS = [
    # An address virtual server, IPv4, each protocol keepalived knows (proto_handler: TCP, UDP, SCTP).
    ("VS [192.0.2.50]:tcp:80 UP", ("VS", "[192.0.2.50]:tcp:80", "[192.0.2.50]:tcp:80", "UP", "192.0.2.50:80")),
    ("VS [192.0.2.50]:udp:53 DOWN", ("VS", "[192.0.2.50]:udp:53", "[192.0.2.50]:udp:53", "DOWN", "192.0.2.50:53")),
    ("VS [192.0.2.50]:sctp:3868 UP", ("VS", "[192.0.2.50]:sctp:3868", "[192.0.2.50]:sctp:3868", "UP",
                                      "192.0.2.50:3868")),
    # Its real servers (the port the virtual server's when none or another was given: check_data.c 1319-1323).
    ("RS [10.0.0.11]:tcp:80 [192.0.2.50]:tcp:80 DOWN",
     ("RS", "[10.0.0.11]:tcp:80", "[192.0.2.50]:tcp:80", "DOWN", "10.0.0.11:80", "192.0.2.50:80")),
    ("RS [10.0.0.11]:udp:53 [192.0.2.50]:udp:53 UP",
     ("RS", "[10.0.0.11]:udp:53", "[192.0.2.50]:udp:53", "UP", "10.0.0.11:53", "192.0.2.50:53")),
    ("RS [10.0.0.11]:sctp:3868 [192.0.2.50]:sctp:3868 UP",
     ("RS", "[10.0.0.11]:sctp:3868", "[192.0.2.50]:sctp:3868", "UP", "10.0.0.11:3868", "192.0.2.50:3868")),
    # NAT to another port.
    ("RS [10.0.0.12]:tcp:8080 [192.0.2.50]:tcp:80 UP",
     ("RS", "[10.0.0.12]:tcp:8080", "[192.0.2.50]:tcp:80", "UP", "10.0.0.12:8080", "192.0.2.50:80")),
    # IPv6, and IPv4 real servers of an IPv6 virtual server (tunnelling).
    ("VS [2001:db8::1]:tcp:443 DOWN", ("VS", "[2001:db8::1]:tcp:443", "[2001:db8::1]:tcp:443", "DOWN",
                                       "[2001:db8::1]:443")),
    ("RS [2001:db8::7]:tcp:443 [2001:db8::1]:tcp:443 DOWN",
     ("RS", "[2001:db8::7]:tcp:443", "[2001:db8::1]:tcp:443", "DOWN", "[2001:db8::7]:443", "[2001:db8::1]:443")),
    ("RS [10.0.0.13]:udp:53 [2001:db8::1]:udp:53 UP",
     ("RS", "[10.0.0.13]:udp:53", "[2001:db8::1]:udp:53", "UP", "10.0.0.13:53", "[2001:db8::1]:53")),
    ("RS [::ffff:10.0.0.14]:tcp:80 [2001:db8::1]:tcp:80 UP",
     ("RS", "[::ffff:10.0.0.14]:tcp:80", "[2001:db8::1]:tcp:80", "UP", "[::ffff:10.0.0.14]:80", "[2001:db8::1]:80")),
    # A persistent virtual server on port 0 (every port), and its real servers taking port 0.
    ("VS [192.0.2.51]:tcp:0 UP", ("VS", "[192.0.2.51]:tcp:0", "[192.0.2.51]:tcp:0", "UP", "192.0.2.51:0")),
    ("RS [10.0.0.15]:tcp:0 [192.0.2.51]:tcp:0 DOWN",
     ("RS", "[10.0.0.15]:tcp:0", "[192.0.2.51]:tcp:0", "DOWN", "10.0.0.15:0", "192.0.2.51:0")),
    # fwmark: the quorum lines, DR/TUN real servers (port cleared, protocol none), NAT (port kept), IPv6.
    ("VS FWM 7 DOWN", ("VS", "FWM 7", "FWM 7", "DOWN", "FWM 7")),
    ("VS FWM 4294967295 UP", ("VS", "FWM 4294967295", "FWM 4294967295", "UP", "FWM 4294967295")),
    ("RS [10.0.0.21]:none:0 FWM 7 DOWN", ("RS", "[10.0.0.21]:none:0", "FWM 7", "DOWN", "10.0.0.21:0", "FWM 7")),
    ("RS [10.0.0.21]:none:0 FWM 7 UP", ("RS", "[10.0.0.21]:none:0", "FWM 7", "UP", "10.0.0.21:0", "FWM 7")),
    ("RS [10.0.0.23]:none:8080 FWM 8 UP", ("RS", "[10.0.0.23]:none:8080", "FWM 8", "UP", "10.0.0.23:8080", "FWM 8")),
    ("RS [2001:db8::21]:none:0 FWM 9 DOWN",
     ("RS", "[2001:db8::21]:none:0", "FWM 9", "DOWN", "[2001:db8::21]:0", "FWM 9")),
    # virtual_server group NAME: `[NAME]:N`, N the virtual server's number in the group (ipwrapper.c 1262-1275).
    ("VS [web]:0 UP", ("VS", "[web]:0", "[web]:0", "UP", "web:0")),
    ("VS [web]:1 DOWN", ("VS", "[web]:1", "[web]:1", "DOWN", "web:1")),
    ("RS [10.0.0.31]:tcp:80 [web]:0 DOWN", ("RS", "[10.0.0.31]:tcp:80", "[web]:0", "DOWN", "10.0.0.31:80", "web:0")),
    # A group of fwmarks only: protocol none, the real server's port kept as given (warned, not cleared).
    ("RS [10.0.0.32]:none:80 [marks]:0 UP",
     ("RS", "[10.0.0.32]:none:80", "[marks]:0", "UP", "10.0.0.32:80", "marks:0")),
    ("RS [10.0.0.33]:none:0 [marks]:0 UP", ("RS", "[10.0.0.33]:none:0", "[marks]:0", "UP", "10.0.0.33:0", "marks:0")),
    # A group's name is any word keepalived reads, a quoted one with a blank included.
    ("VS [web pool]:0 DOWN", ("VS", "[web pool]:0", "[web pool]:0", "DOWN", "web pool:0")),
    ("RS [10.0.0.34]:tcp:80 [web pool]:2 UP",
     ("RS", "[10.0.0.34]:tcp:80", "[web pool]:2", "UP", "10.0.0.34:80", "web pool:2")),
    # 2.3.3's `virtual_server fwmark 0`: an address never set, shown as (none) (lib/utils.c 699-701).
    ("VS [(none)]:udp:0 DOWN", ("VS", "[(none)]:udp:0", "[(none)]:udp:0", "DOWN", "(none):0")),
    ("RS [10.0.0.35]:udp:0 [(none)]:udp:0 UP",
     ("RS", "[10.0.0.35]:udp:0", "[(none)]:udp:0", "UP", "10.0.0.35:0", "(none):0")),
]

NOT_KEEPALIVES = [
    "RS [10.0.0.300]:tcp:80 [192.0.2.50]:tcp:80 UP",  # no inet_ntop writes that
    "RS [10.0.0.1]:tcp:65536 [192.0.2.50]:tcp:80 UP",
    "RS [10.0.0.1]:?:80 [192.0.2.50]:tcp:80 UP",  # proto_handler never sets another protocol
    "RS [web]:0 [192.0.2.50]:tcp:80 UP",  # a real server is an address
    "VS FWM 0 UP",  # format_vs writes FWM only for a mark that is set
    "VS [10.0.0.300]:0 UP",  # named like an address: not supported as a group (kahooks/events/lvs.py)
    "RS [10.0.0.1]:tcp:80 UP",
    "VS [192.0.2.50]:tcp:80 SIDEWAYS",
    "VS UP",
]


def _through_the_fifo(tmp_path: Path, lines: list[str]) -> list[Event | None]:
    """Each line written to a real FIFO as keepalived writes it, read back by serve_fifo."""
    path = tmp_path / "lvs.fifo"
    os.mkfifo(path)
    events: list[Event | None] = []
    stop = threading.Event()
    reader = threading.Thread(target=serve_fifo, args=(str(path), lambda line: events.append(event_from_line(line)),
                                                       stop, 0.1), daemon=True)
    reader.start()
    writer = wait_for(lambda: _open_writer(path), 10, "the reader to open the FIFO")
    try:
        for line in lines:
            os.write(writer, f"{line}\n".encode())  # keepalived: one write() a line, errors ignored
        wait_for(lambda: len(events) == len(lines) or None, 10, "every line read")
    finally:
        os.close(writer)
        stop.set()
        reader.join(5)
    assert not reader.is_alive()
    return events


def _open_writer(path: Path) -> int | None:
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: the reader has not opened its end yet
        return None


def test_every_line_form_keepalived_writes_arrives_as_its_event(tmp_path: Path) -> None:
    events = _through_the_fifo(tmp_path, [line for line, _ in FORMS] + NOT_KEEPALIVES)
    for (line, expected), event in zip(FORMS, events):
        assert event is not None, line
        kind, name, virtual, state, *keys = expected
        assert (event.type, event.name, event.virtual_server, event.state) == (kind, name, virtual, state), line
        assert [key(event.name)] + ([key(event.virtual_server)] if kind == "RS" else []) == keys, line
        assert event.is_lvs and event.source == "fifo" and Event.from_dict(event.as_dict()) == event
    assert events[len(FORMS):] == [None] * len(NOT_KEEPALIVES)


@pytest.mark.parametrize("text, wanted", [
    ("10.0.0.1:80", "10.0.0.1:80"), ("[2001:DB8::1]:80", "[2001:db8::1]:80"), ("tcp:10.0.0.1:80", "10.0.0.1:80"),
    ("fwmark 7", "FWM 7"), ("FWM  7", "FWM 7"), ("web:0", "web:0"), ("[web]:3", "web:3"), ("10.0.0.21:0", "10.0.0.21:0"),
    # An IPv4-mapped address has one key on every Python (3.11 would print ::ffff:a00:e, 3.13 dotted).
    ("[::ffff:a00:e]:80", "[::ffff:10.0.0.14]:80"), ("[::FFFF:10.0.0.14]:80", "[::ffff:10.0.0.14]:80"),
])
def test_people_write_servers_as_keys(text: str, wanted: str) -> None:
    assert key(text) == wanted


@pytest.mark.parametrize("text, message", [
    ("10.0.0.999:80", "'10.0.0.999' is not a valid IPv4 address"),
    ("10.0.0.300:80", "'10.0.0.300' is not a valid IPv4 address"),  # it was taken for a group's name
    ("10.0.0:80", "'10.0.0' is not a valid IPv4 address"),
    ("[10.0.0.300]:80", "'10.0.0.300' is not a valid IPv4 address"),
    ("[2001:db8::g]:80", "'2001:db8::g' is not a valid IPv6 address"),
    ("[2001:db8::1:80", "is not a server"),
    ("10.0.0.1:65536", "port 65536 is above 65535"),
    ("fwmark 0", "a firewall mark is 1 to 4294967295"),
    ("fwmark 4294967296", "a firewall mark is 1 to 4294967295"),
    ("10.0.0.1", "is not a server"),
])
def test_an_invalid_address_is_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(")):
        key(text)


@pytest.mark.parametrize("argv, message", [
    (["--real-server", "10.0.0.999:80", "--virtual-server", "192.0.2.50:80"], "'10.0.0.999' is not a valid IPv4"),
    (["--real-server", "10.0.0.1:80", "--virtual-server", "10.0.0.300:80"], "'10.0.0.300' is not a valid IPv4"),
])
def test_ka_notify_refuses_an_invalid_address_in_one_line_with_exit_2(tmp_path: Path, argv: list[str],
                                                                     message: str) -> None:
    config = tmp_path / "kahooks.toml"
    config.write_text(f'spool_dir = "{tmp_path / "spool"}"\n')
    outcome = run("ka-notify", "-c", str(config), *argv, "--state", "DOWN")
    assert outcome.code == 2 and outcome.stderr.count("\n") == 1 and message in outcome.stderr, outcome
    assert "Traceback" not in outcome.stderr and not list((tmp_path / "spool").glob("incoming/*")), outcome
