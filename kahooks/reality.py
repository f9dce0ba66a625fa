"""What is true on this node right now, for channels that must not trust the order of notify calls.

keepalived forks notify handlers concurrently, so a BACKUP event can be handled
after the MASTER event that followed it. Channels that change things (DNS, rebind)
act on what is true now: is the VIP on an interface of this node, in this
network namespace, at this moment?
"""

from __future__ import annotations

import ipaddress


def addresses_here() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address on an interface of this network namespace."""
    import psutil

    found = set()
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            try:
                found.add(ipaddress.ip_address(address.address.split("%")[0]))
            except ValueError:
                continue  # MAC addresses (AF_PACKET) and the like
    return found


def vip_present(vip: str) -> bool:
    """Is `vip` (an address, optionally with /prefix) on an interface here now?"""
    return ipaddress.ip_address(vip.split("/")[0]) in addresses_here()


def vips_present(vips: list[str]) -> list[str]:
    """The subset of `vips` on an interface here now, in the given order."""
    here = addresses_here()
    return [vip for vip in vips if ipaddress.ip_address(vip.split("/")[0]) in here]
