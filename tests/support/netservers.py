"""Servers on loopback for the network checks and channels: HTTP(S) with scripted routes, TCP banners,
TLS certs, and raw peers that misbehave on purpose."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from kahooks.lab.netns import free_port  # noqa: F401  (re-exported for the tests)

if TYPE_CHECKING:
    from collections.abc import Callable


def make_certificate(directory: Path, days: int, name: str = "localhost") -> tuple[Path, Path]:
    """A throwaway self-signed certificate valid for `days` days, made by the openssl CLI."""
    cert, key = directory / f"{name}-{days}.crt", directory / f"{name}-{days}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", str(days), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class Handler(BaseHTTPRequestHandler):
    """Routes: /ok, /status/N, /redirect, /delay/MS, /slow, /drip, /headers (echoes request headers)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        self.server.requests.append((self.command, path, dict(self.headers)))
        if path == "/ok":
            self._send(200, b"service healthy\n")
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"status page\n")
        elif path == "/redirect":
            self._send(302, b"", {"Location": "/ok"})
        elif path == "/redirect-loop":
            self._send(302, b"", {"Location": "/redirect-loop"})
        elif path.startswith("/delay/"):  # answers after that many milliseconds (at most 5 s)
            time.sleep(min(5000, int(path.rsplit("/", 1)[1])) / 1000)
            self._send(200, b"after a while\n")
        elif path == "/slow":
            time.sleep(5)
            self._send(200, b"late\n")
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        elif path == "/headers":
            self._send(200, "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode())
        else:
            self._send(404, b"not found\n")

    do_HEAD = do_GET
    do_POST = do_GET


class HttpServer:
    def __init__(self, tls: tuple[Path, Path] | None = None, host: str = "127.0.0.1") -> None:
        server_class = ThreadingHTTPServer
        if ":" in host:
            class V6(ThreadingHTTPServer):
                address_family = socket.AF_INET6
            server_class = V6
        self.server = server_class((host, 0), Handler)
        self.server.daemon_threads = True
        self.server.requests = []
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if tls else "http"
        self.base = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list:
        return self.server.requests

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TcpServer:
    """Accepts connections; sends `banner`, then replies `reply` to anything received, or stays silent."""

    def __init__(self, banner: bytes = b"", reply: bytes = b"", host: str = "127.0.0.1") -> None:
        self.banner, self.reply = banner, reply
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.banner:
                    conn.sendall(self.banner)
                conn.settimeout(5)
                data = conn.recv(4096)
                self.received.append(data)
                if data and self.reply:
                    conn.sendall(self.reply)
                time.sleep(0.2)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


class RawPeer:
    """A TCP server on loopback answering each connection with `behave(connection, stopping)`, in a
    thread each, after reading what the client sent first. `timeout`: each socket operation's limit
    (None: a stalled client holds the thread until `close`); `connections` counts what it accepted."""

    def __init__(self, behave: Callable[[socket.socket, threading.Event], object], timeout: float | None = 5) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.behave = behave
        self.timeout = timeout
        self.stopping = threading.Event()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(connection,), daemon=True).start()

    def _one(self, connection: socket.socket) -> None:
        try:
            if self.timeout is not None:
                connection.settimeout(self.timeout)
            connection.recv(65536)
            self.behave(connection, self.stopping)
        except OSError:
            pass
        finally:
            connection.close()

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
