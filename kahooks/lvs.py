"""Virtual and real servers as keepalived names them, and as people write them.

keepalived 2.2.7 writes to the notify FIFO (check/ipwrapper.c notify_fifo_vs/_rs):
    VS <vs> UP|DOWN                 a virtual server gained or lost its quorum
    RS <rs> <vs> UP|DOWN            a real server of it came up or went down
where <rs> is `[ADDR]:PROTO:PORT` (lib/utils.c inet_sockaddrtotrio_r: PROTO tcp, udp, sctp or none)
and <vs> the same, or `FWM N` for a firewall mark (with a space), or `[GROUP]:PORT` for a
virtual_server_group (check/check_data.c format_vs). Its notify_up, notify_down, quorum_up
and quorum_down scripts get no arguments at all: the command line names the servers.

People write `192.0.2.50:80`, `[2001:db8::1]:80`, `fwmark 5`. `key()` brings both forms to
one: `192.0.2.50:80`, `[2001:db8::1]:80`, `FWM 5`, `GROUP:80`; rules match on keys.
"""

from __future__ import annotations

import ipaddress
import re

from kahooks.errors import UsageError

STATES = ("UP", "DOWN")
_TRIO = re.compile(r"^\[(?P<host>[^\]\s]{1,255})\]:(?P<proto>tcp|udp|sctp|none|\?):(?P<port>\d{1,5})$")
_GROUP = re.compile(r"^\[(?P<group>[^\]\s]{1,255})\]:(?P<port>\d{1,5})$")
_FWMARK = re.compile(r"^(?:FWM|fwmark)\s+(?P<mark>\d{1,10})$", re.IGNORECASE)
_PLAIN = re.compile(r"^(?:(?P<proto>tcp|udp|sctp):)?(?P<host>[^\s\[\]:]{1,255}|\[[^\]\s]{1,255}\]):(?P<port>\d{1,5})$")


def _host(text: str) -> str:
    text = text.strip("[]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text  # a virtual_server_group name
    return f"[{address}]" if address.version == 6 else str(address)


def key(text: str) -> str:
    """The one form of a virtual or real server, for matching; UsageError when it is none."""
    text = " ".join(text.split())
    for pattern in (_TRIO, _PLAIN):
        match = pattern.match(text)
        if match and 0 < int(match.group("port")) < 65536:
            return f"{_host(match.group('host'))}:{int(match.group('port'))}"
    match = _GROUP.match(text)
    if match:
        return f"{match.group('group')}:{int(match.group('port'))}"
    match = _FWMARK.match(text)
    if match:
        return f"FWM {int(match.group('mark'))}"
    raise UsageError(f"{text[:80]!r} is not a server (HOST:PORT, [IPv6]:PORT or fwmark N)")


def parse_fifo_line(line: str) -> tuple[str, str, str, str]:
    """(type, real server or virtual server, virtual server, state) of a VS or RS line; UsageError otherwise."""
    words = line.split()
    if len(words) < 3 or words[0] not in ("VS", "RS") or words[-1] not in STATES:
        raise UsageError(f"not a keepalived LVS line: {line[:120]!r}")
    if words[0] == "VS":
        virtual = " ".join(words[1:-1])
        key(virtual)
        return "VS", virtual, virtual, words[-1]
    real, virtual = words[1], " ".join(words[2:-1])
    if not _TRIO.match(real) or not virtual:
        raise UsageError(f"not a keepalived LVS line: {line[:120]!r}")
    key(virtual)
    return "RS", real, virtual, words[-1]
