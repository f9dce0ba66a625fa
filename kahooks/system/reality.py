"""What is true on this node right now: which addresses are on its interfaces.

keepalived forks notify handlers concurrently, so a BACKUP event can be handled
after the MASTER event that followed it. Channels that change things (DNS, rebind)
act on what is true now: is the VIP on an interface of this node, in this
network namespace, at this moment? `kahooks doctor --live` compares keepalived's
own view with the same answer.
"""

from __future__ import annotations

import ipaddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def addresses_here() -> set[Address]:
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


def vips_present(vips: Iterable[str], here: set[Address] | None = None) -> list[str]:
    """The subset of `vips` (addresses, optionally with /prefix) on an interface here now, or among
    `here` (what addresses_here() said), in the given order; what is no address is never present."""
    here = addresses_here() if here is None else here
    return [vip for vip in vips if _address(vip) in here]


def _address(vip: str) -> Address | None:
    try:
        return ipaddress.ip_address(vip.split("/")[0])
    except ValueError:
        return None
