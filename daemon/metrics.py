"""Prometheus metrics of the daemon: text exposition format, served on HTTP and/or written as a textfile.

Rendered from the same snapshot that `kahooks status` reads, so the two never
disagree. The HTTP server answers GET /metrics only; bind it to loopback (the
default in the examples) and let node-exporter or a local agent scrape it.
"""

from __future__ import annotations

import logging
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

log = logging.getLogger("kahooks.serve")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items()) + "}"


def render(snapshot: dict[str, Any]) -> str:
    """The snapshot (see Daemon.snapshot) as Prometheus text format 0.0.4."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value:g}")

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
        lines.append(f"kahooks_check_duration_seconds_sum{_labels(check=name)} {check['latency_total']:g}")
        lines.append(f"kahooks_check_duration_seconds_count{_labels(check=name)} {check['runs']}")
    family("kahooks_check_runs_total", "counter", "probes run, by result",
           [(_labels(check=name, result=result), value) for name, check in checks.items()
            for result, value in (("ok", check["runs"] - check["failures"]), ("fail", check["failures"]))])
    family("kahooks_check_changes_total", "counter", "times the judged state changed",
           [(_labels(check=name), check["changes"]) for name, check in checks.items()])
    family("kahooks_maintenance", "gauge", "1 while a maintenance file drains this node",
           [("", 1 if snapshot["maintenance"] else 0)])
    family("kahooks_vrrp_transitions_total", "counter", "VRRP transitions seen, by instance and state",
           [(_labels(instance=key.split(" ")[0], state=key.split(" ")[1]), value)
            for key, value in sorted(snapshot["transition_counts"].items())])
    family("kahooks_deliveries_total", "counter", "notification delivery attempts, by channel and outcome",
           [(_labels(channel=key.split(" ")[0], outcome=key.split(" ")[1]), value)
            for key, value in sorted(snapshot["delivery_counts"].items())])
    spool = snapshot.get("spool") or {}
    if spool:
        family("kahooks_spool_incoming", "gauge", "recorded events not yet fanned out", [("", spool["incoming"])])
        family("kahooks_spool_queued", "gauge", "deliveries waiting, by channel",
               [(_labels(channel=channel), count) for channel, count in sorted(spool["queued"].items())])
        family("kahooks_spool_dead", "gauge", "deliveries given up on (in the spool's dead/)",
               [("", spool["dead"])])
    family("kahooks_heartbeat_timestamp_seconds", "gauge", "when the daemon last wrote its heartbeat",
           [("", snapshot["heartbeat"])])
    return "\n".join(lines) + "\n"


class MetricsServer:
    """GET /metrics on (host, port), in a thread; the body comes from `produce()` at each scrape."""

    def __init__(self, address: tuple[str, int], produce: Callable[[], str]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is here")
                    return
                body = produce().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a scrape every 15 s is not news

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(address, Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
