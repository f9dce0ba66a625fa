"""Prometheus metrics of the daemon: text exposition format, served on HTTP and/or written as a textfile.

Rendered from the same snapshot that `kahooks status` reads, so the two never
disagree, by prometheus_client (names, escaping and number formats as
Prometheus parses them); imported by the daemon only, never on a check's path.
The HTTP server answers GET /metrics only; bind it to loopback (the
default in the examples) and let node-exporter or a local agent scrape it.
"""

from __future__ import annotations

import logging
import threading
from itertools import accumulate
from typing import TYPE_CHECKING

from prometheus_client.utils import floatToGoString

from kahooks.daemon.verdict import LATENCY_BUCKETS
from kahooks.errors import os_words
from kahooks.events.event import VRRP_STATES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

    from kahooks.daemon.snapshot import Snapshot

log = logging.getLogger("kahooks.serve")


BUCKET_LABELS = [*(floatToGoString(bound) for bound in LATENCY_BUCKETS), "+Inf"]  # the histogram's le values


class SnapshotCollector:
    """A prometheus_client collector over one snapshot: every family, built at each scrape."""

    def __init__(self, snapshot: Snapshot, spool: dict[str, Any] | None, as_text: bool = False) -> None:
        """`as_text`: what `render` writes, the same families as _Rows and the check families as their text
        (a sample object and a label dict per series cost most of a scrape: 19 series a check)."""
        self.snapshot = snapshot
        self.spool = spool or {}
        self.as_text = as_text

    def _gauge(self, name: str, documentation: str, labels: list[str] | None = None) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        if self.as_text:
            return _Rows("gauge", name, documentation, labels)
        return GaugeMetricFamily(name, documentation, labels=labels)

    def _counter(self, name: str, documentation: str, labels: list[str] | None = None) -> Any:
        from prometheus_client.core import CounterMetricFamily

        if self.as_text:
            return _Rows("counter", name, documentation, labels)
        return CounterMetricFamily(name, documentation, labels=labels)

    def collect(self) -> Iterator[Any]:
        snapshot = self.snapshot
        yield from self._identity()
        yield from self._vrrp()
        if self.as_text:
            yield _checks_text(snapshot["checks"])
        else:
            yield from self._checks()
        yield from self._wire()
        maintenance = self._gauge("kahooks_maintenance", "1 while a maintenance file drains this node")
        maintenance.add_metric([], 1 if snapshot["maintenance"] else 0)
        yield maintenance
        deliveries = self._counter("kahooks_deliveries", "notification delivery attempts, by channel and outcome",
                                   labels=["channel", "outcome"])
        for item in snapshot["delivery_counts"]:
            deliveries.add_metric([item["channel"], item["outcome"]], item["count"])
        yield deliveries
        threads = snapshot["threads"]
        up = self._gauge("kahooks_thread_up", "1 while the daemon's thread runs, 0 while it restarts or stopped",
                         labels=["thread"])
        restarts = self._counter("kahooks_thread_restarts", "times a thread died and was started again",
                                 labels=["thread"])
        for name, thread in threads.items():
            up.add_metric([name], 1 if thread["state"] == "running" else 0)
            restarts.add_metric([name], thread["restarts"])
        yield up
        yield restarts
        yield from self._spool()
        heartbeat = self._gauge("kahooks_heartbeat_timestamp_seconds", "when the daemon last wrote its heartbeat")
        heartbeat.add_metric([], snapshot["heartbeat"])
        yield heartbeat

    def _identity(self) -> Iterator[Any]:
        import platform

        from kahooks import __version__

        info = self._gauge("kahooks_build_info", "always 1: the kahooks version and Python that run here",
                           labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        started = self._gauge("kahooks_start_time_seconds", "when this kahooks serve started")
        started.add_metric([], self.snapshot["started"])
        yield started

    def _vrrp(self) -> Iterator[Any]:
        """The VRRP instance's label is `iname`, as keepalived-exporter names it: Prometheus gives every
        scraped series an `instance` label of its own (the target), which would rename ours."""
        instances = self.snapshot.get("instances", {})
        state = self._gauge("kahooks_vrrp_state", "1 for the state keepalived last reported for the instance "
                            "(or sync group), 0 for the others", labels=["iname", "state"])
        since = self._gauge("kahooks_vrrp_last_transition_timestamp_seconds",
                            "when keepalived reported the instance's current state", labels=["iname"])
        for name, current in instances.items():
            for candidate in VRRP_STATES:
                state.add_metric([name, candidate], 1 if current["state"] == candidate else 0)
            since.add_metric([name], current["since"])
        yield state
        yield since
        transitions = self._counter("kahooks_vrrp_transitions", "VRRP transitions seen, by instance and state",
                                    labels=["iname", "state"])
        for item in self.snapshot["transition_counts"]:
            transitions.add_metric([item["instance"], item["state"]], item["count"])
        yield transitions

    def _wire(self) -> Iterator[Any]:
        """The wire observer: one series per finding kind and local instance (0 or 1, so that a rule's
        `for:` sees it begin), and what it has heard."""
        from kahooks.daemon.segment import KINDS

        wire = self.snapshot.get("wire")
        if not wire or not wire["enabled"]:
            return
        finding = self._gauge("kahooks_wire_finding", "1 while the wire observer reports this finding for "
                              "the local instance (kind: " + ", ".join(KINDS) + ")",
                              labels=["kind", "iname", "vrid", "iface"])
        active = {(item["kind"], item["instance"]) for item in wire["findings"]}
        for instance in wire["instances"]:
            for kind in KINDS:
                finding.add_metric([kind, instance["instance"], str(instance["vrid"]), instance["interface"]],
                                   1 if (kind, instance["instance"]) in active else 0)
        yield finding
        sources = self._gauge("kahooks_wire_sources", "sources heard advertising the local instance's VRID "
                              "in the last minute (this node included)", labels=["iname"])
        named = {item["instance"]: len(item["sources"]) for item in wire["vrids"] if item["instance"]}
        for instance in wire["instances"]:
            sources.add_metric([instance["instance"]], named.get(instance["instance"], 0))
        yield sources
        up = self._gauge("kahooks_wire_listening", "1 while the observer hears the interface", labels=["iface"])
        for name, state in wire["interfaces"].items():
            up.add_metric([name], 1 if state == "listening" else 0)
        yield up
        packets = self._counter("kahooks_wire_packets", "packets the kernel's filter let through to the "
                                "observer, by what they were", labels=["kind"])
        for kind in ("adverts", "arps", "ignored"):
            packets.add_metric([kind], wire[kind])  # type: ignore[literal-required]  # the three counters
        yield packets
        dropped = self._counter("kahooks_wire_dropped", "packets the kernel dropped for the observer "
                                "(a flood past its budget)")
        dropped.add_metric([], wire["dropped"])
        yield dropped

    def _checks(self) -> Iterator[Any]:
        """The check families as prometheus_client builds them: what render's own text must equal."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        kinds = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily, "histogram": HistogramMetricFamily}
        families = [kinds[kind](name, documentation) for name, kind, documentation in CHECK_FAMILIES]
        for name, check in self.snapshot["checks"].items():
            for family, series, values in zip(families, _check_series(name, check["track_file"]),
                                              _check_values(check)):
                for (sample, labels), value in zip(series, values):
                    family.add_sample(sample, labels, value)
        yield from families

    def _spool(self) -> Iterator[Any]:
        import time

        spool = self.spool
        if not spool:
            return
        incoming = self._gauge("kahooks_spool_incoming", "recorded events not yet fanned out")
        incoming.add_metric([], spool["incoming"])
        queued = self._gauge("kahooks_spool_queued", "deliveries waiting, by channel", labels=["channel"])
        for channel, count in sorted(spool["queued"].items()):
            queued.add_metric([channel], count)
        dead = self._gauge("kahooks_spool_dead", "deliveries given up on (in the spool's dead/)")
        dead.add_metric([], spool["dead"])
        dead_letters = self._gauge("kahooks_spool_dead_letters", "deliveries given up on, by channel",
                                   labels=["channel"])
        for channel, count in sorted(spool.get("dead_by_channel", {}).items()):
            dead_letters.add_metric([channel], count)
        oldest = self._gauge("kahooks_spool_oldest_age_seconds",
                             "age of the oldest event or delivery still waiting (0 when none waits)")
        oldest.add_metric([], max(0.0, time.time() - spool["oldest"]) if spool.get("oldest") else 0.0)
        yield from (incoming, queued, dead, dead_letters, oldest)


def render(snapshot: Snapshot, spool: dict[str, Any] | None = None) -> str:
    """The snapshot (see Daemon.snapshot) as Prometheus text format 0.0.4.

    The families are prometheus_client's; the text is what its generate_latest writes, byte for
    byte (a test holds the two equal), written here with each series' `name{labels}` kept from one
    scrape to the next: prometheus_client 0.20 and later check every name again on every sample,
    which took 15 ms a scrape for 50 checks and held the interpreter away from the checks' threads.
    The check families, 19 series a check, are written straight from the snapshot (a sample object
    and a label dict per series cost 1.5 ms a scrape for 50 checks).
    """
    return expose(SnapshotCollector(snapshot, spool, as_text=True).collect())


# floatToGoString(n) is f"{n}.0" for the whole numbers from -10**15 to 10**6 (most samples are counts):
# that test is written inline where each sample is written, a call per sample being a fifth of the render.

# The check families in the order they are written: (name, type, help). _check_series and
# _check_values give each one's series and values for one check, in the same order.
CHECK_FAMILIES = (
    ("kahooks_check_up", "gauge", "1 while the check is judged healthy, 0 while failed or unknown"),
    ("kahooks_check_track_value", "gauge", "the value last written to the check's track file"),
    ("kahooks_check_last_duration_seconds", "gauge", "how long the last probe took"),
    ("kahooks_check_duration_seconds", "histogram", "time spent probing"),
    ("kahooks_check_runs", "counter", "probes run, by result"),
    ("kahooks_check_changes", "counter", "times the judged state changed"),
)


def _check_series(name: str, track_file: str) -> tuple[tuple[tuple[str, dict[str, str]], ...], ...]:
    """Each check family's (sample name, labels) for one check."""
    by_check = {"check": name}
    return ((("kahooks_check_up", by_check),),
            (("kahooks_check_track_value", {"check": name, "file": track_file}),),
            (("kahooks_check_last_duration_seconds", by_check),),
            (*(("kahooks_check_duration_seconds_bucket", {"check": name, "le": bound}) for bound in BUCKET_LABELS),
             ("kahooks_check_duration_seconds_count", by_check), ("kahooks_check_duration_seconds_sum", by_check)),
            (("kahooks_check_runs_total", {"check": name, "result": "ok"}),
             ("kahooks_check_runs_total", {"check": name, "result": "fail"})),
            (("kahooks_check_changes_total", by_check),))


def _check_values(check: Any) -> tuple[list[Any], ...]:
    """Each check family's values for one check (no track value: no track series)."""
    buckets = list(accumulate(check["latency_buckets"][:len(BUCKET_LABELS)]))
    return ([1 if check["ok"] else 0], [] if check["value"] is None else [check["value"]],
            [check["last"]["latency"]], [*buckets, buckets[-1] if buckets else 0, check["latency_total"]],
            [check["runs"] - check["failures"], check["failures"]], [check["changes"]])


_check_prefixes: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {}  # (check, track file) -> 'series ' by family


def _checks_text(checks: dict[str, Any]) -> str:
    """The check families' text, as expose writes them from _checks' families."""
    lines: list[list[str]] = [[] for _ in CHECK_FAMILIES]
    for name, check in checks.items():
        key = (name, check["track_file"])
        prefixes = _check_prefixes.get(key)
        if prefixes is None:
            if len(_check_prefixes) > SERIES_CACHE_LIMIT:
                _check_prefixes.clear()
            prefixes = _check_prefixes[key] = tuple(tuple(f"{_series(sample, labels)} " for sample, labels in series)
                                                    for series in _check_series(*key))
        for out, family, values in zip(lines, prefixes, _check_values(check)):
            out += [f"{prefix}{value}.0\n" if type(value) is int and -10**15 < value < 1_000_000  # as _number
                    else f"{prefix}{floatToGoString(value)}\n" for prefix, value in zip(family, values)]
    return "".join(_header(name, kind, documentation) + "".join(family)
                   for (name, kind, documentation), family in zip(CHECK_FAMILIES, lines))


_series_text: dict[tuple[Any, ...], str] = {}  # (sample name, labels...) -> 'name{label="value",...}'
SERIES_CACHE_LIMIT = 20000  # labels come from configured names: a reload can add some, never a flood


class _Rows:
    """A gauge or counter family as render writes it: prometheus_client's add_metric, the samples kept as
    (label values, value), each series' text kept from one scrape to the next (`_rows_text`)."""

    __slots__ = ("type", "name", "documentation", "sample", "labels", "rows")

    def __init__(self, kind: str, name: str, documentation: str, labels: list[str] | None) -> None:
        self.type, self.name, self.documentation = kind, name, documentation
        self.sample = f"{name}_total" if kind == "counter" else name
        self.labels = tuple(labels or ())
        self.rows: list[tuple[tuple[str, ...], Any]] = []

    def add_metric(self, labels: list[str], value: Any) -> None:
        self.rows.append((tuple(labels), value))

    def text(self) -> str:
        output = [_header(self.name, self.type, self.documentation)]
        sample = self.sample
        for labels, value in self.rows:
            key = (sample, labels)
            series = _rows_text.get(key)
            if series is None:
                if len(_rows_text) > SERIES_CACHE_LIMIT:
                    _rows_text.clear()
                series = _rows_text[key] = f"{_series(sample, dict(zip(self.labels, labels)))} "
            output.append(f"{series}{value}.0\n" if type(value) is int and -10**15 < value < 1_000_000  # as _number
                          else f"{series}{floatToGoString(value)}\n")
        return "".join(output)


_rows_text: dict[tuple[str, tuple[str, ...]], str] = {}  # (sample name, label values) -> 'name{labels} '


def expose(families: Iterable[Any]) -> str:
    """prometheus_client metric families (or _Rows, or text already written) in the text format, as
    generate_latest writes them."""
    output: list[str] = []
    for family in families:
        if type(family) is str:
            output.append(family)
            continue
        if type(family) is _Rows:
            output.append(family.text())
            continue
        output.append(_header(family.name, family.type, family.documentation))
        for sample in family.samples:
            key = (sample.name, *sample.labels.items())
            series = _series_text.get(key)
            if series is None:
                if len(_series_text) > SERIES_CACHE_LIMIT:
                    _series_text.clear()
                series = _series_text[key] = _series(sample.name, sample.labels)
            value = sample.value
            output.append(f"{series} {value}.0\n" if type(value) is int and -10**15 < value < 1_000_000  # as _number
                          else f"{series} {floatToGoString(value)}\n")
    return "".join(output)


def _header(name: str, kind: str, documentation: str) -> str:
    if kind == "counter":
        name += "_total"
    return f"# HELP {name} {_help(documentation)}\n# TYPE {name} {'untyped' if kind == 'unknown' else kind}\n"


def _series(name: str, labels: dict[str, str]) -> str:
    """'name{label="value",...}', labels sorted and escaped as generate_latest writes them."""
    text = ",".join(f'{label}="{_escape(value)}"' for label, value in sorted(labels.items()))
    return f"{name}{{{text}}}" if text else name




def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


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
