"""The syslog channel: the local socket, or a remote collector over UDP or TCP in RFC 5424.

Remote records carry the transition as structured data
([kahooks@32473 instance="VI_1" state="MASTER" ...]; 32473 is the enterprise
number RFC 5612 sets aside for examples), and TCP uses RFC 6587 octet counting,
since the NUL that logging.handlers.SysLogHandler appends merges records in rsyslog.
"""

from __future__ import annotations

import datetime
import os
import socket
from typing import TYPE_CHECKING

from kahooks.errors import os_words
from kahooks.notifiers.base import Channel, ChannelConfigError, Contract, Message, TemporaryFailure, Undriven
from kahooks.output import localsyslog

if TYPE_CHECKING:
    from typing import Any

FACILITIES = {name: code for code, name in enumerate(
    ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp"])}
FACILITIES.update({f"local{n}": 16 + n for n in range(8)})
SEVERITY = {"FAULT": 4, "STOP": 5, "DELETED": 5, "DOWN": 4}  # warning, notice; everything else notice too
NOTICE = 5
QUORUM_LOST = 1  # alert: a virtual server without quorum serves nobody (or only its sorry server)
SD_ID = "kahooks@32473"


class SyslogChannel(Channel):
    kind = "syslog"
    SETTINGS = frozenset({"address", "facility", "ident", "timeout"})
    CONTRACT = Contract("syslog", {"address": "tcp://{host}:{port}", "timeout": "{timeout}"},
                        failures={"unreachable": "temporary",
                                  "hang": Undriven("a record fits the socket's buffer: a peer that never reads "
                                                   "does not stall it"),
                                  "later": Undriven("syslog never answers a record"),
                                  "never": Undriven("syslog never answers a record")})
    DEFAULT_SUBJECT = (
        "{% if type == 'ALERT' %}{{ name }}: {{ 'cleared: ' if state == 'CLEARED' else '' }}{{ detail }}"
        "{% elif type == 'VS' %}virtual server {{ virtual_server }} "
        "{{ 'LOST its quorum' if state == 'DOWN' else 'has its quorum' }}"
        "{% elif type == 'RS' %}real server {{ real_server }} of {{ virtual_server }} is {{ state }}"
        "{% if previous_state %} (was {{ previous_state }}){% endif %}"
        "{% elif flapping %}{{ name }} flapped {{ events|length }} times, now {{ state }}"
        "{% else %}{{ name }} is {{ state }}{% if previous_state %} (was {{ previous_state }}){% endif %}"
        "{% endif %}{% if type not in ('VS', 'RS', 'ALERT') %} priority {{ priority }}{% endif %}")

    def configure(self, settings: dict) -> None:
        address = self.text(settings, "address", localsyslog.DEFAULT_SOCKET)
        self.ident = self.text(settings, "ident", "kahooks")
        if " " in self.ident:
            raise ChannelConfigError("ident", "must not contain spaces")
        facility = self.text(settings, "facility", "daemon")
        if facility not in FACILITIES:
            raise ChannelConfigError("facility", f"{facility!r} is not one of {', '.join(FACILITIES)}")
        self.facility = FACILITIES[facility]
        self.timeout = self.number(settings, "timeout", 5.0)
        self.target: Any
        if address.startswith("/"):
            self.transport, self.target = "unix", address  # a socket path, else (host, port)
            return
        scheme, sep, rest = address.partition("://")
        if scheme not in ("udp", "tcp") or not sep:
            raise ChannelConfigError("address", "must be a socket path, udp://HOST:PORT or tcp://HOST:PORT")
        from kahooks.system.netaddr import parse_hostport

        try:
            host, port = parse_hostport(rest, 514)
        except ValueError as exc:
            raise ChannelConfigError("address", str(exc)) from None
        self.transport, self.target = scheme, (host, port)

    def send(self, message: Message) -> None:
        severity = 4 if message.context["flapping"] else SEVERITY.get(message.event.state, NOTICE)
        if message.event.type == "VS" and message.event.state == "DOWN":
            severity = QUORUM_LOST
        if self.transport == "unix":
            if not localsyslog.send(self.ident, message.subject, severity, self.facility, self.target):
                raise TemporaryFailure(f"no syslog socket answers at {self.target}")
            return
        record = self.rfc5424(message, severity).encode("utf-8")
        host, port = self.target
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
            if self.transport == "udp":
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.settimeout(self.timeout)
                    sock.sendto(record, (host, port))
            else:
                with socket.create_connection((host, port), timeout=self.timeout) as sock:
                    sock.sendall(f"{len(record)} ".encode() + record)
        except OSError as exc:
            raise TemporaryFailure(f"{self.transport}://{host}:{port}: {os_words(exc)}") from None

    def rfc5424(self, message: Message, severity: int) -> str:
        context = message.context
        stamp = datetime.datetime.fromtimestamp(message.event.time, datetime.timezone.utc)
        params = message.transition.structured_data()
        data = " ".join(f'{key}="{_sd_escape(value)}"' for key, value in params.items())
        msgid = "flapping" if context["flapping"] else "transition"
        host = "".join(ch for ch in context["host"] if 33 <= ord(ch) <= 126)[:255] or "-"
        return (f"<{self.facility * 8 + severity}>1 {stamp.isoformat(timespec='microseconds').replace('+00:00', 'Z')}"
                f" {host} {self.ident} {os.getpid()} {msgid} [{SD_ID} {data}] {message.subject}")


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


CHANNEL = SyslogChannel
