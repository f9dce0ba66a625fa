"""The LVS pools a keepalived.conf declares: each virtual server, its real servers, their weights, its quorum.

keepalived 2.2.7 (check/check_parser.c): `virtual_server IP PORT`, `virtual_server fwmark N` or
`virtual_server group NAME`; inside, `real_server IP PORT { weight W }` (default 1), `quorum N`
(default 1: the sum of the weights of the live real servers it needs) and `sorry_server`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from kahooks.doctor.conf import ConfError, Statement, checked, read
from kahooks.errors import UsageError
from kahooks.events import lvs

QUORUM = (1, 2**32 - 1, True)  # check_parser.c
WEIGHT = (0, 65535, True)      # IPVS_WEIGHT_LIMIT


@dataclass
class RealServer:
    key: str
    weight: int
    where: Statement


@dataclass
class VirtualServer:
    key: str
    quorum: int
    where: Statement
    reals: list[RealServer] = field(default_factory=list)


def server_key(words: list[str]) -> str | None:
    """`IP PORT`, `fwmark N` or `group NAME` as kahooks.events.lvs keys them; None when it is neither.
    An address that is no IP address (10.0.0.300) is never taken for a group's name."""
    if len(words) >= 2 and words[0] == "fwmark":
        return f"FWM {words[1]}"
    if len(words) >= 2 and words[0] == "group":
        return f"group {words[1]}"
    if len(words) >= 2:
        try:
            address = ipaddress.ip_address(words[0])
            return lvs.key(f"[{address}]:{words[1]}" if address.version == 6 else f"{address}:{words[1]}")
        except (ValueError, UsageError):
            return None
    return None


def _key_of(statement: Statement) -> str:
    key = server_key(statement.args)
    if key is None:
        shown = " ".join(statement.args)[:80]
        raise ConfError(statement.file, statement.line, f"{statement.keyword} {shown!r}: not an IP address and a port "
                                                        f"from 1 to 65535 (nor fwmark N, group NAME)")
    return key


def _whole(statement: Statement, keyword: str, default: int, limits: tuple[int, int, bool]) -> int:
    """A number drain decides with: a bad one stops it (FILE:LINE) rather than being guessed."""
    found = statement.first(keyword)
    value, problem = checked(found, default, *limits)
    if problem is not None and found is not None:
        raise ConfError(found.file, found.line, problem)
    return int(value)


def pools(path: str, config_id: str | None = None) -> list[VirtualServer]:
    """Every virtual server of the configuration at `path` (ConfError when it cannot be read)."""
    found = []
    for statement in read(path, config_id).statements:
        if statement.keyword != "virtual_server":
            continue
        virtual = VirtualServer(_key_of(statement), _whole(statement, "quorum", 1, QUORUM), statement)
        for real in statement.all("real_server"):
            virtual.reals.append(RealServer(_key_of(real), _whole(real, "weight", 1, WEIGHT), real))
        found.append(virtual)
    return found
