"""--nagios as monitoring-plugins do it: WARNING and CRITICAL from -w/-c, perfdata with units.

The reference is in the same test: monitoring-plugins' own check_http and check_tcp (Debian's
monitoring-plugins-basic) against the same real server, with the same thresholds.
"""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

from tests.support.netservers import HttpServer
from tests.support.programs import run

PLUGINS = "/usr/lib/nagios/plugins"
# label=value[UOM];[warn];[crit];[min];[max] (monitoring-plugins development guidelines, "Performance data")
PERF = re.compile(r"^(?P<label>[^=\s]+)=(?P<value>-?[\d.]+)(?P<uom>s|ms|us|%|B|KB|MB|TB|c)?"
                  r";(?P<warn>[^;]*);(?P<crit>[^;]*);(?P<min>[^;]*);(?P<max>[^;]*)$")


def perfdata(line: str) -> dict[str, re.Match[str]]:
    text = line.split("|", 1)[1].strip()
    found = {}
    for item in text.split():
        match = PERF.match(item)
        assert match, (item, line)
        found[match.group("label")] = match
    return found


def reference(plugin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([f"{PLUGINS}/{plugin}", *args], capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("warning, critical, status, code", [
    ("1", "2", "OK", 0),
    ("0.000001", "2", "WARNING", 1),
    ("0.000001", "0.000002", "CRITICAL", 2),
])
def test_http_thresholds_agree_with_check_http(http_server: HttpServer, warning: str, critical: str, status: str,
                                               code: int) -> None:
    port = http_server.url("").rsplit(":", 1)[1]
    theirs = reference("check_http", "-H", "127.0.0.1", "-p", port, "-u", "/ok", "-w", warning, "-c", critical)
    ours = run("ka-check-http", http_server.url("/ok"), "--nagios", "-w", warning, "-c", critical, "--no-syslog")
    assert theirs.returncode == code, theirs.stdout
    assert ours.code == code and ours.line.startswith(f"HTTP {status} - "), ours
    mine, reference_data = perfdata(ours.line), perfdata(theirs.stdout)
    for label in ("time", "size"):
        assert mine[label].group("uom") == reference_data[label].group("uom")  # s and B
    assert (mine["time"].group("warn"), mine["time"].group("crit")) == (warning, critical)
    assert float(mine["time"].group("min")) == 0 and float(mine["time"].group("max")) == 0.8  # the timeout
    # ka-check-http counts the body (Content-Length: it does not read what it need not); check_http
    # counts the whole response, headers included.
    assert int(mine["size"].group("value")) == len(b"service healthy\n")
    assert int(reference_data["size"].group("value")) > int(mine["size"].group("value"))


def test_tcp_thresholds_agree_with_check_tcp() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = str(listener.getsockname()[1])
    try:
        for warning, critical, code in (("1", "2", 0), ("0.0000001", "2", 1), ("0.0000001", "0.0000002", 2)):
            theirs = reference("check_tcp", "-H", "127.0.0.1", "-p", port, "-w", warning, "-c", critical)
            ours = run("ka-check-port", f"127.0.0.1:{port}", "--nagios", "-w", warning, "-c", critical, "--no-syslog")
            assert (theirs.returncode, ours.code) == (code, code), (theirs.stdout, ours)
            assert perfdata(ours.line)["time"].group("uom") == perfdata(theirs.stdout)["time"].group("uom") == "s"
    finally:
        listener.close()


@pytest.mark.parametrize("args, line", [
    (("-w", "1"), "FAIL: ka-check-http: -w/-c are for --nagios"),
    (("--nagios", "-w", "soon"), "HTTP UNKNOWN - ka-check-http: --warning 'soon': not a range"),
    (("--nagios", "-c", "5:1"), "the start is above the end"),
])
def test_bad_thresholds(http_server: HttpServer, args: tuple[str, ...], line: str) -> None:
    outcome = run("ka-check-http", http_server.url("/ok"), *args, "--no-syslog")
    assert outcome.code in (1, 3) and line in outcome.line, outcome
