"""The LVS pools a keepalived.conf declares: each virtual server, its real servers, their weights, its quorum.

keepalived 2.2.7 (check/check_parser.c): `virtual_server IP PORT`, `virtual_server fwmark N` or
`virtual_server group NAME`; inside, `real_server IP PORT { weight W }` (default 1), `quorum N`
(default 1: the sum of the weights of the live real servers it needs) and `sorry_server`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kahooks import lvs
from kahooks.doctor.conf import Statement, number, read
from kahooks.errors import UsageError


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
    """`IP PORT`, `fwmark N` or `group NAME` as kahooks.lvs keys them; None when it is neither."""
    if len(words) >= 2 and words[0] == "fwmark":
        return f"FWM {words[1]}"
    if len(words) >= 2 and words[0] == "group":
        return f"group {words[1]}"
    if len(words) >= 2:
        host = f"[{words[0]}]" if ":" in words[0] else words[0]
        try:
            return lvs.key(f"{host}:{words[1]}")
        except UsageError:
            return None
    return None


def pools(path: str, config_id: str | None = None) -> list[VirtualServer]:
    """Every virtual server of the configuration at `path` (ConfError when it cannot be read)."""
    found = []
    for statement in read(path, config_id).statements:
        if statement.keyword != "virtual_server":
            continue
        key = server_key(statement.args)
        if key is None:
            continue
        virtual = VirtualServer(key, number(statement.first("quorum"), 1, int), statement)
        for real in statement.all("real_server"):
            real_key = server_key(real.args)
            if real_key is not None:
                virtual.reals.append(RealServer(real_key, number(real.first("weight"), 1, int), real))
        found.append(virtual)
    return found
