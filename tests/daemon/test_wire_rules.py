"""daemon/wire_kernel.py's `dropping_rules` against real rulesets in a network namespace: finding 1 (VRRP
blocked locally) names the rule that drops protocol 112, whether nftables holds it, iptables' nf_tables
back end (Debian's `iptables`) or iptables-legacy, each once and in the words that would remove it."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from kahooks.lab.netns import Network

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("iptables-nft") is None or shutil.which("nft") is None,
                                 reason="iptables and nftables are not installed (./run test installs them)")]

# Run inside the node: its rules are the namespace's own. A judged finding, as the observer makes it:
# local keepalived MASTER at 100 while adverts from 192.0.2.12 at 150 arrive, for over two intervals.
JUDGE = """
import json, time
from kahooks.daemon.segment import Local
from kahooks.daemon.wire_kernel import dropping_rules
from kahooks.daemon.wire_observer import Observer
from kahooks.vrrp_wire import Advert
rules = dropping_rules()
local = Local("VI_1", "eth0", 51, 4, 100, 1.0, 2, frozenset({"192.0.2.100"}))
observer = Observer([local], lambda: {"VI_1": ("MASTER", 100)}, lambda event: None)
now = time.time()
advert = Advert(4, "192.0.2.12", "224.0.0.18", 255, 2, 51, 150, 1.0, ("192.0.2.100",), 0, True)
for moment in (now - 3, now - 2, now - 1, now):
    observer.segment.advert("eth0", advert, False, moment)
    observer.judge(moment)
print(json.dumps({"rules": rules, "findings": [finding.sentence for finding in observer.findings]}))
"""


def judged(node) -> dict:
    return json.loads(node.run([sys.executable, "-c", JUDGE]).stdout)


def test_the_rule_dropping_vrrp_is_named_for_nftables_iptables_nft_and_iptables_legacy() -> None:
    with Network("khlw3rul") as network:
        node = network.add_node("a", 11, own_pids=False)
        bare = judged(node)
        assert bare["rules"] == [], bare
        assert "no nftables or iptables rule drops protocol 112" in bare["findings"][0], bare

        # iptables (nf_tables back end): its rules live in nft's `ip filter` table too, named once, as iptables.
        node.run(["iptables-nft", "-A", "INPUT", "-p", "vrrp", "-j", "DROP"])
        node.run(["ip6tables-nft", "-A", "INPUT", "-s", "2001:db8::1", "-p", "112", "-j", "REJECT"])
        node.run(["iptables-nft", "-A", "INPUT", "-p", "tcp", "-j", "DROP"])  # not VRRP: not named
        # nftables itself, with a counter (whose numbers would change the sentence with every packet).
        node.run(["nft", "add table inet khlw3 ; add chain inet khlw3 input { type filter hook input priority 0 ; }"])
        node.run(["nft", "add rule inet khlw3 input ip protocol { tcp, vrrp } counter drop"])
        expected = ["iptables table filter: -A INPUT -p vrrp -j DROP",
                    "ip6tables table filter: -A INPUT -s 2001:db8::1/128 -p vrrp -j REJECT "
                    "--reject-with icmp6-port-unreachable",
                    "nft table inet khlw3 chain input: ip protocol { tcp, vrrp } drop"]
        seen = by_name(judged(node))
        assert seen["rules"] == expected, seen
        assert seen["findings"] == ["VRRP blocked locally on eth0 for VRID 51 (VI_1): keepalived is MASTER here, yet "
                                    "adverts from 192.0.2.12 at priority 150 (ours 100) reach the interface: something "
                                    "between the NIC and keepalived drops them; the ruleset drops VRRP: "
                                    + " | ".join(expected)], seen

        # iptables-legacy: out of nft's sight altogether.
        if shutil.which("iptables-legacy") is None:
            return
        node.run(["nft", "flush ruleset"])
        node.run(["iptables-legacy", "-A", "INPUT", "-i", "eth0", "-p", "vrrp", "-j", "DROP"])
        seen = by_name(judged(node))
        assert seen["rules"] == ["iptables-legacy table filter: -A INPUT -i eth0 -p vrrp -j DROP"], seen
        assert seen["findings"][0].endswith("; the ruleset drops VRRP: iptables-legacy table filter: "
                                            "-A INPUT -i eth0 -p vrrp -j DROP"), seen


def by_name(seen: dict) -> dict:
    """iptables-save names protocol 112 `vrrp` where /etc/protocols does (netbase), else prints the number
    (a minimal Debian 13 root): the same rule either way."""
    def named(text: str) -> str:
        return text.replace("-p 112 ", "-p vrrp ")
    return {key: [named(item) for item in value] if isinstance(value, list) else value for key, value in seen.items()}

