"""Packets for the wire tests: decoded adverts for daemon/segment.py, and a script a lab node runs
(`python -c`) to send a gratuitous ARP."""

from __future__ import annotations

from kahooks.daemon.segment import Local
from kahooks.vrrp_wire import Advert

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
