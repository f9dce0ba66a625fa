"""ka-check-port against real sockets on loopback: connect, banners, TLS, LISTEN lookups."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netservers import TcpServer, free_port
from tests.support.programs import assert_one_line_failure, assert_timed_out, run


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def test_open_port_is_healthy(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    outcome = run("ka-check-port", f"127.0.0.1:{port}")
    assert outcome.code == 0 and outcome.line.startswith(f"OK: 127.0.0.1:{port} accepted the connection"), outcome


def test_closed_port_fails() -> None:
    port = free_port()
    assert_one_line_failure(run("ka-check-port", f"127.0.0.1:{port}"), "connection refused")


def test_ipv6_in_brackets() -> None:
    try:
        sock = socket.socket(socket.AF_INET6)
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    sock.listen(4)
    with sock:
        port = sock.getsockname()[1]
        assert run("ka-check-port", f"[::1]:{port}").code == 0
        assert run("ka-check-port", f"[::1]:{port}", "--listening").code == 0


def test_hostname_is_resolved(listener: socket.socket) -> None:
    assert run("ka-check-port", f"localhost:{listener.getsockname()[1]}").code == 0


def test_banner_and_reply() -> None:
    server = TcpServer(banner=b"220 mail ESMTP ready\r\n", reply=b"221 bye\r\n")
    try:
        assert run("ka-check-port", f"127.0.0.1:{server.port}", "--expect", "220 mail").code == 0
        ok = run("ka-check-port", f"127.0.0.1:{server.port}", "--send", r"QUIT\r\n", "--expect", "221")
        assert ok.code == 0 and "replied '221'" in ok.line, ok
        assert server.received[-1] == b"QUIT\r\n"
        # The server keeps the connection open, so the check waits for '+OK' until its deadline.
        assert_timed_out(run("ka-check-port", f"127.0.0.1:{server.port}", "--expect", "+OK", "--timeout", "0.3"),
                         0.3, "no '+OK' within 0.3 s", "(got '220 mail ESMTP ready", where=("'+OK'",))
    finally:
        server.close()


def test_silent_server_times_out_within_the_deadline() -> None:
    server = TcpServer()  # accepts and says nothing
    try:
        outcome = run("ka-check-port", f"127.0.0.1:{server.port}", "--expect", "hello", "--timeout", "0.3")
        assert_timed_out(outcome, 0.3, "no 'hello' within 0.3 s", where=("'hello'",))
        # From the exec, the interpreter's start included; the server never speaks.
        assert outcome.seconds < 0.3 + 2.5, outcome.seconds
    finally:
        server.close()


def test_listening_checks_the_socket_table_without_connecting(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    ok = run("ka-check-port", f"127.0.0.1:{port}", "--listening")
    assert ok.code == 0 and ok.line == f"OK: a socket listens on 127.0.0.1:{port}", ok
    assert_one_line_failure(run("ka-check-port", f"127.0.0.2:{port}", "--listening"), "nothing listens")
    # A connected (not listening) socket on that port does not count.
    client = socket.create_connection(("127.0.0.1", port))
    listener.close()
    try:
        assert_one_line_failure(run("ka-check-port", f"127.0.0.1:{port}", "--listening"), "nothing listens")
    finally:
        client.close()


def test_listening_accepts_a_wildcard() -> None:
    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen(4)
    with sock:
        port = sock.getsockname()[1]
        ok = run("ka-check-port", f"127.0.0.9:{port}", "--listening")
        assert ok.code == 0 and "0.0.0.0" in ok.line, ok


def test_tls_handshake_and_certificate_checks(certs: dict[str, tuple[Path, Path]]) -> None:
    from tests.support.netservers import HttpServer

    cert, _ = certs["short"]  # valid for 5 days
    server = HttpServer(tls=certs["short"])
    target = f"127.0.0.1:{server.port}"
    try:
        assert_one_line_failure(run("ka-check-port", target, "--tls"), "certificate not trusted")
        assert run("ka-check-port", target, "--tls", "--ca", str(cert)).code == 0
        assert run("ka-check-port", target, "--tls", "--insecure").code == 0
        ok = run("ka-check-port", target, "--tls", "--insecure", "--cert-days", "3")
        assert ok.code == 0 and "certificate valid for" in ok.line, ok
        assert_one_line_failure(run("ka-check-port", target, "--tls", "--ca", str(cert), "--cert-days", "30"),
                                "certificate expires in ", "(< 30)")
        assert_one_line_failure(run("ka-check-port", target, "--tls", "--ca", str(cert), "--sni", "other.name"),
                                "certificate not trusted")
    finally:
        server.close()


def test_tls_against_plain_tcp_fails(listener: socket.socket) -> None:
    server = TcpServer(banner=b"plain text\r\n")
    try:
        assert_one_line_failure(run("ka-check-port", f"127.0.0.1:{server.port}", "--tls", "--insecure"),
                                "TLS handshake failed")
    finally:
        server.close()


@pytest.mark.parametrize("args, fragment", [
    ((), "missing HOST:PORT"),
    (("127.0.0.1",), "missing :PORT"),
    (("127.0.0.1:0",), "not a number from 1 to 65535"),
    (("127.0.0.1:99999",), "not a number from 1 to 65535"),
    (("127.0.0.1:http",), "not a number from 1 to 65535"),
    (("::1:80",), "put an IPv6 address in brackets"),
    (("[::1:80",), "needs a closing ']'"),
    ((":80",), "missing host"),
    (("127.0.0.1:80", "--insecure"), "--insecure needs --tls"),
    (("127.0.0.1:80", "--cert-days", "5"), "--cert-days needs --tls"),
    (("127.0.0.1:80", "--tls", "--cert-days", "-1"), "must not be negative"),
    (("127.0.0.1:80", "--listening", "--send", "x"), "cannot be combined"),
    (("127.0.0.1:80", "--send", r"\q"), "unknown escape"),
    (("127.0.0.1:80", "--tls", "--ca", "/nonexistent/ca.pem"), "--ca /nonexistent/ca.pem: cannot load"),
    (("127.0.0.1:80", "--timeout", "soon"), "not a number"),
])
def test_bad_input_is_one_line_and_exit_1(args: tuple[str, ...], fragment: str) -> None:
    assert_one_line_failure(run("ka-check-port", *args), fragment)
