"""A tiny forward proxy on loopback: CONNECT tunnels and absolute-URL forwarding, optional Basic auth.

It keeps what it was asked (`seen`: "CONNECT host:port" or "POST http://…") so a test can tell
that a channel went through it, and refuses with 407 when the Proxy-Authorization is not `auth`.
Every connection is one request (the proxy answers `Connection: close`); every wait is bounded.
"""

from __future__ import annotations

import base64
import socket
import threading


class ForwardProxy:
    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.auth = auth
        self.seen: list[str] = []
        self.refused = 0
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, user: str = "", password: str = "") -> str:
        credentials = f"{user}:{password}@" if user else ""
        return f"http://{credentials}127.0.0.1:{self.port}"

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(10)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
            method, target, _ = request_line.split(" ", 2)
            self.seen.append(f"{method} {target}")
            if self.auth is not None:
                expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
                if headers.get("proxy-authorization") != expected:
                    self.refused += 1
                    client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                   b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n"
                                   b"Connection: close\r\n\r\n")
                    return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=5)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream, rest)
                return
            from urllib.parse import urlsplit

            parts = urlsplit(target)
            upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=5)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            kept = [line for line in lines if not line.lower().startswith(("proxy-", "connection:"))]
            upstream.sendall(f"{method} {path} HTTP/1.1\r\n".encode() + "\r\n".join(kept).encode()
                             + b"\r\nConnection: close\r\n\r\n" + rest)
            self._pipe(client, upstream, b"")
        except (OSError, ValueError):
            pass
        finally:
            client.close()

    def _pipe(self, client: socket.socket, upstream: socket.socket, pending: bytes) -> None:
        """Copy both ways until either side closes (each read bounded by the sockets' timeouts)."""
        upstream.settimeout(10)
        if pending:
            upstream.sendall(pending)

        def copy(source: socket.socket, target: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    target.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (source, target):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=copy, args=(upstream, client), daemon=True)
        back.start()
        copy(client, upstream)
        back.join(10)
        upstream.close()
