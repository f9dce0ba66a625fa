"""requests, bounded: the HTTP client of the slack, webhook and alertmanager channels.

Imported by `_http` when a channel first sends, never when a config is validated (requests
and urllib3 cost ka-notify's handler ~100 ms). One `session()` per channel keeps connections
alive; every `exchange()` on it has one deadline over everything:

- connect and each read are bounded by their own timeouts, never past what is left of the deadline;
- a watchdog shuts down every socket of the exchange when the deadline passes. It holds the sockets
  itself (a dup of each new connection, taken before TLS; the live socket before each request), so
  it still reaches one that http.client has already handed over to the response (`Connection:
  close`, an HTTP/1.0 body read to EOF). That is what bounds a peer trickling its headers or its
  TLS handshake, where no read timeout fires;
- the body is streamed, at most BODY_LIMIT bytes kept, the deadline checked between chunks.

Proxies: HTTPS_PROXY/HTTP_PROXY/NO_PROXY, read by requests' own `get_environ_proxies`. Nothing
else comes from the environment (no ~/.netrc, no REQUESTS_CA_BUNDLE): trust is kahooks.system.tls's.
No message built here contains the URL, a proxy URL or a library's text that could.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from kahooks.errors import UsageError
from kahooks.notifiers.base import PermanentFailure, TemporaryFailure

if TYPE_CHECKING:
    from typing import Any

CONNECT_TIMEOUT = 5.0  # one TCP connect (to the proxy, if one is used)
READ_TIMEOUT = 5.0     # one read of the answer: status line, headers or body
BODY_LIMIT = 65536     # what is kept of an answer: Slack says "ok", a webhook a few words
CHUNK = 1024           # read size: also bounds what one compressed chunk can inflate to
USER_AGENT = "kahooks (keepalived notify)"

_local = threading.local()


class Exchange:
    """One request's deadline and the sockets it has used, shut down when the deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.expired = False
        self.live: socket.socket | None = None  # the socket the answer is read from
        self._watched: list[socket.socket] = []
        self._owned: list[socket.socket] = []   # dups: closed by finish()
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def watch(self, sock: socket.socket, owned: bool = False) -> None:
        with self._lock:
            self._watched.append(sock)
            if owned:
                self._owned.append(sock)
            if self.expired:
                _shut(sock)

    def read_timeout(self) -> None:
        """Before the next read: at most READ_TIMEOUT, never past the deadline."""
        if self.live is not None:
            try:
                self.live.settimeout(max(0.001, min(self.remaining(), READ_TIMEOUT)))
            except OSError:  # already closed: the read will say so
                pass

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._watched:
                _shut(sock)

    def finish(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._owned:
                sock.close()
            self._watched.clear()
            self._owned.clear()


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown: SSLSocket's would drop its TLS object under a reading thread.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # closed, or never connected: nothing to stop
        pass


def _current() -> Exchange | None:
    return getattr(_local, "exchange", None)


class _Watched:
    """Mixed into urllib3's connections: each socket joins the exchange that uses it."""

    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        exchange = _current()
        if exchange is not None:
            # A dup: TLS detaches this object from its descriptor while the handshake runs.
            exchange.watch(sock.dup(), owned=True)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._join()  # a kept-alive connection: its socket is not new
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        self._join()  # taken now: http.client forgets it once the response owns it
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]

    def _join(self) -> None:
        exchange = _current()
        if exchange is not None and self.sock is not None:
            exchange.live = self.sock
            exchange.watch(self.sock)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """Watched pools, no retries, and kahooks.system.tls's context for every TLS connection (proxied too)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(pool_connections=4, pool_maxsize=4, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, ssl_context=self.context, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        fresh = proxy not in self.proxy_manager
        manager = super().proxy_manager_for(proxy, ssl_context=self.context, **kwargs)
        if fresh:
            manager.pool_classes_by_scheme = POOLS
        return manager

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would load certifi's bundle into the context: the trust is the context's alone.
        conn.cert_reqs = "CERT_REQUIRED" if self.context.verify_mode != ssl.CERT_NONE else "CERT_NONE"


def session(verify: bool | str) -> requests.Session:
    """A session for one channel: `verify` is True (system CAs), False (insecure) or a CA file."""
    from kahooks.system.tls import client_context

    try:
        context = client_context(verify is False, verify if isinstance(verify, str) else None, what="ca")
    except UsageError as exc:
        raise PermanentFailure(str(exc)) from None
    client = requests.Session()
    client.trust_env = False  # proxies are taken below, per URL; no netrc, no CA bundle from the environment
    client.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    adapter = _Adapter(context)
    client.mount("http://", adapter)
    client.mount("https://", adapter)
    return client


def exchange(client: requests.Session, method: str, url: str, seconds: float, body: bytes,
             headers: dict[str, str], verifying: bool = True) -> tuple[int, Any, bytes]:
    """(status, headers, at most BODY_LIMIT bytes of the body) within `seconds`, or Temporary/PermanentFailure.

    `verifying` is False for a session made with verify=False (requests must agree with the context)."""
    watch = Exchange(seconds)
    _local.exchange = watch
    response = None
    try:
        response = client.request(method, url, data=body, headers=headers, stream=True, allow_redirects=False,
                                  verify=verifying,
                                  timeout=(min(CONNECT_TIMEOUT, seconds), min(READ_TIMEOUT, seconds)),
                                  proxies=requests.utils.get_environ_proxies(url))
        kept = bytearray()
        watch.read_timeout()
        for chunk in response.iter_content(CHUNK):
            kept += chunk
            if len(kept) >= BODY_LIMIT:
                break  # the rest is not read: closing the response drops the connection
            if watch.remaining() <= 0:
                watch.expired = True
                break
            watch.read_timeout()
        if watch.expired:  # a shut socket reads as the end of a body sent until close
            raise TemporaryFailure(f"no complete answer within {seconds:g} s")
        return response.status_code, response.headers, bytes(kept[:BODY_LIMIT])
    except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise failure(exc, seconds, watch.expired) from None
    finally:
        _local.exchange = None
        if response is not None:
            response.close()
        watch.finish()


def failure(exc: BaseException, seconds: float, expired: bool) -> TemporaryFailure | PermanentFailure:
    """What went wrong, in words that never carry the URL (requests' and urllib3's own texts do)."""
    chain = _chain(exc)

    def first(kind: type[BaseException] | tuple[type[BaseException], ...]) -> Any:
        return next((item for item in chain if isinstance(item, kind)), None)

    # urllib3's NewConnectionError is a ConnectTimeoutError by descent, even for a refused connection.
    timed_out = any(isinstance(item, (TimeoutError, urllib3.exceptions.TimeoutError, requests.Timeout))
                    and not isinstance(item, urllib3.exceptions.NewConnectionError) for item in chain)
    if expired or timed_out:
        return TemporaryFailure(f"no complete answer within {seconds:g} s")
    if first((requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader, requests.exceptions.InvalidSchema)):
        return PermanentFailure(f"cannot send: {type(exc).__name__}")
    unverified = first(ssl.SSLCertVerificationError)
    if unverified is not None:
        return TemporaryFailure(f"TLS error: certificate not trusted: {unverified.verify_message}")
    tls = first(ssl.SSLError)
    if tls is not None:
        return TemporaryFailure(f"TLS error: {tls.reason or type(tls).__name__}")
    where = "cannot connect through the proxy" if first(requests.exceptions.ProxyError) else "cannot connect"
    answered = first(http.client.HTTPException)
    if answered is not None and not first(urllib3.exceptions.NewConnectionError):
        detail = str(answered)[:100]
        return TemporaryFailure(f"bad answer: {type(answered).__name__}" + (f" {detail}" if detail else ""))
    os_error = next((item for item in chain if isinstance(item, OSError) and item.strerror), None)
    if os_error is not None:
        return TemporaryFailure(f"{where}: {os_error.strerror}")
    # http.client's words when a proxy refuses the tunnel ("Tunnel connection failed: 403 Forbidden").
    tunnel = next((str(item) for item in chain if str(item).startswith("Tunnel connection failed")), None)
    return TemporaryFailure(f"{where}: {tunnel[:100]}" if tunnel else f"{where} ({type(exc).__name__})")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (causes, contexts, urllib3's `reason`, exceptions in args)."""
    seen: list[BaseException] = []
    stack: list[Any] = [exc]
    while stack and len(seen) < 32:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is known for known in seen):
            continue
        seen.append(item)
        stack.extend([*item.args, getattr(item, "reason", None), item.__context__, item.__cause__][::-1])
    return seen
