"""ka-check-http: does a URL answer with an accepted status (and the expected body)?

Built on http.client, not requests: requests adds about 100 ms of imports to a
program keepalived may start every second. Connecting, the TLS handshake,
sending and every read draw on one deadline.
"""

from __future__ import annotations

import http.client
from urllib.parse import urljoin, urlsplit

from kahooks import __version__
from kahooks.checks.base import Check, pattern
from kahooks.deadline import format_seconds
from kahooks.errors import KahooksError, ProbeTimeout, UsageError
from kahooks.output import redact
from kahooks.output.result import CheckResult, healthy, unhealthy
from kahooks.settings.options import Option, in_ranges, int_ranges, non_negative_int
from kahooks.system import netaddr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kahooks.deadline import Deadline
    from kahooks.settings.patterns import Pattern

BODY_LIMIT = 1 << 20  # read at most 1 MiB of a body for --contains/--regex
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_STATUS = "200-399"


def parse_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a bad port") from None
    if port == 0 or (port is None and parts.netloc.rpartition("@")[2].endswith(":")):
        raise ValueError("has no usable port (1-65535)")  # urlsplit reads ':0' and ':' as 'the default'
    return raw


def parse_header(raw: str) -> tuple[str, str]:
    name, colon, value = raw.partition(":")
    name = name.strip()
    if not colon or not name or any(ch in raw for ch in "\r\n") or " " in name:
        raise ValueError("expected 'Name: value'")
    return name, value.strip()


def parse_method(raw: str) -> str:
    if not raw.isalpha():
        raise ValueError("not an HTTP method")
    return raw.upper()


class HttpResponse:
    """What one request returned, before judging."""

    __slots__ = ("status", "reason", "location", "body", "size", "cert_note", "cert_days", "expired")

    def __init__(self) -> None:
        self.status = 0
        self.reason = ""
        self.location: str | None = None
        self.body = ""
        self.size: int | None = None  # bytes of the body: read, or as Content-Length says; None unknown
        self.cert_note: str | None = None
        self.cert_days: float | None = None
        self.expired = False


class HttpCheck(Check):
    kind = "http"
    EXAMPLES = (
        ("ka-check-http http://127.0.0.1/health", "a 2xx or 3xx answer within the timeout"),
        ("ka-check-http --host www.example.org --contains OK https://127.0.0.1/", "a virtual host's body"),
        ("ka-check-http --nagios -w 0.5 -c 1 http://127.0.0.1/", "monitoring-plugins output with perfdata"),
    )
    STARTUP_IMPORTS = frozenset({"http.client", "urllib.parse", "kahooks.system.netaddr"})
    OPTIONS = (
        Option("URL", convert=parse_url, required=True, help="http:// or https:// URL to request"),
        Option("--status", convert=int_ranges, default=DEFAULT_STATUS, metavar="LIST",
               help="accepted status codes, e.g. 200,204,300-399"),
        Option("--contains", metavar="TEXT", help="the body must contain TEXT"),
        Option("--regex", convert=pattern, metavar="RE", help="the body must match RE"),
        Option("--header", convert=parse_header, repeat=True, metavar="'NAME: VALUE'",
               help="add a request header (repeatable)"),
        Option("--host", metavar="NAME", help="virtual host: Host header and TLS server name"),
        Option("--method", convert=parse_method, default="GET", help="request method"),
        Option("--insecure", switch=True, help="do not verify the server certificate"),
        Option("--ca", metavar="FILE", help="trust the CA certificates in FILE"),
        Option("--cert-days", convert=non_negative_int, metavar="N",
               help="fail when the certificate expires within N days"),
        Option("--follow", switch=True, help=f"follow up to {MAX_REDIRECTS} redirects"),
    )

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.url: str = values["url"]
        self.accepted = values["status"]
        self.contains: str | None = values.get("contains")
        self.regex: Pattern | None = values.get("regex")
        self.headers: list[tuple[str, str]] = list(values.get("header") or [])
        self.vhost: str | None = values.get("host")
        self.method: str = values["method"]
        self.cert_days: int | None = values.get("cert_days")
        self.follow: bool = bool(values.get("follow"))
        self.insecure = bool(values.get("insecure"))
        self.ca: str | None = values.get("ca")
        self._context: Any = None
        if self.method == "HEAD" and (self.contains is not None or self.regex is not None):
            raise UsageError("--contains and --regex need a body; HEAD has none")
        if urlsplit(self.url).scheme == "http" and not self.follow and (
                self.cert_days is not None or self.insecure or self.ca):
            raise UsageError("--cert-days, --insecure and --ca need an https:// URL")
        if self.ca or self.insecure:
            self.tls_context()  # report a bad --ca now, as a usage error

    def tls_context(self) -> Any:
        if self._context is None:
            from kahooks.checks import _tls as tlsinfo

            self._context = tlsinfo.client_context(self.insecure, self.ca)
        return self._context

    def probe(self, deadline: Deadline) -> CheckResult:
        url = self.url
        try:
            response = self.request(url, deadline)
            redirects = 0
            while self.follow and response.status in REDIRECTS and response.location:
                if redirects == MAX_REDIRECTS:
                    return unhealthy(f"{redact.url(url)}: more than {MAX_REDIRECTS} redirects "
                                     f"(a loop?), last to {redact.url(response.location)}")
                redirects += 1
                url = urljoin(url, response.location)
                parse_url(url)
                response = self.request(url, deadline)
        except (KahooksError, ValueError) as exc:  # ProbeTimeout included
            return unhealthy(f"{redact.url(url)}: {exc}")
        return self.judge(url, response, deadline)

    def judge(self, url: str, response: HttpResponse, deadline: Deadline) -> CheckResult:
        took = format_seconds(deadline.elapsed())
        metrics: dict[str, float] = {"status": response.status}
        if response.size is not None:
            metrics["size"] = response.size
        if response.cert_days is not None:
            metrics["cert_days"] = round(response.cert_days, 1)
        found = f"{response.status} from {redact.url(url)} in {took}"
        if not in_ranges(response.status, self.accepted):
            accepted = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.accepted)
            return unhealthy(f"{found} (accepted: {accepted})", **metrics)
        if response.expired:
            return unhealthy(f"{found}, but {response.cert_note}", **metrics)
        notes = [response.cert_note] if response.cert_note else []
        if self.contains is not None:
            if self.contains not in response.body:
                return unhealthy(f"{found}, but the body lacks {self.contains!r}", **metrics)
            notes.append(f"body contains {self.contains!r}")
        if self.regex is not None:
            from kahooks.settings.patterns import PatternTimeout  # loaded already: the option's converter made the regex

            try:  # the server chose the body: a backtracking match is bounded (kahooks.settings.patterns)
                matched = self.regex.search(response.body, deadline, "the body")
            except PatternTimeout as exc:
                return unhealthy(f"{found}, but {exc}", **metrics)
            if not matched:
                return unhealthy(f"{found}, but the body does not match /{self.regex.pattern}/", **metrics)
            notes.append(f"body matches /{self.regex.pattern}/")
        return healthy(found + "".join(f", {note}" for note in notes), **metrics)

    def request(self, url: str, deadline: Deadline) -> HttpResponse:
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        sock = netaddr.connect(host, port, deadline)
        result = HttpResponse()
        try:
            if secure:
                sock = self._handshake(sock, host, deadline, result)
            connection = http.client.HTTPConnection(host, port)
            connection.sock = sock  # already connected under our deadline
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.putrequest(self.method, path, skip_host=True, skip_accept_encoding=True)
            defaults = {"Host": self.vhost or parts.netloc.rpartition("@")[2],
                        "User-Agent": f"kahooks/{__version__} ka-check-http", "Connection": "close"}
            if parts.username is not None:  # http://user:pw@host/: basic authentication, as curl does
                import base64
                from urllib.parse import unquote

                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
                defaults["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            overridden = {name.lower() for name, _ in self.headers}
            for name, value in [*defaults.items(), *self.headers]:
                if name.lower() not in overridden or (name, value) in self.headers:
                    connection.putheader(name, value)
            sock.settimeout(deadline.require(f"sending to {host}"))
            connection.endheaders()
            sock.settimeout(deadline.require(f"waiting for {host}"))
            response = connection.getresponse()
            result.status, result.reason = response.status, response.reason
            result.location = response.getheader("Location")
            if self.method != "HEAD" and (self.contains is not None or self.regex is not None):
                charset = response.headers.get_content_charset() or "utf-8"
                raw = self._read_body(response, sock, deadline)
                result.body, result.size = raw.decode(charset, "replace"), len(raw)
            elif self.method != "HEAD" and (response.getheader("Content-Length") or "").isdigit():
                result.size = int(response.getheader("Content-Length") or 0)  # not read: keepalived is waiting
        except TimeoutError:
            raise ProbeTimeout(f"no response within {deadline.seconds:g} s") from None
        except (http.client.HTTPException, OSError) as exc:
            raise KahooksError(f"bad response: {type(exc).__name__} {exc}".strip()) from None
        finally:
            sock.close()
        return result

    def _handshake(self, sock: Any, host: str, deadline: Deadline, result: HttpResponse) -> Any:
        from kahooks.checks import _tls as tlsinfo

        tls = tlsinfo.handshake(self.tls_context(), sock, self.vhost or host, deadline)
        if self.cert_days is not None:
            ok, result.cert_note, result.cert_days = tlsinfo.check_expiry(tls, self.cert_days)
            result.expired = not ok
        return tls

    @staticmethod
    def _read_body(response: http.client.HTTPResponse, sock: Any, deadline: Deadline) -> bytes:
        """At most BODY_LIMIT bytes of the body, each read under what is left of the deadline.

        The response says when the body is over, not the socket: since Python 3.13 (gh-113199)
        read1() closes the connection as soon as it has read Content-Length bytes, and with
        `Connection: close` that closes `sock` too, so the loop must not touch it again.
        """
        chunks = []
        size = 0
        while size < BODY_LIMIT and not response.isclosed():
            if sock.fileno() >= 0:
                sock.settimeout(deadline.require("reading the body"))
            chunk = response.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)[:BODY_LIMIT]


CHECK = HttpCheck
