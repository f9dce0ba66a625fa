"""ka-check-http against real HTTP(S) servers on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.netservers import HttpServer, free_port
from tests.support.programs import assert_one_line_failure, assert_timed_out, run


def test_ok(http_server: HttpServer) -> None:
    outcome = run("ka-check-http", http_server.url("/ok"))
    assert outcome.code == 0, outcome
    assert outcome.line.startswith(f"OK: 200 from {http_server.url('/ok')} in "), outcome


def test_error_status_fails(http_server: HttpServer) -> None:
    assert_one_line_failure(run("ka-check-http", http_server.url("/status/503")),
                            f"503 from {http_server.url('/status/503')}", "(accepted: 200-399)")


def test_status_sets(http_server: HttpServer) -> None:
    assert run("ka-check-http", http_server.url("/status/204"), "--status", "200,204").code == 0
    assert run("ka-check-http", http_server.url("/status/404"), "--status", "200,400-404").code == 0
    assert_one_line_failure(run("ka-check-http", http_server.url("/status/301"), "--status", "200"),
                            "(accepted: 200)")


def test_redirects_only_followed_when_asked(http_server: HttpServer) -> None:
    assert_one_line_failure(run("ka-check-http", http_server.url("/redirect"), "--status", "200"), "302 from")
    ok = run("ka-check-http", http_server.url("/redirect"), "--status", "200", "--follow", "--contains", "healthy")
    assert ok.code == 0 and f"200 from {http_server.url('/ok')}" in ok.line, ok
    assert_one_line_failure(run("ka-check-http", http_server.url("/redirect-loop"), "--follow", "--status", "200"),
                            "more than 5 redirects")


def test_body_contains_and_regex(http_server: HttpServer) -> None:
    assert run("ka-check-http", http_server.url("/ok"), "--contains", "service healthy").code == 0
    assert run("ka-check-http", http_server.url("/ok"), "--regex", r"^service \w+$").code == 0
    assert_one_line_failure(run("ka-check-http", http_server.url("/ok"), "--contains", "database up"),
                            "the body lacks 'database up'")
    assert_one_line_failure(run("ka-check-http", http_server.url("/ok"), "--regex", "^down"),
                            "does not match /^down/")


def test_headers_virtual_host_and_method(http_server: HttpServer) -> None:
    outcome = run("ka-check-http", http_server.url("/headers"), "--header", "X-Probe: keepalived",
                  "--host", "www.example.test", "--contains", "X-Probe: keepalived")
    assert outcome.code == 0, outcome
    method, path, headers = http_server.requests[-1]
    assert (method, path) == ("GET", "/headers")
    assert headers["Host"] == "www.example.test"
    assert headers["User-Agent"].startswith("kahooks/")
    assert run("ka-check-http", http_server.url("/ok"), "--method", "head").code == 0
    assert http_server.requests[-1][0] == "HEAD"
    run("ka-check-http", http_server.url("/headers"), "--header", "Host: override.test")
    assert http_server.requests[-1][2]["Host"] == "override.test"


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    assert_one_line_failure(run("ka-check-http", url), url, "connection refused")


def test_slow_server_fails_within_the_timeout(http_server: HttpServer) -> None:
    outcome = run("ka-check-http", http_server.url("/slow"), "--timeout", "0.3")
    assert_timed_out(outcome, 0.3, "no response within 0.3 s", where=("127.0.0.1",))
    # From the exec: the interpreter's own start counts, up to a second on a loaded machine (1.28 s seen
    # once with two suites in parallel); the server answers after 5 s.
    assert outcome.seconds < 0.3 + 2.5, outcome.seconds


def test_dripping_body_cannot_outlive_the_timeout(http_server: HttpServer) -> None:
    # Each read returns a byte in time, but the whole body would take 5 s.
    outcome = run("ka-check-http", http_server.url("/drip"), "--timeout", "0.4", "--contains", "y")
    # Which words depends on where the deadline falls: inside a read ("no response within 0.4 s") or between
    # two reads ("reading the body: timed out after 400 ms"); both are the same 0.4 s budget.
    if "reading the body" in outcome.line:
        assert_timed_out(outcome, 0.4, "reading the body: timed out after 400 ms")
    else:
        assert_timed_out(outcome, 0.4, "no response within 0.4 s")
    assert outcome.seconds < 0.4 + 2.5, outcome.seconds  # from the exec (1.11 s seen in CI's parallel legs); the body takes 5 s


def test_https_verification(https_server: HttpServer, certs: dict[str, tuple[Path, Path]]) -> None:
    cert, _ = certs["short"]
    url = https_server.url("/ok")
    assert_one_line_failure(run("ka-check-http", url), "certificate not trusted")
    assert run("ka-check-http", url, "--ca", str(cert)).code == 0
    assert run("ka-check-http", url, "--insecure").code == 0
    ok = run("ka-check-http", url, "--ca", str(cert), "--cert-days", "2")
    assert ok.code == 0 and "certificate valid for" in ok.line, ok
    assert_one_line_failure(run("ka-check-http", url, "--insecure", "--cert-days", "14"),
                            "certificate expires in ", "(< 14)")
    # The virtual host is also the TLS name that is verified.
    assert_one_line_failure(run("ka-check-http", url, "--ca", str(cert), "--host", "other.test"),
                            "certificate not trusted")


@pytest.mark.parametrize("args, fragment", [
    ((), "missing URL"),
    (("ftp://127.0.0.1/",), "must start with http:// or https://"),
    (("http:///path",), "has no host"),
    (("http://127.0.0.1:99999/",), "has a bad port"),
    (("http://127.0.0.1/", "--status", "2xx"), "is not a number or a range"),
    (("http://127.0.0.1/", "--header", "NoColon"), "expected 'Name: value'"),
    (("http://127.0.0.1/", "--method", "GET /x"), "not an HTTP method"),
    (("http://127.0.0.1/", "--method", "HEAD", "--contains", "x"), "HEAD has none"),
    (("http://127.0.0.1/", "--cert-days", "3"), "need an https:// URL"),
    (("https://127.0.0.1/", "--ca", "/nonexistent.pem"), "cannot load"),
    (("http://127.0.0.1/", "--regex", "[z-a]"), "bad regular expression"),
])
def test_bad_input_is_one_line_and_exit_1(args: tuple[str, ...], fragment: str) -> None:
    assert_one_line_failure(run("ka-check-http", *args), fragment)
