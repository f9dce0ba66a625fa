"""What the kernel tells the wire observer (daemon/wire_observer.py), read without ever sending a packet.

A packet socket per interface with a classic BPF filter attached in the kernel (ARP, IPv4 protocol
112, IPv6 next header 112, ICMPv6 Neighbor Advertisements): no other packet ever wakes Python; its drop counter. This namespace's
addresses through rtnetlink (a dump, and a socket that wakes on a change), its interfaces' MACs, and
the nftables and iptables rules and input chains that drop VRRP (named in finding 1).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import time

from kahooks.system.vrrp_wire import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMPV6, IPPROTO_VRRP, NEIGHBOR_ADVERTISEMENT

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SKF_AD_PROTOCOL = 0xFFFFF000  # SKF_AD_OFF + SKF_AD_PROTOCOL: the frame's ethertype, in host order
SNAPLEN = 4096
# (code, jt, jf, k): accept ARP, IPv4 with protocol 112, IPv6 with next header 112, and ICMPv6 Neighbor
# Advertisements (type 136) right after the IPv6 header (SOCK_DGRAM: offsets from the network header); drop
# the rest, other ICMPv6 (echo, router and neighbour solicitations, MLD) included.
FILTER = (
    (0x28, 0, 0, SKF_AD_PROTOCOL),     # 0: A = ethertype
    (0x15, 9, 0, ETH_P_ARP),           # 1: ARP -> accept
    (0x15, 0, 2, ETH_P_IP),            # 2: not IPv4 -> IPv6 test
    (0x30, 0, 0, 9),                   # 3: A = IPv4 protocol
    (0x15, 6, 7, IPPROTO_VRRP),        # 4: 112 -> accept, else drop
    (0x15, 0, 6, ETH_P_IPV6),          # 5: not IPv6 -> drop
    (0x30, 0, 0, 6),                   # 6: A = IPv6 next header
    (0x15, 3, 0, IPPROTO_VRRP),        # 7: 112 -> accept
    (0x15, 0, 3, IPPROTO_ICMPV6),      # 8: not ICMPv6 -> drop
    (0x30, 0, 0, 40),                  # 9: A = ICMPv6 type (a packet too short for it: the kernel drops)
    (0x15, 0, 1, NEIGHBOR_ADVERTISEMENT),  # 10: NA -> accept, else drop
    (0x06, 0, 0, SNAPLEN),             # 11: accept
    (0x06, 0, 0, 0),                   # 12: drop
)


def open_socket(interface: str) -> socket.socket:
    """A packet socket on `interface` that hears only what FILTER accepts, in and out, and never sends."""
    # Protocol 0 hears nothing until bind: the filter is in place before the first packet can queue.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
    try:
        program = b"".join(struct.pack("HBBI", *line) for line in FILTER)
        buffer = ctypes.create_string_buffer(program)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                        struct.pack("HL", len(FILTER), ctypes.addressof(buffer)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.bind((interface, ETH_P_ALL))
    except OSError:
        sock.close()
        raise
    return sock


def dropped(sock: socket.socket) -> int:
    """Packets the kernel dropped for this socket since the last call (its buffer was full)."""
    try:
        _, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    except OSError:
        return 0
    return drops


# The kernel's addresses, through rtnetlink ------------------------------------------------------

NETLINK_ROUTE = 0
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLMSG_DONE, NLMSG_ERROR = 3, 2
RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x10, 0x100
MAX_ADDRESSES = 4096


def kernel_addresses(timeout: float = 1.0) -> set[str]:
    """Every address of every interface of this network namespace (an RTM_GETADDR dump)."""
    found: set[str] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as sock:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        sock.send(struct.pack("=IHHII", 24, RTM_GETADDR, 0x301, 1, 0) + struct.pack("BBBBI", 0, 0, 0, 0, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < MAX_ADDRESSES:
            data = sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16 or kind in (NLMSG_DONE, NLMSG_ERROR):
                    return found
                if kind == RTM_NEWADDR:
                    found.update(_address_of(data[offset + 16:offset + length]))
                offset += (length + 3) & ~3
    return found


def _address_of(message: bytes) -> list[str]:
    if len(message) < 8:
        return []
    family = message[0]
    out = []
    offset = 8
    while offset + 4 <= len(message):
        length, kind = struct.unpack_from("=HH", message, offset)
        if length < 4:
            break
        value = message[offset + 4:offset + length]
        if kind in (1, 2) and family in (socket.AF_INET, socket.AF_INET6) and len(value) in (4, 16):
            out.append(socket.inet_ntop(family, value))  # IFA_ADDRESS, IFA_LOCAL
        offset += (length + 3) & ~3
    return out


def address_events() -> socket.socket | None:
    """A netlink socket that becomes readable when an address comes or goes."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                             NETLINK_ROUTE)
        sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
    except OSError:
        return None
    return sock


def local_macs() -> set[str]:
    """The MAC of every interface here (keepalived's VMACs included): ARP from these is ours."""
    macs: set[str] = set()
    try:
        names = os.listdir("/sys/class/net")[:1024]
    except OSError:
        return macs
    for name in names:
        try:
            with open(os.path.join("/sys/class/net", name, "address")) as handle:
                macs.add(handle.read(64).strip().lower())
        except OSError:
            continue
    return macs


# The rule that drops VRRP ------------------------------------------------------------------------

# iptables' two back ends, each with its saver: iptables-nft (Debian's default since 10) keeps its rules in
# nftables tables of the same name, which `nft list ruleset` shows too; iptables-legacy keeps them apart,
# out of nft's sight. Named once each, in the words the user would use to remove them.
SAVERS = (("iptables-nft-save", "iptables", "ip"), ("ip6tables-nft-save", "ip6tables", "ip6"),
          ("iptables-legacy-save", "iptables-legacy", ""), ("ip6tables-legacy-save", "ip6tables-legacy", ""))
# Where neither saver is installed (another distribution, an older iptables): the plain savers.
PLAIN_SAVERS = (("iptables-save", "iptables", ""), ("ip6tables-save", "ip6tables", ""))
MAX_RULES = 5


def dropping_rules(timeout: float = 2.0, interface: str = "", family: int = 0) -> list[str]:
    """The nftables and iptables (nft and legacy) rules that drop or reject VRRP (protocol 112), one line each;
    then the input chains (for `family` 4 or 6, 0 for both) that drop it by their policy or a final drop or
    reject, with no rule before accepting VRRP on `interface` (see `_drops_vrrp`)."""
    import shutil

    rules: list[str] = []
    chains: list[str] = []
    savers = [saver for saver in SAVERS if shutil.which(saver[0])] or list(PLAIN_SAVERS)
    shown_by_iptables: set[str] = set()  # nft tables iptables-nft manages: named by iptables, not twice
    for program, name, nft_family in savers:
        output = _output([program], timeout)
        if output is None:
            continue
        table = ""
        lines = output.splitlines()[:20000]
        for line in lines:
            flags = set(line.split())
            if line.startswith("*"):
                table = line[1:].strip()
                if nft_family:
                    shown_by_iptables.add(f"{nft_family} {table}")
            elif line.startswith("-A ") and {"vrrp", "112"} & flags and {"DROP", "REJECT"} & flags:
                rules.append(f"{name} table {table}: {line[:200]}")
        if family in (0, 6 if name.startswith("ip6") else 4):
            chains.extend(_iptables_chains(name, lines, interface))
    output = _output(["nft", "list", "ruleset"], timeout)
    lines = (output or "").splitlines()[:20000]
    table = chain = ""
    for line in lines:
        words = line.split()
        if words[:1] == ["table"] and len(words) >= 3:
            table = " ".join(words[1:3])
        elif words[:1] == ["chain"] and len(words) >= 2:
            chain = words[1]
        elif table not in shown_by_iptables and {"vrrp", "112"} & {word.strip(",{}") for word in words} and \
                ("drop" in words or "reject" in words):
            rules.append(f"nft table {table} chain {chain}: {' '.join(_without_counters(words))[:200]}")
    chains.extend(_nft_chains(lines, interface, family, shown_by_iptables))
    return list(dict.fromkeys(rules + chains))[:MAX_RULES]


# An input chain that drops VRRP without naming it: firewalld's zones (a final `reject with icmpx
# admin-prohibited`), a hand-written `policy drop`, RHEL's iptables (`-A INPUT -j REJECT`). Such a chain is
# named when no rule before its end (or its final unconditional drop or reject), in it or in a chain it
# jumps to, accepts VRRP: a rule naming protocol 112 (`vrrp`), VRRP's group address, or everything arriving
# on the interface (`iifname "eth0" accept`, a bare `accept`). Nothing else is credited, honestly so: not
# `ct state established` (an advert is multicast and never answered: conntrack never calls it established),
# not a rule by source address or mark, which the sentence may then name although it lets the peer through.
VRRP_GROUPS = ("224.0.0.18", "224.0.0.18/32", "ff02::12", "ff02::12/128")
MAX_CHAINS = 4096


class _Rule:
    """One rule of a chain, as `_drops_vrrp` weighs it."""

    __slots__ = ("accepts", "final", "jumps", "text")

    def __init__(self, accepts: bool, final: bool, jumps: list[str], text: str) -> None:
        self.accepts, self.final, self.jumps, self.text = accepts, final, jumps, text


def _drops_vrrp(chains: dict[str, list[_Rule]], base: str, policy_drops: bool) -> str | None:
    """What in chain `base` drops VRRP: its final rule's text, "" for its policy; None when something accepts
    it first, or nothing drops it.
    Jumps are followed once each (a chain jumped to twice, or a loop, is read once): linear in the rules."""
    seen = {base}
    for rule in chains.get(base, []):
        if rule.accepts:
            return None
        pending = [jump for jump in rule.jumps if jump not in seen]
        while pending:  # every chain reachable from this jump: does any of its rules accept VRRP?
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            for inner in chains.get(name, []):
                if inner.accepts:
                    return None
                pending.extend(jump for jump in inner.jumps if jump not in seen)
        if rule.final:
            return rule.text
    return "" if policy_drops else None


def _iptables_chains(name: str, lines: list[str], interface: str) -> list[str]:
    """iptables-save's INPUT and PREROUTING chains that drop VRRP, table by table."""
    found: list[str] = []
    table = ""
    policies: dict[str, str] = {}
    chains: dict[str, list[_Rule]] = {}
    for line in [*lines, "COMMIT"]:
        words = line.split()
        if line.startswith("*"):
            table, policies, chains = line[1:].strip(), {}, {}
        elif line.startswith(":") and len(words) >= 2 and len(policies) < MAX_CHAINS:
            policies[words[0][1:]] = words[1]
        elif words[:1] == ["-A"] and len(words) >= 2:
            matches, target = words[2:], ""
            for flag in ("-j", "-g"):
                if flag in matches:
                    index = matches.index(flag)
                    matches, target = matches[:index], " ".join(matches[index + 1:index + 2])
                    break
            accepts = target == "ACCEPT" and (
                _names_vrrp(matches, ("-p", "--protocol"), ("-d", "--destination"))
                or matches in ([], ["-i", interface], ["--in-interface", interface]))
            final = target in ("DROP", "REJECT") and not matches
            jumps = [target] if target in policies else []
            if len(chains) < MAX_CHAINS:
                chains.setdefault(words[1], []).append(_Rule(accepts, final, jumps, line[:200]))
        elif words[:1] == ["COMMIT"] and table:
            for base in ("PREROUTING", "INPUT"):
                if base in policies:
                    dropping = _drops_vrrp(chains, base, policies[base] == "DROP")
                    if dropping is not None:
                        found.append(f"{name} table {table}: " + (f"{dropping} (no rule before it accepts VRRP)"
                                     if dropping else f"chain {base} policy DROP (no rule in it accepts VRRP)"))
            table = ""
    return found


def _nft_chains(lines: list[str], interface: str, family: int, skipped: set[str]) -> list[str]:
    """`nft list ruleset`'s base chains hooked at input or prerouting that drop VRRP of `family`."""
    found: list[str] = []
    wanted = {"inet", "ip", "ip6"} if family == 0 else {"inet", "ip" if family == 4 else "ip6"}
    table, block, chain = "", "", ""
    chains: dict[str, list[_Rule]] = {}
    bases: dict[str, bool] = {}  # base chain -> its policy drops

    def close_table() -> None:
        for base, policy_drops in bases.items():
            dropping = _drops_vrrp(chains, base, policy_drops)
            if dropping is not None:
                found.append(f"nft table {table} chain {base}: " + (f"{dropping} (no rule before it accepts VRRP)"
                             if dropping else "policy drop (no rule in it accepts VRRP)"))

    for line in lines:
        words = line.split()
        if words[:1] == ["table"] and len(words) >= 3:
            close_table()
            table, block, chain, chains, bases = " ".join(words[1:3]), "", "", {}, {}
            if words[1] not in wanted or table in skipped:
                table = ""
        elif not table:
            continue
        elif words[:1] in (["chain"], ["set"], ["map"], ["flowtable"]) and len(words) >= 2:
            block, chain = words[0], words[1]
            if block == "chain" and len(chains) < MAX_CHAINS:
                chains.setdefault(chain, [])
        elif block != "chain" or chain not in chains or not words or words == ["}"]:
            continue
        elif words[0] == "type":
            if "hook" in words and words[words.index("hook") + 1:][:1] in (["input"], ["prerouting"]):
                policy = words[words.index("policy") + 1:][:1] if "policy" in words else []
                bases[chain] = [word.strip(";") for word in policy] == ["drop"]
        elif words[0] not in ("policy", "comment", "devices", "device"):
            words = _without_counters(words)
            if "comment" in words:
                words = words[:words.index("comment")]
            verdict = words[-1] if words else ""
            if "reject" in words:
                verdict, matches = "reject", words[:words.index("reject")]
            else:
                matches = words[:-1]
            accepts = verdict == "accept" and "!=" not in matches and (
                _names_vrrp(matches, ("protocol", "l4proto", "nexthdr"), ("daddr",))
                or matches in ([], ["iifname", f'"{interface}"'], ["iif", f'"{interface}"'],
                               ["meta", "iifname", f'"{interface}"']))
            final = verdict in ("drop", "reject") and not matches
            jumps = [word.strip(",{}") for before, word in zip(words, words[1:]) if before in ("jump", "goto")]
            chains[chain].append(_Rule(accepts, final, jumps, " ".join(words)[:200]))
    close_table()
    return found


def _names_vrrp(matches: list[str], protocol_words: tuple[str, ...], destination_words: tuple[str, ...]) -> bool:
    """Whether a rule's matches name protocol 112 (alone or in a set) or VRRP's group address."""
    for before, word in zip(matches, matches[1:]):
        if (before in protocol_words and word.strip(",") in ("vrrp", "112")) or \
                (before in destination_words and word in VRRP_GROUPS):
            return True
    # A set of protocols (`{ tcp, vrrp }`) spreads over several words: a protocol match, then `{`.
    return any(word in protocol_words for word in matches) and "{" in matches and \
        bool({"vrrp", "112"} & {word.strip(",{}") for word in matches})


def _without_counters(words: list[str]) -> list[str]:
    """A rule's words without `counter packets N bytes M`: the sentence would change with every packet."""
    out: list[str] = []
    index = 0
    while index < len(words):
        if words[index:index + 2] == ["counter", "packets"] and words[index + 3:index + 4] == ["bytes"]:
            index += 5
            continue
        out.append(words[index])
        index += 1
    return out


def _output(argv: list[str], timeout: float) -> str | None:
    """The output of a ruleset's reader, None when it is missing or fails."""
    from kahooks.system import commands

    try:
        finished = commands.run(argv, timeout)
    except OSError:
        return None
    return finished.output if finished.code == 0 else None
