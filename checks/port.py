"""ka-check-port: does HOST:PORT accept TCP connections (and answer as expected)?

Modes: a plain connect; --send/--expect for a banner or reply; --tls for a
handshake and --cert-days; --listening, which connects to nothing and only asks
the kernel whether a socket LISTENs on that address (or a wildcard) here.
"""

from __future__ import annotations

import socket

from kahooks.checks.base import Check
from kahooks.deadline import format_seconds
from kahooks.errors import KahooksError, ProbeTimeout, UsageError
from kahooks.output.result import CheckResult, healthy, unhealthy
from kahooks.settings.options import Option, non_negative_int, unescape
from kahooks.system import netaddr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kahooks.deadline import Deadline

READ_LIMIT = 65536


class PortCheck(Check):
    kind = "port"
    EXAMPLES = (
        ("ka-check-port 127.0.0.1:80", "a TCP connection is accepted"),
        ("ka-check-port --tls --cert-days 14 127.0.0.1:636", "LDAPS: a verified handshake, certificate valid 14 days more"),
        ("ka-check-port --listening 0.0.0.0:3128", "squid listens here; nothing connects"),
        ("ka-check-port --nagios -w 0.2 -c 0.5 127.0.0.1:80", "for Nagios or Icinga, with response-time thresholds"),
    )
    STARTUP_IMPORTS = frozenset({"socket", "kahooks.system.netaddr"})
    OPTIONS = (
        Option("HOST:PORT", convert=netaddr.parse_hostport, required=True, dest="address",
               help="address to check; IPv6 as [addr]:port"),
        Option("--send", convert=unescape, metavar="TEXT", help="send this after connecting (\\r \\n \\xHH escapes)"),
        Option("--expect", convert=unescape, metavar="TEXT", help="the reply (or banner) must contain this"),
        Option("--tls", switch=True, help="do a TLS handshake"),
        Option("--insecure", switch=True, help="with --tls: do not verify the certificate"),
        Option("--ca", metavar="FILE", help="with --tls: trust the CA certificates in FILE"),
        Option("--sni", metavar="NAME", help="with --tls: server name to send and verify (default HOST)"),
        Option("--cert-days", convert=non_negative_int, metavar="N",
               help="with --tls: fail when the certificate expires within N days"),
        Option("--listening", switch=True,
               help="only check that a local socket LISTENs on HOST:PORT (or a wildcard); no connection"),
    )

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.host, self.port = values["address"]
        self.send: bytes | None = values.get("send")
        self.expect: bytes | None = values.get("expect")
        self.tls: bool = bool(values.get("tls"))
        self.insecure: bool = bool(values.get("insecure"))
        self.ca: str | None = values.get("ca")
        self.sni: str | None = values.get("sni")
        self.cert_days: int | None = values.get("cert_days")
        self.listening: bool = bool(values.get("listening"))
        self.target = netaddr.format_hostport(self.host, self.port)
        tls_only = [flag for flag, given in (("--insecure", self.insecure), ("--ca", self.ca),
                                             ("--sni", self.sni), ("--cert-days", self.cert_days is not None))
                    if given]
        if tls_only and not self.tls:
            raise UsageError(f"{tls_only[0]} needs --tls")
        if self.listening and (self.send is not None or self.expect is not None or self.tls):
            raise UsageError("--listening checks the local socket table only; it cannot be combined "
                             "with --send, --expect or --tls")
        self.context = None
        if self.tls:
            from kahooks.checks import _tls as tlsinfo

            self.context = tlsinfo.client_context(self.insecure, self.ca)

    def probe(self, deadline: Deadline) -> CheckResult:
        if self.listening:
            return self._probe_listening(deadline)
        try:
            sock = netaddr.connect(self.host, self.port, deadline)
        except ProbeTimeout as exc:
            return unhealthy(str(exc))
        except KahooksError as exc:
            return unhealthy(f"{exc} after {format_seconds(deadline.elapsed())}")
        notes = []
        metrics: dict[str, float] = {}
        certificate_ok = True
        try:
            if self.tls:
                sock, certificate_ok, note, days = self._handshake(sock, deadline)
                notes.append(note)
                if days is not None:
                    metrics["cert_days"] = round(days, 1)
            if self.send is not None:
                sock.settimeout(deadline.require(f"sending to {self.target}"))
                sock.sendall(self.send)
            if self.expect is not None:
                reply = self._read_until_expected(sock, deadline)
                if self.expect not in reply:
                    shown = reply[:60].decode("utf-8", "replace")
                    return unhealthy(f"{self.target} replied {shown!r}, expected {self.expect.decode('utf-8', 'replace')!r}")
                notes.append(f"replied {self.expect.decode('utf-8', 'replace')!r}")
        except KahooksError as exc:
            return unhealthy(f"{self.target}: {exc}")
        except OSError as exc:
            return unhealthy(f"{self.target}: {netaddr.reason(exc)}")
        finally:
            sock.close()
        if not certificate_ok:
            return unhealthy(f"{self.target}: {notes[0]}", **metrics)
        detail = f", {', '.join(notes)}" if notes else ""
        return healthy(f"{self.target} accepted the connection in "
                       f"{format_seconds(deadline.elapsed())}{detail}", **metrics)

    def _handshake(self, sock: socket.socket, deadline: Deadline) -> tuple[Any, bool, str, float | None]:
        """(TLS socket, certificate acceptable, note, days left or None)."""
        from kahooks.checks import _tls as tlsinfo

        assert self.context is not None  # made in the constructor whenever --tls is given
        tls = tlsinfo.handshake(self.context, sock, self.sni or self.host, deadline)
        if self.cert_days is None:
            return tls, True, f"TLS {tls.version()}", None
        return (tls, *tlsinfo.check_expiry(tls, self.cert_days))

    def _read_until_expected(self, sock: socket.socket, deadline: Deadline) -> bytes:
        assert self.expect is not None
        expect = self.expect
        reply = b""
        while expect not in reply and len(reply) < READ_LIMIT:
            sock.settimeout(deadline.require(f"waiting for {expect!r} from {self.target}"))
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                got = reply[:60].decode("utf-8", "replace")
                raise ProbeTimeout(f"no {expect.decode('utf-8', 'replace')!r} within "
                                   f"{deadline.seconds:g} s (got {got!r})") from None
            if not chunk:
                break
            reply += chunk
        return reply

    def _probe_listening(self, deadline: Deadline) -> CheckResult:
        from kahooks.system import procfs  # only --listening reads the socket table

        wanted = netaddr.resolve(self.host, self.port, deadline)
        for family, sockaddr in wanted:
            found = procfs.find_listener(family, sockaddr[0], self.port)
            if found:
                return healthy(f"a socket listens on {found}")
        return unhealthy(f"nothing listens on {self.target} (nor on a wildcard address)")


CHECK = PortCheck
