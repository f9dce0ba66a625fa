"""Packets for the wire tests: decoded adverts for daemon/segment.py, ICMPv6 packets (Neighbor
Advertisements and the rest of NDP), and scripts a lab node runs (`python -c`) to send a gratuitous ARP
or ICMPv6 packets."""

from __future__ import annotations

import inspect

from kahooks.daemon.segment import Local
from kahooks.system.vrrp_wire import Advert

HERE, PEER, VIP = "192.0.2.12", "192.0.2.11", "192.0.2.100"
LOCAL = Local("VI_1", "eth0", 51, 4, 100, 1.0, 2, frozenset({VIP}), auth_type="PASS")


def advert(source: str = PEER, priority: int = 150, interval: float = 1.0, vrid: int = 51,
           addresses: tuple[str, ...] = (VIP,), version: int = 2, auth: int | None = 1) -> Advert:
    return Advert(4, source, "224.0.0.18", 255, version, vrid, priority, interval, addresses, auth, True)


# GARP MAC: a gratuitous ARP for 192.0.2.100 from eth0 naming MAC as its sender.
GARP = """
import socket, struct, sys
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
vip = socket.inet_aton("192.0.2.100")
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + vip + bytes(6) + vip
sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
sock.sendto(arp, ("eth0", 0x0806, 0, 0, b"\\xff" * 6))
"""


def icmpv6(kind: str, target: str, mac: str = "", source: str = "fe80::99", destination: str = "ff02::1",
           hops: int = 255, next_header: int = 58) -> bytes:
    """An IPv6 packet (from its IPv6 header on) carrying an ICMPv6 message of type `kind` (a number;
    `hop-by-hop`: an NA behind a hop-by-hop options header; `udp`: the same bytes as next header 17) about
    `target`, with a target link-layer address option naming `mac` when given, its checksum right."""
    import socket
    import struct

    from kahooks.system.vrrp_wire import checksum

    def raw(address: str) -> bytes:
        return socket.inet_pton(socket.AF_INET6, address)

    body = bytes(4) + raw(target) + (bytes((2, 1)) + bytes.fromhex(mac.replace(":", "")) if mac else b"")
    message = bytes((int(kind) if kind.isdigit() else 136, 0, 0, 0)) + body
    pseudo = raw(source) + raw(destination) + len(message).to_bytes(4, "big") + bytes((0, 0, 0, 58))
    message = message[:2] + struct.pack("!H", checksum(pseudo + message)) + message[4:]
    if kind == "hop-by-hop":  # 8 bytes of options (PadN) before the NA
        message, next_header = bytes((58, 0, 1, 4, 0, 0, 0, 0)) + message, 0
    elif kind == "udp":
        next_header = 17
    return struct.pack("!IHBB", 6 << 28, len(message), next_header, hops) + raw(source) + raw(destination) + message


# SEND_ICMPV6 KIND TARGET MAC...: each KIND (an ICMPv6 type, or hop-by-hop) sent from eth0 to ff02::1 about
# TARGET, with MAC in its option ("-": none). Through a packet socket: any source, any hop limit.
SEND_ICMPV6 = inspect.getsource(icmpv6) + """
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
for kind in sys.argv[1].split(","):
    mac = "" if sys.argv[3] == "-" else sys.argv[3]
    sock.sendto(icmpv6(kind, sys.argv[2], mac), ("eth0", 0x86DD, 0, 0, bytes.fromhex("333300000001")))
"""
