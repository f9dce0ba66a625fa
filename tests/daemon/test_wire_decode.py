"""kahooks.system.vrrp_wire: VRRPv2/v3 adverts over IPv4 and IPv6, ARP and IPv6 Neighbor Advertisements, decoded
byte for byte;
truncated, hostile and random packets are ignored, never raised on."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from kahooks.system.vrrp_wire import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, Advert, Arp, checksum, decode
from tests.support.packets import icmpv6


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def vrrp2(vrid: int = 51, priority: int = 150, addresses: tuple[str, ...] = ("192.0.2.100",), auth: int = 1,
          interval: int = 1, good_sum: bool = True) -> bytes:
    body = struct.pack("!BBBBBBH", 0x21, vrid, priority, len(addresses), auth, interval, 0)
    body += b"".join(ip4(a) for a in addresses) + b"secret\0\0"
    total = checksum(body) if good_sum else 0x1234
    return body[:6] + struct.pack("!H", total) + body[8:]


def vrrp3(vrid: int, priority: int, centiseconds: int, addresses: bytes, count: int) -> bytes:
    return struct.pack("!BBBBHH", 0x31, vrid, priority, count, centiseconds & 0x0FFF, 0) + addresses


def ipv4(payload: bytes, source: str = "192.0.2.11", destination: str = "224.0.0.18", protocol: int = 112,
         fragment: int = 0, ttl: int = 255) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, fragment, ttl, protocol, 0,
                         ip4(source), ip4(destination))
    return header + payload


def with_v3_sum(payload: bytes, pseudo: bytes) -> bytes:
    return payload[:6] + struct.pack("!H", checksum(pseudo + payload)) + payload[8:]


def test_vrrpv2_advert_over_ipv4_is_read_field_by_field() -> None:
    found = decode(ETH_P_IP, ipv4(vrrp2(addresses=("192.0.2.100", "192.0.2.101"))))
    assert found == Advert(4, "192.0.2.11", "224.0.0.18", 255, 2, 51, 150, 1.0, ("192.0.2.100", "192.0.2.101"),
                           1, True)
    assert found.auth_name == "PASS"


def test_a_wrong_checksum_is_noted_not_hidden() -> None:
    found = decode(ETH_P_IP, ipv4(vrrp2(good_sum=False)))
    assert isinstance(found, Advert) and not found.checksum_ok


def test_vrrpv3_over_ipv4_carries_centiseconds_and_its_pseudo_header_checksum() -> None:
    source, destination = "192.0.2.12", "224.0.0.18"
    payload = vrrp3(7, 100, 150, ip4("192.0.2.7"), 1)
    pseudo = ip4(source) + ip4(destination) + bytes((0, 112)) + struct.pack("!H", len(payload))
    found = decode(ETH_P_IP, ipv4(with_v3_sum(payload, pseudo), source, destination))
    assert isinstance(found, Advert)
    assert (found.version, found.vrid, found.priority, found.interval, found.addresses, found.auth_type) == \
        (3, 7, 100, 1.5, ("192.0.2.7",), None)
    assert found.checksum_ok and found.auth_name == "-"


def test_vrrpv3_over_ipv6() -> None:
    source, destination = "fe80::1", "ff02::12"
    payload = vrrp3(9, 200, 100, ip6("fe80::99") + ip6("2001:db8::99"), 2)
    pseudo = ip6(source) + ip6(destination) + struct.pack("!I", len(payload)) + bytes((0, 0, 0, 112))
    payload = with_v3_sum(payload, pseudo)
    packet = struct.pack("!IHBB16s16s", 0x60000000, len(payload), 112, 255, ip6(source), ip6(destination)) + payload
    found = decode(ETH_P_IPV6, packet)
    assert isinstance(found, Advert)
    assert (found.family, found.source, found.vrid, found.priority, found.interval, found.addresses) == \
        (6, "fe80::1", 9, 200, 1.0, ("fe80::99", "2001:db8::99"))
    assert found.checksum_ok


def test_arp_request_and_reply() -> None:
    mac = bytes.fromhex("020000000002")
    packet = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, mac, ip4("192.0.2.100"), b"\xff" * 6,
                         ip4("192.0.2.1"))
    assert decode(ETH_P_ARP, packet) == Arp(2, "02:00:00:00:00:02", "192.0.2.100", "ff:ff:ff:ff:ff:ff", "192.0.2.1")


def test_a_neighbor_advertisement_is_read_as_ipv6s_arp() -> None:
    """The NA's target is the address it claims; its MAC the target link-layer option's, "" without one
    (the observer then takes the frame's source)."""
    assert decode(ETH_P_IPV6, icmpv6("136", "2001:db8::100", "00:00:5e:00:02:33")) == \
        Arp(136, "00:00:5e:00:02:33", "2001:db8::100", "", "ff02::1")
    assert decode(ETH_P_IPV6, icmpv6("136", "2001:db8::100")) == Arp(136, "", "2001:db8::100", "", "ff02::1")
    # An unknown option first (a nonce, type 14, 8 bytes) is stepped over to the target's MAC.
    packet = icmpv6("136", "2001:db8::100")
    nonce, option = bytes((14, 1)) + bytes(6), bytes((2, 1)) + bytes.fromhex("020000000009")
    found = decode(ETH_P_IPV6, with_icmpv6_sum(packet[:4] + struct.pack("!H", 40) + packet[6:] + nonce + option))
    assert isinstance(found, Arp) and found.sender_mac == "02:00:00:00:00:09"
    # What a receiver must ignore (RFC 4861 7.1.2), what is no NA, what the decoder does not follow.
    good = icmpv6("136", "2001:db8::100", "00:00:5e:00:02:33")
    ignored = [
        icmpv6("136", "2001:db8::100", "00:00:5e:00:02:33", hops=64),   # routed from off the link: forged
        good[:-1] + bytes((good[-1] ^ 1,)),                              # bad checksum
        with_icmpv6_sum(good[:-7] + b"\0" + good[-6:]),                  # an option of length 0
        with_icmpv6_sum(good[:-7] + b"\x09" + good[-6:]),                # an option past the packet
        icmpv6("135", "2001:db8::100", "00:00:5e:00:02:33"),             # a solicitation
        icmpv6("128", "2001:db8::100"),                                  # an echo request
        icmpv6("hop-by-hop", "2001:db8::100", "00:00:5e:00:02:33"),      # behind an extension header
    ]
    assert [decode(ETH_P_IPV6, packet) for packet in ignored] == [None] * len(ignored)
    assert all(decode(ETH_P_IPV6, good[:cut]) is None for cut in range(len(good)))


def with_icmpv6_sum(packet: bytes) -> bytes:
    """`packet` (an IPv6 header and an ICMPv6 message) with its ICMPv6 checksum recomputed."""
    message = packet[40:40 + int.from_bytes(packet[4:6], "big")]
    message = message[:2] + b"\0\0" + message[4:]
    pseudo = packet[8:40] + len(message).to_bytes(4, "big") + bytes((0, 0, 0, 58))
    return packet[:40] + message[:2] + struct.pack("!H", checksum(pseudo + message)) + message[4:]


def test_what_is_not_a_whole_advert_is_ignored() -> None:
    good = ipv4(vrrp2(addresses=("192.0.2.100", "192.0.2.101")))
    # every truncation, of the IP packet and of its advert
    assert all(decode(ETH_P_IP, good[:cut]) is None for cut in range(len(good) - 8))
    hostile = [
        ipv4(vrrp2(), protocol=17),                                     # UDP, not VRRP
        ipv4(vrrp2(), fragment=0x2000),                                 # first fragment (MF)
        ipv4(vrrp2(), fragment=0x0001),                                 # a later fragment
        ipv4(b"\x22" + vrrp2()[1:]),                                    # type 2 is not an advert
        ipv4(b"\x41" + vrrp2()[1:]),                                    # version 4
        ipv4(struct.pack("!BBBB", 0x21, 1, 1, 255) + b"\0" * 12),       # 255 addresses announced, 2 present
        good[:2] + struct.pack("!H", 4000) + good[4:],                  # IP length past the packet
        b"\x4f" + good[1:],                                             # header length 60 past a short packet
        b"\x44" + good[1:],                                             # header length 16: too short
        ipv4(vrrp3(1, 1, 100, ip4("192.0.2.1"), 1)).replace(b"\x31", b"\x21", 1)[:24],
    ]
    assert [decode(ETH_P_IP, packet) for packet in hostile] == [None] * len(hostile)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 3, b"\0" * 6, b"\0" * 4, b"\0" * 6, b"\0" * 4)
    assert decode(ETH_P_ARP, arp) is None and decode(ETH_P_ARP, arp[:27]) is None
    assert decode(0x88CC, good) is None
    # a VRRPv2 advert over IPv6 does not exist (RFC 3768 is IPv4 only)
    v2 = vrrp2()
    packet6 = struct.pack("!IHBB16s16s", 0x60000000, len(v2), 112, 255, ip6("fe80::1"), ip6("ff02::12")) + v2
    assert decode(ETH_P_IPV6, packet6) is None
    assert decode(ETH_P_IPV6, packet6[:39]) is None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([ETH_P_IP, ETH_P_IPV6, ETH_P_ARP]), st.binary(max_size=200))
def test_random_bytes_never_raise(ethertype: int, data: bytes) -> None:
    decode(ethertype, data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_random_icmpv6_behind_a_valid_ipv6_header_never_raises(message: bytes) -> None:
    packet = struct.pack("!IHBB", 6 << 28, len(message), 58, 255) + ip6("fe80::1") + ip6("ff02::1") + message
    found = decode(ETH_P_IPV6, packet)
    assert found is None or (isinstance(found, Arp) and found.operation == 136)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=120), st.integers(0, 255))
def test_random_vrrp_payloads_behind_a_valid_ip_header_never_raise(payload: bytes, first: int) -> None:
    found = decode(ETH_P_IP, ipv4(bytes((first,)) + payload))
    assert found is None or isinstance(found, Advert)
