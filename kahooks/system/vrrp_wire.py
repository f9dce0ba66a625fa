"""What a packet on a VRRP segment says: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) adverts, ARP, and
IPv6 Neighbor Advertisements (RFC 4861: IPv6's ARP, read as an Arp).

Pure and bounded: `decode(ethertype, data)` reads one network-layer packet (what an AF_PACKET
SOCK_DGRAM socket returns: the link header is gone) and returns an Advert, an Arp, or None for
anything else, truncated or malformed. Nothing here raises on what the wire sends; every length
is checked against the bytes present, and a packet is read once, front to back.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
IPPROTO_VRRP = 112
IPPROTO_ICMPV6 = 58
NEIGHBOR_ADVERTISEMENT = 136  # the ICMPv6 type, and the Arp's operation for one
TARGET_LINK_LAYER = 2         # the NA's option naming the MAC that owns its target
MAX_OPTIONS = 8               # options read in one NA at most (each is at least 8 bytes)
ADVERTISEMENT = 1
AUTH_NAMES = {0: "none", 1: "PASS", 2: "AH"}  # RFC 3768 5.3.6; keepalived writes PASS and AH


@dataclass(frozen=True, slots=True)
class Advert:
    family: int              # 4 or 6
    source: str
    destination: str
    ttl: int                 # RFC 3768/5798: a receiver drops adverts whose TTL/hop limit is not 255
    version: int             # 2 or 3
    vrid: int
    priority: int
    interval: float          # seconds (v2 whole seconds, v3 centiseconds)
    addresses: tuple[str, ...]
    auth_type: int | None    # v2 only
    checksum_ok: bool

    @property
    def auth_name(self) -> str:
        if self.auth_type is None:
            return "-"
        return AUTH_NAMES.get(self.auth_type, str(self.auth_type))


@dataclass(frozen=True, slots=True)
class Arp:
    """An ARP packet, or an IPv6 Neighbor Advertisement (operation 136): then sender_ip is the NA's target
    (the address it claims), sender_mac its target link-layer address ("" when it carries none: the
    frame's source is the claimant), target_ip the packet's destination."""

    operation: int           # 1 request, 2 reply, 136 Neighbor Advertisement
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


def decode(ethertype: int, data: bytes) -> Advert | Arp | None:
    """One packet, by its link-layer protocol: an Advert, an Arp (or NA), or None (anything else, or malformed)."""
    if ethertype == ETH_P_IP:
        return _ipv4(data)
    if ethertype == ETH_P_IPV6:
        return _ipv6(data)
    if ethertype == ETH_P_ARP:
        return _arp(data)
    return None


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`: 0 when `data` holds a correct checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(data: bytes) -> Advert | None:
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    header = (data[0] & 0x0F) * 4
    total = int.from_bytes(data[2:4], "big")
    fragment = int.from_bytes(data[6:8], "big")
    if header < 20 or total < header or total > len(data) or fragment & 0x3FFF or data[9] != IPPROTO_VRRP:
        return None  # a fragment (MF set or an offset) is no whole advert
    source, destination = data[12:16], data[16:20]
    payload = data[header:total]
    pseudo = source + destination + bytes((0, IPPROTO_VRRP)) + len(payload).to_bytes(2, "big")
    return _vrrp(4, source, destination, data[8], payload, pseudo)


def _ipv6(data: bytes) -> Advert | Arp | None:
    if len(data) < 40 or data[0] >> 4 != 6:
        return None
    if data[6] == IPPROTO_ICMPV6:
        return _neighbor_advertisement(data)
    if data[6] != IPPROTO_VRRP:
        return None  # extension headers are not followed: keepalived sends none
    length = int.from_bytes(data[4:6], "big")
    if 40 + length > len(data):
        return None
    source, destination = data[8:24], data[24:40]
    payload = data[40:40 + length]
    pseudo = source + destination + len(payload).to_bytes(4, "big") + bytes((0, 0, 0, IPPROTO_VRRP))
    return _vrrp(6, source, destination, data[7], payload, pseudo)


def _vrrp(family: int, source: bytes, destination: bytes, ttl: int, payload: bytes, pseudo: bytes) -> Advert | None:
    if len(payload) < 8 or payload[0] & 0x0F != ADVERTISEMENT:
        return None
    version = payload[0] >> 4
    count = payload[3]
    if version == 2:
        if family != 4 or len(payload) < 8 + 4 * count:
            return None
        size = 4
        interval = float(payload[5])
        auth_type: int | None = payload[4]
        # RFC 3768 5.3.8: the checksum covers the VRRP message only (with its 8 bytes of authentication data).
        valid = checksum(payload) == 0
    elif version == 3:
        size = 4 if family == 4 else 16
        if len(payload) < 8 + size * count:
            return None
        interval = (int.from_bytes(payload[4:6], "big") & 0x0FFF) / 100
        auth_type = None
        # RFC 5798 5.2.8: v3 adds the pseudo-header (keepalived's vrrp_checksum_compatibility leaves it out
        # for IPv4; either form is taken as valid).
        valid = checksum(pseudo + payload) == 0 or (family == 4 and checksum(payload) == 0)
    else:
        return None
    addresses = tuple(_address(payload[8 + size * index:8 + size * (index + 1)]) for index in range(count))
    return Advert(family, _address(source), _address(destination), ttl, version, payload[1], payload[2],
                  interval, addresses, auth_type, valid)


def _neighbor_advertisement(data: bytes) -> Arp | None:
    """An NA (RFC 4861 4.4) directly after the IPv6 header. One behind an extension header is not read (nor
    let through by the kernel's filter, which reads the ICMPv6 type at a fixed offset): the kernel and
    keepalived send NAs without any, and following a chain of headers would be a loop the wire controls.
    As a receiver must (RFC 4861 7.1.2), a hop limit other than 255 (an off-link forgery) or a bad checksum
    is ignored; options are read at most MAX_OPTIONS, and a zero-length one ends the packet as invalid."""
    length = int.from_bytes(data[4:6], "big")
    if length < 24 or 40 + length > len(data) or data[7] != 255:
        return None
    source, destination, icmp = data[8:24], data[24:40], data[40:40 + length]
    if icmp[0] != NEIGHBOR_ADVERTISEMENT or icmp[1] != 0:
        return None
    if checksum(source + destination + length.to_bytes(4, "big") + bytes((0, 0, 0, IPPROTO_ICMPV6)) + icmp):
        return None
    mac, offset = "", 24
    for _ in range(MAX_OPTIONS):
        if offset + 2 > len(icmp):
            break
        kind, units = icmp[offset], icmp[offset + 1]
        if units == 0 or offset + 8 * units > len(icmp):
            return None
        if kind == TARGET_LINK_LAYER and units == 1:  # Ethernet: 6 bytes of MAC
            mac = _mac(icmp[offset + 2:offset + 8])
            break
        offset += 8 * units
    return Arp(NEIGHBOR_ADVERTISEMENT, mac, _address(icmp[8:24]), "", _address(destination))


def _arp(data: bytes) -> Arp | None:
    # Ethernet and IPv4 only: hardware type 1, protocol 0x0800, lengths 6 and 4.
    if len(data) < 28 or data[0:6] != b"\x00\x01\x08\x00\x06\x04":
        return None
    operation = int.from_bytes(data[6:8], "big")
    if operation not in (1, 2):
        return None
    return Arp(operation, _mac(data[8:14]), _address(data[14:18]), _mac(data[18:24]), _address(data[24:28]))


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def _mac(raw: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in raw)
