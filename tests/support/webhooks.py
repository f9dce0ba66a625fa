"""A local HTTP server that speaks Slack's incoming-webhook contract (and serves generic webhooks).

Slack answers 200 `ok`; when over its rate it answers 429 with Retry-After;
it answers 400 invalid_payload, 404 channel_not_found, 410 channel_is_archived
and sometimes 500. Tests script those replies; everything received is kept.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kahooks.lab.netns import free_port


class Received:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self) -> object:
        return json.loads(self.body)


class WebhookServer:
    """`replies` is consumed first, one per request: (status, body, headers); then 200 `ok`."""

    def __init__(self, path: str = "/services/T000/B000/XXXX", any_path: bool = False) -> None:
        self.path = path
        self.any_path = any_path  # answer every path as `path` (a channel that adds its own, as Alertmanager's)
        self.port = free_port()
        self.replies: list[tuple[int, str, dict[str, str]]] = []
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers: dict[str, str]
                with owner.lock:
                    if self.path != owner.path and not owner.any_path:
                        status, text, headers = 404, "no_service", {}
                    elif owner.replies:
                        status, text, headers = owner.replies.pop(0)
                    else:
                        status, text, headers = 200, "ok", {}
                        owner.received.append(Received(self.command, self.path, dict(self.headers), body))
                payload = text.encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
