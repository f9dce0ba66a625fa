"""Prometheus metrics of the daemon: text exposition format, served on HTTP and/or written as a textfile.

Rendered from the same snapshot that `kahooks status` reads, so the two never
disagree. The HTTP server answers GET /metrics only; bind it to loopback (the
default in the examples) and let node-exporter or a local agent scrape it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from kahooks.errors import os_words

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kahooks.daemon.snapshot import Snapshot

log = logging.getLogger("kahooks.serve")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    """A sample value in the exposition format: integers exactly, floats with every digit (repr),
    never '{:g}', which rounds a Unix time to six digits (an hour off)."""
    import math

    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items()) + "}"


def render(snapshot: Snapshot, spool: dict[str, Any] | None = None) -> str:
    """The snapshot (see Daemon.snapshot) as Prometheus text format 0.0.4."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {_value(value)}")

    checks = snapshot["checks"]
    family("kahooks_check_up", "gauge", "1 while the check is judged healthy, 0 while failed or unknown",
           [(_labels(check=name), 1 if check["ok"] else 0) for name, check in checks.items()])
    family("kahooks_check_track_value", "gauge", "the value last written to the check's track file",
           [(_labels(check=name, file=check["track_file"]), check["value"])
            for name, check in checks.items() if check["value"] is not None])
    family("kahooks_check_last_duration_seconds", "gauge", "how long the last probe took",
           [(_labels(check=name), check["last"]["latency"]) for name, check in checks.items()])
    lines.append("# HELP kahooks_check_duration_seconds time spent probing")
    lines.append("# TYPE kahooks_check_duration_seconds summary")
    for name, check in checks.items():
        lines.append(f"kahooks_check_duration_seconds_sum{_labels(check=name)} {_value(check['latency_total'])}")
        lines.append(f"kahooks_check_duration_seconds_count{_labels(check=name)} {check['runs']}")
    family("kahooks_check_runs_total", "counter", "probes run, by result",
           [(_labels(check=name, result=result), value) for name, check in checks.items()
            for result, value in (("ok", check["runs"] - check["failures"]), ("fail", check["failures"]))])
    family("kahooks_check_changes_total", "counter", "times the judged state changed",
           [(_labels(check=name), check["changes"]) for name, check in checks.items()])
    family("kahooks_maintenance", "gauge", "1 while a maintenance file drains this node",
           [("", 1 if snapshot["maintenance"] else 0)])
    family("kahooks_vrrp_transitions_total", "counter", "VRRP transitions seen, by instance and state",
           [(_labels(instance=item["instance"], state=item["state"]), item["count"])
            for item in snapshot["transition_counts"]])
    family("kahooks_deliveries_total", "counter", "notification delivery attempts, by channel and outcome",
           [(_labels(channel=item["channel"], outcome=item["outcome"]), item["count"])
            for item in snapshot["delivery_counts"]])
    threads = snapshot["threads"]
    family("kahooks_thread_up", "gauge", "1 while the daemon's thread runs, 0 while it restarts or stopped",
           [(_labels(thread=name), 1 if thread["state"] == "running" else 0) for name, thread in threads.items()])
    family("kahooks_thread_restarts_total", "counter", "times a thread died and was started again",
           [(_labels(thread=name), thread["restarts"]) for name, thread in threads.items()])
    spool = spool or {}
    if spool:
        family("kahooks_spool_incoming", "gauge", "recorded events not yet fanned out", [("", spool["incoming"])])
        family("kahooks_spool_queued", "gauge", "deliveries waiting, by channel",
               [(_labels(channel=channel), count) for channel, count in sorted(spool["queued"].items())])
        family("kahooks_spool_dead", "gauge", "deliveries given up on (in the spool's dead/)",
               [("", spool["dead"])])
    family("kahooks_heartbeat_timestamp_seconds", "gauge", "when the daemon last wrote its heartbeat",
           [("", snapshot["heartbeat"])])
    return "\n".join(lines) + "\n"


MAX_CONNECTIONS = 32        # scrapers are few; more at once are turned away, never queued in memory
REQUEST_LIMIT = 8192        # a GET line and a few headers
CONNECTION_TIME = 5.0       # the whole exchange, from accept to the last byte sent


class MetricsServer:
    """GET /metrics on (host, port); the body comes from `produce()` at each scrape.

    One thread and one selector, so a client costs one descriptor and no thread. Nothing a
    client does can reach the checks or the heartbeat: at most MAX_CONNECTIONS are open
    (others are closed at once), each has CONNECTION_TIME in all to send its request and
    read the answer, and a request over REQUEST_LIMIT bytes is dropped. Idle connections
    that once exhausted the daemon's descriptors now cost a bounded few.
    """

    def __init__(self, address: tuple[str, int], produce: Callable[[], str]) -> None:
        import selectors
        import socket

        self.produce = produce
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(address)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.connections: dict[Any, _Exchange] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        for connection in list(self.connections):
            self._close(connection)
        self.selector.close()
        self.listener.close()

    def _serve(self) -> None:
        import time

        while not self.stopping.is_set():
            try:
                events = self.selector.select(0.2)
                for key, mask in events:
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._step(key.fileobj, mask)
                now = time.monotonic()
                for connection, exchange in list(self.connections.items()):
                    if now > exchange.deadline:
                        self._close(connection)
            except Exception:  # one bad client must not end metrics for good
                log.exception("metrics: serving failed")

    def _accept(self) -> None:
        import selectors
        import time

        for _ in range(64):
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the backlog keeps them; try later
                log.warning("metrics: cannot accept: %s", os_words(exc))
                return
            if len(self.connections) >= MAX_CONNECTIONS:
                connection.close()
                continue
            connection.setblocking(False)
            self.connections[connection] = _Exchange(time.monotonic() + CONNECTION_TIME)
            self.selector.register(connection, selectors.EVENT_READ)

    def _step(self, connection: Any, mask: int) -> None:
        import selectors

        exchange = self.connections.get(connection)
        if exchange is None:
            return
        try:
            if exchange.answer is None:
                chunk = connection.recv(4096)
                if not chunk:
                    self._close(connection)
                    return
                exchange.request += chunk
                if b"\r\n\r\n" not in exchange.request and b"\n\n" not in exchange.request:
                    if len(exchange.request) > REQUEST_LIMIT:
                        self._close(connection)
                    return
                exchange.answer = self._answer(exchange.request)
                self.selector.modify(connection, selectors.EVENT_WRITE)
            sent = connection.send(exchange.answer)
            exchange.answer = exchange.answer[sent:]
            if not exchange.answer:
                self._close(connection)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)

    def _answer(self, request: bytes) -> bytes:
        line = request.split(b"\n", 1)[0].decode("latin-1").split()
        if len(line) < 2 or line[0] not in ("GET", "HEAD"):
            return _response(405, "text/plain", b"only GET /metrics is here\n")
        if line[1].split("?")[0] != "/metrics":
            return _response(404, "text/plain", b"only /metrics is here\n")
        body = self.produce().encode()
        return _response(200, "text/plain; version=0.0.4; charset=utf-8", b"" if line[0] == "HEAD" else body,
                         len(body))

    def _close(self, connection: Any) -> None:
        self.connections.pop(connection, None)
        try:
            self.selector.unregister(connection)
        except (KeyError, ValueError):
            pass
        connection.close()


class _Exchange:
    __slots__ = ("deadline", "request", "answer")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.request = b""
        self.answer: bytes | None = None


def _response(status: int, content_type: str, body: bytes, length: int | None = None) -> bytes:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n")
    return head.encode() + body
