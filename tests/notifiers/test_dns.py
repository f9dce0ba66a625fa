"""The dns channel against a real BIND: add, remove, holder claims, errors, an outage, two racing nodes."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.lab.bind import Bind
from kahooks.settings.config import ConfigError
from tests.support.notify import run_worker_in, worker_for, write_config

FAST_RETRY = "flap_window = 0\nbackoff_initial = 0.05\nbackoff_max = 0.2\nmax_attempts = 1000"
HERE = "127.0.0.1"          # on this machine's lo: the VIP "is here"
AWAY = "192.0.2.10"         # on no interface here: the VIP "has left"
PEER = "192.0.2.200"        # the other node's VIP, always in the set


@pytest.fixture
def bind(tmp_path: Path) -> Bind:
    directory = tmp_path / "bind"
    directory.mkdir()
    server = Bind(directory, records=f"rr IN A {PEER}\n")
    yield server
    server.stop()


def deliver(directory: Path, bind: Bind, vips: tuple[str, ...], state: str = "MASTER", extra: str = "",
            key: str | None = None, host: str = "lb-test", timeout: float = 10) -> tuple[bool, Path]:
    directory.mkdir(exist_ok=True)
    path = write_config(directory, bind.channel(extra=extra, key=key), delivery=FAST_RETRY, vips=vips, host=host)
    _, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", state, 100, "test"))
    return worker.drain(timeout), spool.dead_dir / "dns"


def holder(bind: Bind, address: str) -> set[str]:
    return bind.query(f"{address.replace('.', '-')}._kahooks.rr", "TXT")


def test_master_adds_its_vip_and_claims_it(tmp_path: Path, bind: Bind) -> None:
    done, _ = deliver(tmp_path / "n", bind, (HERE,))
    assert done
    assert bind.query("rr", "A") == {PEER, HERE}
    assert holder(bind, HERE) == {'"lb-test"'}
    # Again (a replayed event): idempotent, nothing doubles.
    done, _ = deliver(tmp_path / "n", bind, (HERE,))
    assert done and bind.query("rr", "A") == {PEER, HERE}


def test_a_vip_that_left_is_removed_whatever_the_event_says(tmp_path: Path, bind: Bind) -> None:
    # We held AWAY; a late MASTER event arrives after the VIP already left: reality wins.
    # The record and our claim, as a previous MASTER left them.
    bind.update(f"update add rr.example.test. 30 A {AWAY}",
                'update add 192-0-2-10._kahooks.rr.example.test. 30 TXT "lb-test"')
    assert bind.query("rr", "A") == {PEER, AWAY}
    done, _ = deliver(tmp_path / "n", bind, (AWAY,), state="MASTER")
    assert done
    assert bind.query("rr", "A") == {PEER}
    assert holder(bind, AWAY) == set()


def test_a_vip_claimed_by_the_other_node_is_left_alone(tmp_path: Path, bind: Bind) -> None:
    bind.update(f"update add rr.example.test. 30 A {AWAY}",
                'update add 192-0-2-10._kahooks.rr.example.test. 30 TXT "lb-other"')
    done, _ = deliver(tmp_path / "n", bind, (AWAY,), state="BACKUP")
    assert done
    assert bind.query("rr", "A") == {PEER, AWAY}  # it moved to lb-other; it did not die
    assert holder(bind, AWAY) == {'"lb-other"'}


def test_the_last_record_is_never_removed(tmp_path: Path, bind: Bind) -> None:
    bind.update("update delete rr.example.test. A", f"update add rr.example.test. 30 A {AWAY}")
    done, _ = deliver(tmp_path / "n", bind, (AWAY,), state="FAULT")
    assert done
    assert bind.query("rr", "A") == {AWAY}
    done, _ = deliver(tmp_path / "m", bind, (AWAY,), state="FAULT", extra="keep_last = false")
    assert done and bind.query("rr", "A") == set()


@pytest.mark.parametrize(("key", "reason"), [
    ('key_name = "kahooks-test"\nkey_secret = "c2VjcmV0IHRoYXQgaXMgd3Jvbmc="', "signature rejected"),
    ('key_name = "nobody-key"\nkey_secret = "c2VjcmV0IHRoYXQgaXMgd3Jvbmc="', "unknown to the server"),
])
def test_a_wrong_key_is_permanent_and_says_why(tmp_path: Path, bind: Bind, key: str, reason: str) -> None:
    done, dead = deliver(tmp_path / "n", bind, (HERE,), key=key)
    assert done
    record = json.loads(next(dead.glob("*.json")).read_text())
    assert reason in record["last_error"] and record["attempts"] == 0
    assert bind.query("rr", "A") == {PEER}


def test_an_unserved_zone_is_permanent(tmp_path: Path, bind: Bind) -> None:
    directory = tmp_path / "n"
    directory.mkdir()
    channel = bind.channel().replace('zone = "example.test"', 'zone = "other.test"').replace(
        'name = "rr"', 'name = "rr"')
    path = write_config(directory, channel, delivery=FAST_RETRY, vips=(HERE,))
    _, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    assert worker.drain(10)
    error = json.loads(next((spool.dead_dir / "dns").glob("*.json")).read_text())["last_error"]
    assert "NOTAUTH" in error or "REFUSED" in error


def test_server_down_then_back_delivers_after_recovery(tmp_path: Path, bind: Bind) -> None:
    bind.stop()
    directory = tmp_path / "n"
    directory.mkdir()
    path = write_config(directory, bind.channel(), delivery=FAST_RETRY, vips=(HERE,))
    _, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    assert not worker.drain(1.0)
    waiting = spool.queued("dns")[0]
    assert waiting.attempts >= 1 and "connection refused" in waiting.last_error.lower()
    bind.start()
    assert worker.drain(10)
    assert bind.query("rr", "A") == {PEER, HERE}
    assert not list((spool.dead_dir / "dns").glob("*.json")) if (spool.dead_dir / "dns").exists() else True


def test_config_errors_are_caught_before_any_event(tmp_path: Path, bind: Bind) -> None:
    bad = bind.channel().replace(f'server = "{bind.host}:{bind.port}"', 'server = "ns1.example.test"')
    with pytest.raises(ConfigError, match=r"kahooks.toml:\d+: channels.dns.server: must be an IP address"):
        worker_for(write_config(tmp_path, bad))
    no_key = bind.channel(key="")
    with pytest.raises(ConfigError, match="channels.dns.key_name: is required"):
        worker_for(write_config(tmp_path, no_key))
    open_key = tmp_path / "open.key"
    open_key.write_text(bind.key_file.read_text())
    open_key.chmod(0o644)
    with pytest.raises(ConfigError, match="world-readable"):
        worker_for(write_config(tmp_path, bind.channel(key=f'key_file = "{open_key}"')))


@pytest.mark.root
def test_two_nodes_racing_for_one_vip_converge(tmp_path: Path) -> None:
    """A VIP moves back and forth between two namespaces; both nodes' workers run at the same moment,
    in random order at the server. After every move the name points at the VIP's holder."""
    from kahooks.lab.netns import Network

    vip = "192.0.2.100"
    with Network("khldns") as net:
        hub = net.hub_node()
        bind_dir = tmp_path / "bind"
        bind_dir.mkdir()
        bind = Bind(bind_dir, records="rr IN A 192.0.2.101\n", host=net.host(1), namespace=hub.namespace)
        nodes = {name: net.add_node(name, index, own_pids=False) for name, index in (("a", 11), ("b", 12))}
        configs = {}
        for name in nodes:
            directory = tmp_path / name
            directory.mkdir()
            configs[name] = write_config(directory, bind.channel(), delivery=FAST_RETRY, vips=(vip,),
                                         host=f"lb-{name}")
        try:
            for round_number in range(4):
                owner, other = ("a", "b") if round_number % 2 == 0 else ("b", "a")
                nodes[other].remove_address(vip)
                nodes[owner].add_address(vip)
                for name in nodes:
                    _, spool, _ = worker_for(configs[name])
                    state = "MASTER" if name == owner else "BACKUP"
                    spool.record(Event.new("INSTANCE", "VI_1", state, 100, "test"))
                barrier = threading.Barrier(2)

                def run(name: str) -> str:
                    barrier.wait()
                    return run_worker_in(nodes[name], configs[name])

                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(run, nodes))  # a worker's failure is raised here
                records = bind.query("rr", "A")
                claim = bind.query("192-0-2-100._kahooks.rr", "TXT")
                assert records == {"192.0.2.100", "192.0.2.101"}, (round_number, records)
                assert claim == {f'"lb-{owner}"'}, (round_number, claim)
            # Both nodes lose it: the last holder removes it; the other VIP stays.
            nodes["a"].remove_address(vip)
            nodes["b"].remove_address(vip)
            for name, node in nodes.items():
                _, spool, _ = worker_for(configs[name])
                spool.record(Event.new("INSTANCE", "VI_1", "FAULT", 0, "test"))
                run_worker_in(node, configs[name])
            assert bind.query("rr", "A") == {"192.0.2.101"}
        finally:
            bind.stop()
