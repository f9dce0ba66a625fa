"""Hostile endpoints and hostile numbers: a channel never hangs or grows, a config never crashes."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from kahooks.notify.delivery import TemporaryFailure
from tests.support.netservers import RawPeer
from tests.support.notify import worker_for, write_config
from tests.support.programs import assert_one_line_failure, kill_mentioning, run
from tests.support.serve import Served, head


def trickle_chunks(connection: socket.socket, stopping: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(200):  # bounded: 40 s at most, far past any timeout here
        if stopping.wait(0.2):
            return
        connection.sendall(b"1\r\nx\r\n")


def trickle_headers(connection: socket.socket, stopping: threading.Event) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 400:
        if stopping.wait(0.05):
            return
        connection.sendall(bytes([byte]))


def endless_body(connection: socket.socket, stopping: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"z" * 0x10000 + b"\r\n"
    for _ in range(20000):  # bounded: 1.3 GB at most
        if stopping.is_set():
            return
        connection.sendall(chunk)


@pytest.mark.parametrize("behave", [trickle_chunks, trickle_headers, endless_body])
def test_a_hostile_http_endpoint_is_bounded_in_time_and_memory(behave) -> None:
    from kahooks.notifiers._http import post

    server = RawPeer(behave, timeout=None)
    try:
        started = time.monotonic()
        with pytest.raises(TemporaryFailure):
            post(f"http://127.0.0.1:{server.port}/hook", 1.0, json_body={"text": "x"}, expect_text="ok")
        took = time.monotonic() - started
    finally:
        server.close()
    assert took < 1 + 2.0, f"the channel was held {took:.1f} s with a 1 s timeout"  # 20-40 s without it


def test_retry_after_is_honoured_past_backoff_max(tmp_path: Path) -> None:
    def too_many(connection: socket.socket, stopping: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 600\r\nContent-Length: 0\r\n\r\n")

    server = RawPeer(too_many, timeout=None)
    try:
        config = write_config(tmp_path, f'[channels.chat]\ntype = "slack"\nurl = "http://127.0.0.1:{server.port}/x"\n',
                              delivery="flap_window = 0\nbackoff_max = 1")
        _, spool, worker = worker_for(config)
        from kahooks.events.event import Event

        spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
        worker.fan_out_pending()
        worker.channel_pass("chat")
        waiting = spool.queued("chat")[0]
    finally:
        server.close()
    assert 590 < waiting.next_attempt - time.time() <= 600, waiting.next_attempt - time.time()


NUMBERS = """\
spool_dir = "{dir}/spool"

[delivery]
max_age = inf
flap_window = nan

[instances.VI_1]
vips = ["192.0.2.10/33"]

[channels.mail]
type = "exec"
command = ["true"]
body = "{{{{ name }}}}"
timeout = 1e300

[channels.log]
type = "exec"
command = ["true"]
subject = "{{{{ instnace }}}}"

[[rules]]
channels = ["log", "mail"]
"""


def test_nan_inf_huge_numbers_and_bad_prefixes_are_problems_with_their_lines(tmp_path: Path) -> None:
    config = tmp_path / "kahooks.toml"
    config.write_text(NUMBERS.format(dir=tmp_path))
    result = run("kahooks", "validate", "-c", str(config))
    assert result.code == 1 and "Traceback" not in result.stderr, result
    problems = result.stderr.strip().splitlines()
    text = config.read_text().splitlines()

    def line_of(fragment: str) -> int:
        return next(number for number, line in enumerate(text, 1) if line.startswith(fragment))

    for key, fragment in (("delivery.max_age", "max_age"), ("delivery.flap_window", "flap_window"),
                          ("instances.VI_1.vips[0]", "vips"), ("channels.mail.timeout", "timeout"),
                          ("channels.log.subject", "subject")):
        assert any(f":{line_of(fragment)}: {key}:" in problem for problem in problems), (key, problems)


def test_a_reload_with_nan_is_refused_and_the_daemon_lives(tmp_path: Path) -> None:
    with Served(tmp_path, head(tmp_path)) as served:
        served.config.write_text(head(tmp_path).replace("flap_window = 0", "flap_window = nan"))
        served.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in served.log_text(), 5, "the reload to be refused")
        beat = served.heartbeat()
        wait_for(lambda: served.heartbeat() > beat, 3, "the heartbeat to go on")
        assert served.process.poll() is None
    assert "Traceback" not in served.log_text()


@pytest.mark.parametrize("argv, fragment", [
    (("ka-check-port", "-t", "1e300", "127.0.0.1:1"), "--timeout"),
    (("ka-check-port", "-t", "nan", "127.0.0.1:1"), "--timeout"),
    (("ka-check-exec", "--kill-grace", "inf", "--", "true"), "--kill-grace"),
])
def test_hostile_numbers_on_a_command_line_are_one_line_failures(argv, fragment) -> None:
    assert_one_line_failure(run(*argv), fragment)


def test_without_syslog_a_detached_worker_still_says_what_failed(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[channels.fails]\ntype = "exec"\ncommand = ["/bin/sh", "-c", "echo nope; exit 7"]\n',
                          delivery="flap_window = 0\nworker_idle_exit = 1\nbackoff_initial = 0.1")
    try:
        result = run("ka-notify", "-c", str(config), "INSTANCE", "VI_1", "MASTER", "100")  # no syslog socket
        assert result.code == 0, result
        log = tmp_path / "spool" / "state" / "worker.log"
        wait_for(lambda: log.exists() and "not delivered" in log.read_text(), 10, "the failure in worker.log")
        assert "exited 7: nope" in log.read_text()
    finally:
        kill_mentioning("notify_cli", "worker", str(config))
