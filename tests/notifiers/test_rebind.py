"""The rebind channel: real squid and haproxy in network namespaces gain a VIP and must answer on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.notify.spool import Spool
from tests.support.notify import run_worker_in, worker_for, write_config

VIP1, VIP2 = "192.0.2.100", "192.0.2.101"


def squid_config(directory: Path) -> Path:
    from kahooks.lab.squidpair import squid_conf

    path = directory / "squid.conf"
    path.write_text(squid_conf(directory, [VIP1, VIP2]))
    return path


def fetch_through(node: object, proxy: str, url: str) -> str:
    return node.fetch(url, proxy=f"http://{proxy}:3128", timeout=5)


@pytest.mark.root
def test_squid_listens_on_a_vip_that_moved_here_and_survives_losing_it(tmp_path: Path) -> None:
    from kahooks.lab.netns import Network, wait_for

    squid_dir = tmp_path / "squid"
    squid_dir.mkdir()
    squid_dir.chmod(0o777)  # squid drops to the proxy user
    conf = squid_config(squid_dir)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("backend says hello\n")
    with Network("khlrebind") as net:
        hub = net.hub_node()
        backend = hub.popen([sys.executable, "-m", "http.server", "-b", net.host(1), "-d", str(tmp_path / "www"),
                             "8000"], stdout=open(tmp_path / "www.log", "w"), stderr=open(tmp_path / "www.err", "w"))
        lb = net.add_node("lb", 11, own_pids=False)
        client = net.add_node("client", 50, own_pids=False)
        lb.add_address(VIP1)  # this node is MASTER of VI_1 from the start; VI_2's VIP is on the peer
        squid = lb.popen(["squid", "-N", "-f", str(conf)], stdout=open(tmp_path / "squid.out", "w"),
                         stderr=open(tmp_path / "squid.err", "w"))
        try:
            url = f"http://{net.host(1)}:8000/index.html"
            wait_for(lambda: fetch_through(client, VIP1, url) == "backend says hello", 10, "squid on VIP1")
            table = (f'[channels.squid]\ntype = "rebind"\ncommand = ["squid", "-k", "reconfigure", "-f", "{conf}"]\n'
                     f'ports = [3128]\nverify_timeout = 15\n')
            config = write_config(tmp_path, table, vips=(VIP2,))
            # The peer failed: VI_2's VIP arrives here and keepalived says MASTER.
            lb.add_address(VIP2)
            _, spool, _ = worker_for(config)
            spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
            log = run_worker_in(lb, config)
            assert "listening on 192.0.2.101:3128" in log
            assert fetch_through(client, VIP2, url) == "backend says hello"

            # The peer is back: both VIPs leave this node (say it is drained). No reconfigure may run:
            # squid with no VIP left would die on a FATAL bind.
            lb.remove_address(VIP1)
            lb.remove_address(VIP2)
            spool.record(Event.new("INSTANCE", "VI_1", "BACKUP", 100, "test"))
            log = run_worker_in(lb, config)
            assert "nothing to rebind" in log
            assert squid.poll() is None, (squid_dir / "cache.log").read_text()[-2000:]
            # And when the VIP comes back, squid still holds its socket: nothing to reload.
            lb.add_address(VIP2)
            spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
            assert "already listening on 192.0.2.101:3128" in run_worker_in(lb, config)
            assert fetch_through(client, VIP2, url) == "backend says hello"
        finally:
            squid.terminate()
            squid.wait(10)
            backend.terminate()
            backend.wait(5)


def deliver_with_alerts(tmp_path: Path, rebind: str, script: str, max_attempts: int) -> Spool:
    """A MASTER for a rebind channel `svc` (VIP 127.0.0.1, which is here); ALERTs go to `script`."""
    channels = f'[channels.svc]\ntype = "rebind"\n{rebind}\n[channels.people]\ntype = "exec"\n' \
               f'command = {json.dumps(["sh", "-c", script])}\n'
    rules = '[[rules]]\nstates = ["MASTER"]\nchannels = ["svc"]\n\n[[rules]]\nstates = ["ALERT"]\nchannels = ["people"]'
    path = write_config(tmp_path, channels, rules=rules, vips=("127.0.0.1",), delivery=(
        f"flap_window = 0\nbackoff_initial = 0.05\nbackoff_max = 0.1\nmax_attempts = {max_attempts}"))
    _, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    assert worker.drain(15)
    return spool


def test_a_rebind_that_does_not_listen_is_retried_and_raises_an_alert(tmp_path: Path) -> None:
    out = tmp_path / "alerts"
    script = f'echo "$KAHOOKS_TYPE|$KAHOOKS_INSTANCE|$KAHOOKS_DETAIL|$KAHOOKS_SUBJECT" >> {out}'
    spool = deliver_with_alerts(tmp_path, 'command = ["true"]\nports = [9]\nverify_timeout = 0.3', script, 3)
    lines = out.read_text().splitlines()
    # One alert on the first failure, one when it gave up; not one per retry.
    assert len(lines) == 2, lines
    kind, instance, detail, subject = lines[0].split("|")
    assert (kind, instance) == ("ALERT", "VI_1")
    assert detail.startswith("svc: nothing listens on 127.0.0.1:9 0.3 s after `true`")
    assert subject == f"[lb-test] VI_1: {detail}"
    assert "(gave up)" in lines[1]
    assert json.loads(next((spool.dead_dir / "svc").glob("*.json")).read_text())["attempts"] == 3


def test_squid_config_that_does_not_parse_is_reported(tmp_path: Path) -> None:
    """`squid -k reconfigure` against a broken config exits non-zero: an alert, not silence."""
    broken = tmp_path / "squid.conf"
    broken.write_text("http_port 127.0.0.1:3128\nthis_is_not_a_directive on\n")
    out = tmp_path / "alerts"
    deliver_with_alerts(tmp_path, f'command = ["squid", "-k", "parse", "-f", "{broken}"]\nports = [3128]',
                        f"echo $KAHOOKS_DETAIL >> {out}", 2)
    assert "`squid -k parse" in out.read_text() and "exited 1" in out.read_text()


@pytest.mark.root
def test_haproxy_is_started_on_a_vip_that_arrives(tmp_path: Path) -> None:
    """haproxy binding the VIP itself (no ip_nonlocal_bind) cannot run before the VIP is here: the
    rebind command (re)starts it with -sf, and only a listening socket counts as success."""
    from kahooks.lab.netns import Network

    vip = "192.0.2.110"
    directory = tmp_path / "haproxy"
    directory.mkdir()
    (directory / "www").mkdir()
    (directory / "www" / "index.html").write_text("haproxy backend\n")
    conf = directory / "haproxy.cfg"
    conf.write_text(f"global\n    maxconn 64\ndefaults\n    mode http\n    timeout connect 1s\n"
                    f"    timeout client 5s\n    timeout server 5s\nfrontend www\n    bind {vip}:80\n"
                    f"    default_backend app\nbackend app\n    server local 127.0.0.1:8080\n")
    pidfile = directory / "haproxy.pid"
    command = ["sh", "-c", f'exec haproxy -D -f {conf} -p {pidfile} $( [ -s {pidfile} ] && echo -sf $(cat {pidfile}) )']
    table = f'[channels.lb]\ntype = "rebind"\ncommand = {json.dumps(command)}\nports = [80]\nverify_timeout = 10\n'
    config = write_config(tmp_path, table, vips=(vip,))
    with Network("khlhap") as net:
        lb = net.add_node("lb", 11, own_pids=False)
        client = net.add_node("client", 50, own_pids=False)
        backend = lb.popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(directory / "www"),
                            "8080"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # Started without the VIP, haproxy refuses to run: this is why it needs the rebind.
            assert lb.run(["haproxy", "-c", "-f", str(conf)], check=False).returncode == 0
            assert lb.run(["haproxy", "-f", str(conf), "-p", str(pidfile), "-D"], check=False).returncode != 0
            lb.add_address(vip)
            _, spool, _ = worker_for(config)
            spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
            assert "listening on 192.0.2.110:80" in run_worker_in(lb, config)
            assert client.fetch(f"http://{vip}/", timeout=5) == "haproxy backend"
        finally:
            backend.terminate()
            lb.run(["sh", "-c", f"[ -s {pidfile} ] && kill $(cat {pidfile})"], check=False)
