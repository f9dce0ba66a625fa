"""ka-check-http --contains reads every way an HTTP body can be framed, on every Python kahooks supports.

Python 3.13's read1() closes the connection once Content-Length bytes are in (gh-113199), so a check
that set a timeout on the socket between reads failed against every `Connection: close` answer:
haproxy's default for health checks. Each framing is served byte-exact by a raw socket server, and
haproxy answers for real.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kahooks.lab.netns import free_port, wait_for
from tests.support.programs import assert_one_line_failure, run

BODY = b"service healthy, database up\n"


def _chunked(body: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"


# What the server sends after reading the request: a list of (bytes, pause before the next part).
FRAMINGS: dict[str, list[tuple[bytes, float]]] = {
    "keep-alive": [(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY), 0)],
    "connection-close": [(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                          % (len(BODY), BODY), 0)],
    "http-1.0-until-close": [(b"HTTP/1.0 200 OK\r\n\r\n" + BODY, 0)],
    "http-1.0-with-length": [(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY), 0)],
    "chunked": [(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + _chunked(BODY), 0)],
    "trickled": [(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY), 0.05)]
                + [(BODY[index:index + 4], 0.05) for index in range(0, len(BODY), 4)],
}


class FramingServer:
    """Answers every connection with one framing, then closes (after a keep-alive answer, only once the
    client has closed its end: the server must not be what ends the body)."""

    def __init__(self, parts: list[tuple[bytes, float]], close_first: bool) -> None:
        self.parts, self.close_first = parts, close_first
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        data = conn.recv(4096)
                        if not data:
                            break
                        request += data
                    for data, pause in self.parts:
                        conn.sendall(data)
                        time.sleep(pause)
                    if not self.close_first:
                        conn.recv(1)  # keep-alive: wait for the client to hang up
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped = True
        self.listener.close()


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_the_body_is_read_whatever_its_framing(framing: str) -> None:
    server = FramingServer(FRAMINGS[framing], close_first=framing != "keep-alive")
    try:
        url = f"http://127.0.0.1:{server.port}/health"
        ok = run("ka-check-http", url, "--contains", "database up", "--regex", "^service healthy")
        assert ok.code == 0, ok
        assert "body contains 'database up'" in ok.line and "body matches" in ok.line, ok
        assert_one_line_failure(run("ka-check-http", url, "--contains", "database down"),
                                "the body lacks 'database down'")
    finally:
        server.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"""global
    log stdout format raw local0 emerg
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend health
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string "service healthy, database up"
""")
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(port), timeout=10, what="haproxy listening")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_haproxy_answering_with_connection_close(haproxy: int) -> None:
    outcome = run("ka-check-http", f"http://127.0.0.1:{haproxy}/", "--contains", "database up")
    assert outcome.code == 0, outcome
    assert_one_line_failure(run("ka-check-http", f"http://127.0.0.1:{haproxy}/", "--contains", "database down"),
                            "the body lacks 'database down'")
