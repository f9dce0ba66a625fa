"""`kahooks drain`: a real server out of its pools before a deploy, never below a pool's quorum.

Pools come from keepalived.conf (the contrib LVS-NAT example: quorum 2 of three servers of
weight 1); the MISC_CHECK that reads the drain file, the connections waited for and the
server are real processes and sockets on loopback. Only IPVS's connection table is a file
written by the test: this kernel has no IPVS.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kahooks.admin import drain
from kahooks.admin.pools import pools
from kahooks.system.procfs import established_to
from tests.support.netservers import HttpServer
from tests.support.programs import program, quiet_env, run

ROOT = Path(__file__).resolve().parents[2]
NAT = str(ROOT / "contrib" / "keepalived" / "lvs-nat.conf")


def kahooks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([program("kahooks"), *args], capture_output=True, text=True, timeout=60, env=quiet_env())


def test_the_pools_as_keepalived_conf_declares_them() -> None:
    (pool,) = pools(NAT)
    assert pool.key == "192.0.2.60:443" and pool.quorum == 2
    assert [(real.key, real.weight) for real in pool.reals] == [("10.0.1.21:443", 1), ("10.0.1.22:443", 1),
                                                                ("10.0.1.23:443", 1)]


def test_drain_refuses_to_go_below_quorum_and_undrain_puts_it_back(tmp_path: Path) -> None:
    directory = str(tmp_path / "drain")
    first = kahooks("drain", "10.0.1.21:443", "-f", NAT, "--dir", directory, "--reason", "deploy 42")
    assert first.returncode == 0 and "10.0.1.21:443 drained from 192.0.2.60:443" in first.stdout, first
    assert "deploy 42" in (tmp_path / "drain" / "10.0.1.21:443").read_text()
    second = kahooks("drain", "10.0.1.22:443", "-f", NAT, "--dir", directory)
    assert second.returncode == 1 and second.stderr.count("\n") == 1, second
    assert "refused: draining 10.0.1.22:443 would leave virtual server 192.0.2.60:443" in second.stderr
    assert "with weight 1 of the 2 its quorum needs" in second.stderr and "drained: 10.0.1.21:443" in second.stderr
    assert not (tmp_path / "drain" / "10.0.1.22:443").exists()
    listing = kahooks("drain", "--list", "--dir", directory)
    assert listing.stdout.startswith("10.0.1.21:443\tdrained ")
    assert kahooks("undrain", "10.0.1.21:443", "--dir", directory).returncode == 0
    assert kahooks("drain", "10.0.1.22:443", "-f", NAT, "--dir", directory).returncode == 0


@pytest.mark.parametrize("args, message", [
    (("drain", "10.0.1.21"), "is not a server"),
    (("drain", "pool:443"), "is not a real server"),
    (("drain", "10.0.1.21:443", "-f", "/nonexistent/keepalived.conf"), "cannot read"),
    (("drain", "10.9.9.9:443"), "is no real_server in keepalived.conf"),
])
def test_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    full = [*args, "--dir", str(tmp_path / "drain")] + ([] if "-f" in args else ["-f", NAT])
    result = kahooks(*full)
    assert result.returncode in (1, 2) and result.stderr.count("\n") == 1 and message in result.stderr, result
    assert "Traceback" not in result.stderr


def test_two_pipelines_cannot_both_drain_the_servers_a_pool_needs(tmp_path: Path, monkeypatch) -> None:
    """Each drain alone is allowed; together they would leave one server of the two needed."""
    directory = str(tmp_path / "drain")
    (pool,) = pools(NAT)
    slow_listing = drain.drained

    def slow(where: str) -> list[str]:  # a slow disk: the decision takes a while after looking
        found = slow_listing(where)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(drain, "drained", slow)
    outcomes: dict[str, str] = {}

    def pipeline(server: str) -> None:
        try:
            drain.drain(server, [pool], directory)
            outcomes[server] = "drained"
        except drain.DrainRefused:
            outcomes[server] = "refused"

    threads = [threading.Thread(target=pipeline, args=(server,)) for server in ("10.0.1.22:443", "10.0.1.23:443")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["drained", "refused"], outcomes
    assert len(slow_listing(directory)) == 1


def test_the_misc_check_fails_while_its_server_is_drained(tmp_path: Path, http_server: HttpServer) -> None:
    port = int(http_server.url("").rsplit(":", 1)[1])
    conf = tmp_path / "keepalived.conf"
    conf.write_text(f"virtual_server 192.0.2.70 80 {{\n    real_server 127.0.0.1 {port} {{\n        weight 1\n    }}\n"
                    f"    real_server 127.0.0.2 {port} {{\n        weight 1\n    }}\n}}\n")
    directory = tmp_path / "drain"
    check = ("ka-check-http", http_server.url("/ok"), "--maintenance-file", str(directory / f"127.0.0.1:{port}"),
             "--no-syslog")
    assert run(*check).code == 0
    assert kahooks("drain", f"127.0.0.1:{port}", "-f", str(conf), "--dir", str(directory)).returncode == 0
    failed = run(*check)
    assert failed.code == 1 and "maintenance file" in failed.line
    assert kahooks("undrain", f"127.0.0.1:{port}", "--dir", str(directory)).returncode == 0
    assert run(*check).code == 0


def test_wait_connections_waits_for_the_last_one_to_end(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    conf = tmp_path / "keepalived.conf"
    conf.write_text(f"virtual_server 192.0.2.70 {port} {{\n    real_server 127.0.0.1 {port} {{\n    }}\n"
                    f"    real_server 127.0.0.2 {port} {{\n    }}\n}}\n")
    try:
        assert established_to("127.0.0.1", port) == 1
        held = kahooks("drain", f"127.0.0.1:{port}", "-f", str(conf), "--dir", str(tmp_path / "a"),
                       "--wait-connections", "--timeout", "0.5")
        assert held.returncode == 1 and "1 connection(s) to 127.0.0.1:" in held.stderr, held
        started = time.monotonic()
        waiting = subprocess.Popen([program("kahooks"), "drain", f"127.0.0.1:{port}", "-f", str(conf), "--dir",
                                    str(tmp_path / "b"), "--wait-connections", "--timeout", "20"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env())
        time.sleep(1)  # deliberate: the connection lives on for a second, the drain must wait for it
        assert waiting.poll() is None
        client.close()
        served.close()
        out, err = waiting.communicate(timeout=20)
        assert waiting.returncode == 0 and "no connection to 127.0.0.1:" in out, (out, err)
        assert time.monotonic() - started >= 1
    finally:
        client.close()
        served.close()
        listener.close()


def test_ipvs_connections_on_a_director_are_counted(tmp_path: Path) -> None:
    """/proc/net/ip_vs_conn as the kernel prints it (this kernel has no IPVS: the file is written here)."""
    proc_net = tmp_path / "net"
    proc_net.mkdir()
    for table in ("tcp", "tcp6"):
        (proc_net / table).write_text("  sl  local_address rem_address   st\n")
    (proc_net / "ip_vs_conn").write_text(
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
        "TCP C0000263 D3A4 C0000232 0050 0A00000B 0050 ESTABLISHED     899\n"
        "TCP C0000264 D3A5 C0000232 0050 0A00000B 0050 TIME_WAIT        90\n"
        "TCP C0000265 D3A6 C0000232 0050 0A00000C 0050 ESTABLISHED     899\n")
    assert established_to("10.0.0.11", 80, str(proc_net)) == 1
    assert established_to("10.0.0.12", 80, str(proc_net)) == 1
    assert established_to("10.0.0.13", 80, str(proc_net)) == 0
