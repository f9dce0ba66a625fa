"""The checks as keepalived's MISC_CHECK runs them for an LVS real server (seed 003).

keepalived 2.2.7 check/check_misc.c: without misc_dynamic, exit 0 is up and anything else down;
with misc_dynamic, 0 is up, 1 is down, and 2-255 is up with weight status-2. So a check may exit
0, 1 or (with --dynamic-weight) 3-255: never 2 (up with weight 0), and never a code above 1 for
a failure, whatever the failure. Real HTTP and TCP servers on loopback.
"""

from __future__ import annotations

import socket

import pytest

from tests.support.netservers import HttpServer, free_port
from tests.support.programs import run


def weight_of(code: int) -> int:
    assert 3 <= code <= 255, code
    return code - 2


def test_a_fast_server_earns_more_weight_than_a_slow_one(http_server: HttpServer) -> None:
    fast = run("ka-check-http", http_server.url("/ok"), "--dynamic-weight", "100", "--slow", "0.4", "--no-syslog")
    slow = run("ka-check-http", http_server.url("/delay/300"), "--dynamic-weight", "100", "--slow", "0.4",
               "--no-syslog")
    assert weight_of(fast.code) >= 80, fast
    assert 5 <= weight_of(slow.code) <= 40, slow  # 300 ms of 400: about a quarter of the weight
    assert fast.line.endswith(f"(weight {fast.code - 2})") and slow.line.startswith("OK: 200")


def test_slower_than_slow_still_up_with_weight_1(http_server: HttpServer) -> None:
    outcome = run("ka-check-http", http_server.url("/delay/300"), "--dynamic-weight", "100", "--slow", "0.1",
                  "--no-syslog")
    assert outcome.code == 3, outcome  # weight 1: less traffic, not none


@pytest.mark.parametrize("args", [
    ("ka-check-http", "{url}/status/503"),
    ("ka-check-http", "{url}/slow", "-t", "0.3"),
    ("ka-check-port", "127.0.0.1:{closed}"),
    ("ka-check-http", "{url}/ok", "--dynamic-weight", "0"),
    ("ka-check-http", "{url}/ok", "--slow", "1"),
])
def test_every_failure_is_exit_1_even_with_dynamic_weight(http_server: HttpServer, args: tuple[str, ...]) -> None:
    closed = free_port()
    words = [word.format(url=http_server.url(""), closed=closed) for word in args]
    if "--dynamic-weight" not in words:
        words += ["--dynamic-weight", "100"] if "--slow" not in words else []
    outcome = run(*words, "--no-syslog")
    assert outcome.code == 1, outcome


def test_port_check_weight_from_connect_time() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        outcome = run("ka-check-port", f"127.0.0.1:{listener.getsockname()[1]}", "--dynamic-weight", "200",
                      "--no-syslog")
        assert weight_of(outcome.code) >= 150, outcome
    finally:
        listener.close()


def test_without_dynamic_weight_up_is_0_as_keepalived_expects(http_server: HttpServer) -> None:
    assert run("ka-check-http", http_server.url("/ok"), "--no-syslog").code == 0
