"""[[rules]] pick channels by what an event is about: VRRP instances, or LVS virtual and real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.events.lvs import key
from kahooks.notifiers import channel_types
from kahooks.settings.config import ConfigError, load

CONFIG = """spool_dir = "/tmp/kahooks-rules-test"
[channels.mail]
type = "exec"
command = ["true"]
[channels.dns]
type = "exec"
command = ["true"]
[channels.pager]
type = "exec"
command = ["true"]
[channels.web]
type = "exec"
command = ["true"]

[[rules]]
channels = ["mail"]                           # no filter: every event

[[rules]]
instances = ["VI_*"]
channels = ["dns"]                            # VRRP only

[[rules]]
virtual_servers = ["192.0.2.50:80", "fwmark 7"]
states = ["DOWN"]
channels = ["pager"]

[[rules]]
real_servers = ["10.0.0.*:80", "[2001:db8::7]:443"]
channels = ["web"]
"""


@pytest.fixture
def config(tmp_path: Path):
    path = tmp_path / "kahooks.toml"
    path.write_text(CONFIG)
    return load(str(path), channel_types())


@pytest.mark.parametrize("event, channels", [
    (Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"), ["mail", "dns"]),
    (Event.new("INSTANCE", "other", "FAULT", 0, "test"), ["mail"]),
    (Event.from_fifo_line("VS [192.0.2.50]:tcp:80 DOWN"), ["mail", "pager"]),
    (Event.from_fifo_line("VS [192.0.2.50]:tcp:80 UP"), ["mail"]),
    (Event.from_fifo_line("VS FWM 7 DOWN"), ["mail", "pager"]),
    (Event.from_fifo_line("RS [10.0.0.3]:tcp:80 [192.0.2.50]:tcp:80 DOWN"), ["mail", "pager", "web"]),
    (Event.from_fifo_line("RS [10.0.0.3]:tcp:80 [192.0.2.51]:tcp:80 UP"), ["mail", "web"]),
    (Event.from_fifo_line("RS [2001:db8::7]:tcp:443 [2001:db8::1]:tcp:443 DOWN"), ["mail", "web"]),
    (Event.lvs("RS", "10.0.0.9:8080", "192.0.2.50:80", "UP", "flags"), ["mail"]),
])
def test_each_rule_matches_what_it_names(config, event: Event, channels: list[str]) -> None:
    assert config.channels_for(event) == channels


@pytest.mark.parametrize("written, wanted", [
    ("[192.0.2.50]:tcp:80", "192.0.2.50:80"), ("192.0.2.50:80", "192.0.2.50:80"), ("tcp:192.0.2.50:80", "192.0.2.50:80"),
    ("[2001:DB8::1]:udp:53", "[2001:db8::1]:53"), ("[2001:db8::1]:53", "[2001:db8::1]:53"),
    ("FWM 7", "FWM 7"), ("fwmark 7", "FWM 7"), ("[webpool]:443", "webpool:443"),
])
def test_keepalived_and_people_write_a_server_the_same_way(written: str, wanted: str) -> None:
    assert key(written) == wanted


def test_a_rule_naming_a_server_that_is_none_is_refused_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "kahooks.toml"
    path.write_text(CONFIG.replace('"fwmark 7"', '"192.0.2.50"'))
    with pytest.raises(ConfigError) as caught:
        load(str(path), channel_types())
    assert "rules[2].virtual_servers[1]: '192.0.2.50' is not a server" in "\n".join(caught.value.lines())
