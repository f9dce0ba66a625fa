"""Virtual and real servers as keepalived names them, and as people write them.

keepalived 2.2.7 and 2.3.3 write the same two lines to the notify FIFO (check/ipwrapper.c
notify_fifo_vs, 2.2.7:101-127 / 2.3.3:102-128, and notify_fifo_rs, 2.2.7:130-158 / 2.3.3:131-159):
    VS <vs> UP|DOWN                 a virtual server gained or lost its quorum (do_vs_notifies)
    RS <rs> <vs> UP|DOWN            a real server of it came up or went down (do_rs_notifies)
<rs> is format_rs (check/check_data.c 2.2.7:1025 / 2.3.3:1022): lib/utils.c inet_sockaddrtotrio_r
(2.2.7:713 / 2.3.3:766), `[ADDR]:PROTO:PORT` with ADDR from inet_ntop (IPv4 or IPv6, no scope),
PROTO the virtual server's: tcp, udp or sctp (check_parser.c proto_handler, 2.2.7:562 / 2.3.3:570,
knows no other, so utils.c's `?` is never written), or `none` for a fwmark virtual server (check_data.c
2.2.7:1143-1148 / 2.3.3:1134-1139 clear a protocol given to one). PORT is 0-65535 and 0 is written:
a fwmark virtual server's DR/TUN real server has its port cleared (check_data.c 2.2.7:1313-1316 /
2.3.3:1306-1309: `RS [10.0.0.21]:none:0 FWM 7 DOWN`) while NAT keeps it (`RS [10.0.0.23]:none:8080
FWM 8 UP`); a persistent virtual server may have port 0 (2.2.7:1120-1126 / 2.3.3:1111-1117) and its
real servers take it (2.2.7:1319-1320 / 2.3.3:1312-1313); a group's real server keeps the port it
was given, 0 included (2.2.7:1279-1302 / 2.3.3:1272-1295, warnings only).
<vs> is format_vs (check_data.c 2.2.7:985 / 2.3.3:982), one of
    [ADDR]:PROTO:PORT               an address virtual server, as above (PROTO never none: udp by
                                    default, check_data.c 2.2.7:1105-1109 / 2.3.3:1096-1100)
    FWM N                           `virtual_server fwmark N`, N 1-4294967295 (with a space)
    [GROUP]:N                       `virtual_server group GROUP`; N is not a port but the virtual
                                    server's number among those of that group, from 0
                                    (check/ipwrapper.c 2.2.7:1262-1275 / 2.3.3:1263-1276)
`virtual_server fwmark 0` is no FWM (format_vs tests vfwmark): it is written as an address that
was never set, which 2.3.3 shows as `[(none)]:udp:0` (lib/utils.c 2.3.3:699-701; 2.2.7 prints what
its stack held: such a line is refused). Otherwise both versions write the same lines.
The notify_up, notify_down, quorum_up and quorum_down scripts get no arguments at all: the command
line names the servers.

People write `192.0.2.50:80`, `[2001:db8::1]:80`, `fwmark 5`, `GROUP:0`. `key()` brings both forms
to one: `192.0.2.50:80`, `[2001:db8::1]:80`, `FWM 5`, `GROUP:0`; rules match on keys. A host made of
digits and dots (`10.0.0.300`) or holding a ':' is an address, never a group's name: it must be a
valid one. keepalived itself would take such a word for a group's name (alloc_vsg takes any word),
so a virtual_server_group named like an address is not supported here.
"""

from __future__ import annotations

import ipaddress
import re

from kahooks.errors import UsageError

STATES = ("UP", "DOWN")
MAX_PORT = 65535
MAX_FWMARK = 4294967295  # IPVS_FWMARK_MAX
NO_ADDRESS = "(none)"  # 2.3.3's text for an address never set (`virtual_server fwmark 0`)
# What keepalived writes (format_rs, format_vs): anchored, no nested repetition, each part capped.
_TRIO = re.compile(r"^\[(?P<host>[0-9A-Fa-f:.]{1,45}|\(none\))\]"
                   r":(?P<proto>tcp|udp|sctp|none):(?P<port>\d{1,5})$")
_GROUP = re.compile(r"^\[(?P<group>[^\]\n]{1,255})\]:(?P<port>\d{1,5})$")
_FWMARK = re.compile(r"^(?:FWM|fwmark)\s+(?P<mark>\d{1,10})$", re.IGNORECASE)
# What people write: HOST:PORT, [HOST]:PORT, PROTO:HOST:PORT.
_PLAIN = re.compile(r"^(?:(?P<proto>tcp|udp|sctp):)?(?P<host>[^\s\[\]:]{1,255}|\[[^\]\s]{1,255}\]):(?P<port>\d{1,5})$")
_DOTTED = re.compile(r"^[0-9.]*\.[0-9.]*$")


def _address_attempt(host: str) -> bool:
    """Is this word meant as an address? Digits and dots (`10.0.0.300`), or a ':' (IPv6)."""
    return ":" in host or bool(_DOTTED.match(host))


def _address(host: str, text: str) -> str:
    """An address as keys hold it (IPv6 in brackets); UsageError naming `text` when it is none."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        kind = "IPv6" if ":" in host else "IPv4"
        raise UsageError(f"{text[:80]!r}: {host[:60]!r} is not a valid {kind} address") from None
    if address.version == 4:
        return str(address)
    mapped = address.ipv4_mapped
    # One form on every Python: 3.13 writes an IPv4-mapped address dotted (gh-87799), 3.11 in hex
    # (::ffff:a00:e); the dotted one is keepalived's own (inet_ntop) and procfs.listening's.
    return f"[::ffff:{mapped}]" if mapped is not None else f"[{address}]"


def _port(port: str, text: str) -> int:
    number = int(port)
    if number > MAX_PORT:
        raise UsageError(f"{text[:80]!r}: port {number} is above {MAX_PORT}")
    return number


def key(text: str) -> str:
    """The one form of a virtual or real server, for matching; UsageError when it is none."""
    text = " ".join(text.split())
    match = _TRIO.match(text)
    if match:
        host = match.group("host")
        shown = host if host == NO_ADDRESS else _address(host, text)
        return f"{shown}:{_port(match.group('port'), text)}"
    match = _FWMARK.match(text)
    if match:
        mark = int(match.group("mark"))
        if not 0 < mark <= MAX_FWMARK:
            raise UsageError(f"{text[:80]!r}: a firewall mark is 1 to {MAX_FWMARK}")
        return f"FWM {mark}"
    match = _PLAIN.match(text)
    if match:
        host = match.group("host")
        bracketed = host.startswith("[")
        host = host.strip("[]")
        if _address_attempt(host):
            return f"{_address(host, text)}:{_port(match.group('port'), text)}"
        if match.group("proto") is None:
            return f"{host}:{_port(match.group('port'), text)}"  # a virtual_server_group
        if bracketed:
            raise UsageError(f"{text[:80]!r}: {host[:60]!r} is not an IP address")
    match = _GROUP.match(text)
    if match and not _address_attempt(match.group("group")):
        return f"{match.group('group')}:{_port(match.group('port'), text)}"
    raise UsageError(f"{text[:80]!r} is not a server (HOST:PORT, [IPv6]:PORT, fwmark N or GROUP:N)")


def parse_fifo_line(line: str) -> tuple[str, str, str, str]:
    """(type, real server or virtual server, virtual server, state) of a VS or RS line; UsageError otherwise.

    Split at its first and last blank, not at every one: a group's name may hold a blank (keepalived
    reads a quoted word whole) and FWM N holds one. The <rs> of an RS line never does."""
    kind, _, rest = line.strip().partition(" ")
    middle, _, state = rest.strip().rpartition(" ")
    middle = middle.strip()
    if kind not in ("VS", "RS") or state not in STATES or not middle:
        raise UsageError(f"not a keepalived LVS line: {line[:120]!r}")
    if kind == "VS":
        key(middle)
        return "VS", middle, middle, state
    real, _, virtual = middle.partition(" ")
    virtual = virtual.strip()
    if not _TRIO.match(real) or not virtual:
        raise UsageError(f"not a keepalived LVS line: {line[:120]!r}")
    key(real)
    key(virtual)
    return "RS", real, virtual, state
