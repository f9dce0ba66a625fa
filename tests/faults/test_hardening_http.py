"""Hostile HTTP peers against the HTTP channels (slack, webhook, alertmanager, apprise).

These channels run inside `kahooks serve` too: a peer that trickles, floods or hangs must cost a
delivery its deadline at most, never the daemon's memory, and no failure may name a secret.
Every peer here is real and on loopback; every loop is bounded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kahooks.events.event import Event
from tests.support.netservers import RawPeer
from tests.support.notify import worker_for, write_config
from tests.support.proxy import ForwardProxy
from tests.support.webhooks import WebhookServer

ONE_TRY = "flap_window = 0\nbackoff_initial = 30\nmax_attempts = 1000"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                   "ALL_PROXY")


def trickle(head: bytes, count: int = 40, every: float = 0.25):
    """Headers at once, then a body of `count` bytes, one each `every` seconds (10 s in all)."""
    def behave(connection: socket.socket, stopping: threading.Event) -> None:
        connection.sendall(head)
        for _ in range(count):
            if stopping.wait(every):
                return
            connection.sendall(b"o")
    return behave


def one_attempt(tmp_path: Path, table: str, channel: str) -> tuple[float, object]:
    """One delivery attempt of one FAULT on `channel`: (seconds it held the channel, the spool)."""
    _, spool, worker = worker_for(write_config(tmp_path, table, delivery=ONE_TRY))
    spool.record(Event.new("INSTANCE", "VI_1", "FAULT", 0, "test"))
    worker.fan_out_pending()
    started = time.monotonic()
    worker.channel_pass(channel)
    return time.monotonic() - started, spool


def last_error(spool: object, channel: str) -> str:
    queued = spool.queued(channel)  # type: ignore[attr-defined]
    if queued:
        return queued[0].last_error
    return json.loads(next((spool.dead_dir / channel).glob("*.json")).read_text())["last_error"]  # type: ignore[attr-defined]


# 1. One deadline over the whole exchange -------------------------------------------------------

@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 40\r\n\r\n",   # http.client drops the socket
    b"HTTP/1.0 200 OK\r\n\r\n",                                               # a body that ends at EOF
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n",
], ids=["content-length-close", "http-1.0", "chunked-close"])
@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_a_body_trickled_after_the_headers_is_cut_at_the_deadline(tmp_path: Path, head: bytes, kind: str) -> None:
    peer = RawPeer(trickle(head))
    try:
        took, spool = one_attempt(tmp_path, f'[channels.out]\ntype = "{kind}"\n'
                                  f'url = "http://127.0.0.1:{peer.port}/hook"\ntimeout = 1\n', "out")
    finally:
        peer.close()
    # Without the deadline the trickle holds it 10 s; 1.9 s was seen with suites running beside this one.
    assert took < 1 + 2.0, f"a 1 s deadline held the channel {took:.1f} s"
    assert last_error(spool, "out") == "no complete answer within 1 s"


def test_trickled_headers_are_cut_at_the_deadline(tmp_path: Path) -> None:
    def headers_forever(connection: socket.socket, stopping: threading.Event) -> None:
        for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 200:  # 20 s at most
            if stopping.wait(0.1):
                return
            connection.sendall(bytes([byte]))

    peer = RawPeer(headers_forever)
    try:
        took, spool = one_attempt(tmp_path, f'[channels.out]\ntype = "slack"\n'
                                  f'url = "http://127.0.0.1:{peer.port}/hook"\ntimeout = 1\n', "out")
    finally:
        peer.close()
    assert took < 1 + 2.0 and last_error(spool, "out") == "no complete answer within 1 s", took  # 20 s without it


# 2. Proxies from the environment, through a real forward proxy ---------------------------------

@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    proxy = ForwardProxy(auth=("kahooks", "PROXYSECRET"))
    yield proxy, monkeypatch
    proxy.close()


def test_https_goes_through_an_authenticated_proxy_with_the_channels_ca(tmp_path: Path, proxy_env,
                                                                       certs: dict[str, tuple[Path, Path]]) -> None:
    from tests.support.netservers import HttpServer

    proxy, env = proxy_env
    env.setenv("HTTPS_PROXY", proxy.url("kahooks", "PROXYSECRET"))
    server = HttpServer(tls=certs["long"])
    try:
        table = (f'[channels.out]\ntype = "webhook"\nurl = "https://localhost:{server.port}/ok"\n'
                 f'ca = "{certs["long"][0]}"\ntimeout = 5\n')
        took, spool = one_attempt(tmp_path, table, "out")
        assert not spool.queued("out"), last_error(spool, "out")  # type: ignore[attr-defined]
        assert [method for method, *_ in server.requests] == ["POST"]
        assert proxy.seen == [f"CONNECT localhost:{server.port}"]
        # The same, without the channel's CA: the proxy's tunnel does not make the peer trusted.
        untrusted = tmp_path / "untrusted"
        untrusted.mkdir()
        _, spool = one_attempt(untrusted, table.replace(f'ca = "{certs["long"][0]}"\n', ""), "out")
        assert "TLS error: certificate not trusted" in last_error(spool, "out")
    finally:
        server.close()


def test_a_refusing_proxy_is_a_temporary_failure_that_never_shows_its_password(tmp_path: Path, proxy_env) -> None:
    proxy, env = proxy_env
    env.setenv("HTTPS_PROXY", proxy.url("kahooks", "WRONGSECRET"))
    env.setenv("HTTP_PROXY", proxy.url("kahooks", "WRONGSECRET"))
    for number, url in enumerate(("https://localhost:9/services/T1/B1/SECRETPATH",
                                  "http://localhost:9/services/T1/B1/SECRETPATH")):
        folder = tmp_path / str(number)
        folder.mkdir()
        _, spool = one_attempt(folder, f'[channels.chat]\ntype = "slack"\nurl = "{url}"\ntimeout = 3\n', "chat")
        reason = last_error(spool, "chat")
        assert spool.queued("chat"), reason  # type: ignore[attr-defined]  (retried, not buried)
        assert "SECRET" not in reason and "localhost:9" not in reason, reason
    assert proxy.refused == 2


def test_no_proxy_goes_direct_and_plain_http_is_forwarded(tmp_path: Path, proxy_env) -> None:
    proxy, env = proxy_env
    env.setenv("HTTP_PROXY", proxy.url("kahooks", "PROXYSECRET"))
    slack = WebhookServer()
    try:
        table = f'[channels.chat]\ntype = "slack"\nurl = "{slack.url}"\ntimeout = 5\n'
        _, spool = one_attempt(tmp_path, table, "chat")
        assert len(slack.received) == 1 and proxy.seen == [f"POST {slack.url}"]
        env.setenv("NO_PROXY", "localhost,127.0.0.1")
        direct = tmp_path / "direct"
        direct.mkdir()
        _, spool = one_attempt(direct, table, "chat")
        assert len(slack.received) == 2 and len(proxy.seen) == 1  # the proxy saw nothing more
    finally:
        slack.stop()


# 3. No secret in a failure ---------------------------------------------------------------------

def test_a_redirect_never_shows_the_secret_path_or_query(tmp_path: Path) -> None:
    def redirect(connection: socket.socket, stopping: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 301 Moved\r\nLocation: https://hooks.example.test/hooks/SECRETPATH?"
                           b"token=SECRETQUERY\r\nContent-Length: 0\r\n\r\n")

    peer = RawPeer(redirect)
    try:
        _, spool = one_attempt(tmp_path, f'[channels.out]\ntype = "webhook"\n'
                               f'url = "http://127.0.0.1:{peer.port}/hooks/SECRETPATH?token=SECRETQUERY"\n', "out")
    finally:
        peer.close()
    reason = last_error(spool, "out")
    assert reason.startswith("permanent: HTTP 301") and "redirected to https://hooks.example.test/…" in reason
    assert "SECRET" not in reason, reason


def test_alertmanager_members_passwords_stay_out_of_the_error(tmp_path: Path) -> None:
    closed = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    ports = [sock.getsockname()[1] for sock in closed]
    for sock in closed:
        sock.close()  # nothing listens there now: refused
    urls = ", ".join(f'"http://kahooks:AMSECRET@127.0.0.1:{port}"' for port in ports)
    _, spool = one_attempt(tmp_path, f'[channels.am]\ntype = "alertmanager"\nurls = [{urls}]\ntimeout = 2\n', "am")
    reason = last_error(spool, "am")
    assert "no Alertmanager took the alert" in reason and "cannot connect: Connection refused" in reason
    assert "AMSECRET" not in reason and "kahooks:***@" in reason, reason


# 4. A hung Alertmanager member does not delay the others ---------------------------------------

def test_a_hung_alertmanager_member_does_not_delay_the_healthy_one(tmp_path: Path) -> None:
    import os

    from kahooks.lab.netns import wait_for
    from tests.support.prometheus import ALERTMANAGER, Alertmanager

    if not os.path.exists(ALERTMANAGER):
        pytest.skip("prometheus-alertmanager is not installed (./run test installs it)")
    hung = RawPeer(lambda connection, stopping: stopping.wait(30))  # accepts, reads, never answers
    healthy = Alertmanager()
    try:
        table = (f'[channels.am]\ntype = "alertmanager"\n'
                 f'urls = ["http://127.0.0.1:{hung.port}", "{healthy.url}"]\ntimeout = 4\n')
        _, spool, worker = worker_for(write_config(tmp_path, table, delivery=ONE_TRY))
        spool.record(Event.new("INSTANCE", "VI_1", "FAULT", 0, "test"))
        worker.fan_out_pending()
        started = time.monotonic()
        passing = threading.Thread(target=worker.channel_pass, args=("am",), daemon=True)
        passing.start()
        wait_for(lambda: any(alert["labels"].get("iname") == "VI_1" for alert in healthy.alerts()), 3.5,
                 "the healthy member to have the alert before the hung one's deadline")
        arrived = time.monotonic() - started
        passing.join(10)
        took = time.monotonic() - started
    finally:
        hung.close()
        healthy.stop()
    assert arrived < 2.0, f"the healthy member got the alert after {arrived:.1f} s"
    assert 3.5 < took < 5.5, f"the pass took {took:.1f} s: the hung member's 4 s deadline bounds it"
    assert not spool.queued("am")  # type: ignore[attr-defined]  one member took it: delivered


# 5. Apprise: a huge, slow answer costs the worker neither time nor memory ----------------------

def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_apprise_under_a_huge_slow_answer_keeps_its_deadline_and_the_workers_memory(tmp_path: Path) -> None:
    pytest.importorskip("apprise")
    block = b"z" * (1 << 20)

    def flood(connection: socket.socket, stopping: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
        for _ in range(1024):  # 1 GiB at most, 100 MB/s at most: slow enough to outlast any deadline here
            if stopping.wait(0.01):
                return
            connection.sendall(block)

    peer = RawPeer(flood)
    before = rss_kib()
    try:
        table = (f'[channels.team]\ntype = "apprise"\nurls = ["json://127.0.0.1:{peer.port}/hook"]\n'
                 f"timeout = 3\n")
        took, spool = one_attempt(tmp_path, table, "team")
    finally:
        peer.close()
    grown = (rss_kib() - before) // 1024
    assert took < 4.5, f"a 3 s deadline held the channel {took:.1f} s"
    assert grown < 50, f"the worker grew by {grown} MB"
    assert last_error(spool, "team") == "Apprise could not notify URL 1 (json://…) within 3 s (stopped)"


# 6. Validating a config never imports requests ---------------------------------------------------

def test_loading_http_channels_imports_neither_requests_nor_apprise(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[channels.chat]\ntype = "slack"\nurl = "https://hooks.example.test/x"\n\n'
                          '[channels.hook]\ntype = "webhook"\nurl = "https://hooks.example.test/y"\n\n'
                          '[channels.am]\ntype = "alertmanager"\nurls = ["http://127.0.0.1:9093"]\n\n'
                          '[channels.team]\ntype = "apprise"\nurls = ["json://127.0.0.1/z"]\n')
    script = ("import sys\nfrom kahooks.notifiers import load_config\n"
              f"load_config({str(config)!r})\nprint(' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not {"requests", "urllib3", "apprise"} & loaded, {"requests", "urllib3", "apprise"} & loaded
