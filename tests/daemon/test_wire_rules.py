"""daemon/wire_kernel.py's `dropping_rules` against real rulesets in a network namespace: finding 1 (VRRP
blocked locally) names the rule that drops protocol 112, whether nftables holds it, iptables' nf_tables
back end (Debian's `iptables`) or iptables-legacy, each once and in the words that would remove it; and the
input chain that drops it without naming it (a policy drop, a final reject: firewalld's zones, RHEL's iptables)
unless a rule before accepts VRRP."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

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
from kahooks.system.vrrp_wire import Advert
rules = dropping_rules(interface="eth0", family=4)
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



# firewalld 1.3's ruleset (Debian 12's) for the public zone with ssh and cockpit, trimmed of its other families'
# chains: written by hand (firewalld is not installed here). VRRP ends in filter_INPUT's final reject.
FIREWALLD = """
table inet firewalld {
	chain filter_INPUT {
		type filter hook input priority filter + 10; policy accept;
		ct state { established, related } accept
		ct status dnat accept
		iifname "lo" accept
		ct state invalid drop
		jump filter_INPUT_POLICIES
		reject with icmpx admin-prohibited
	}
	chain filter_INPUT_POLICIES {
		iifname "eth0" jump filter_IN_public
		jump filter_IN_public
	}
	chain filter_IN_public {
		jump filter_IN_public_pre
		jump filter_IN_public_allow
		jump filter_IN_public_post
		meta l4proto { icmp, ipv6-icmp } accept
	}
	chain filter_IN_public_pre {
	}
	chain filter_IN_public_allow {
		tcp dport 22 accept
		ip6 daddr fe80::/64 udp dport 546 accept
		tcp dport 9090 accept
	}
	chain filter_IN_public_post {
	}
	set khlw3_ports {
		type inet_service
		elements = { 22, 112 }
	}
}
"""
FIREWALLD_REJECT = ("nft table inet firewalld chain filter_INPUT: reject with icmpx admin-prohibited "
                    "(no rule before it accepts VRRP)")


def test_an_input_chain_dropping_vrrp_by_its_policy_or_final_reject_is_named_unless_a_rule_accepts_it(
        tmp_path: Path) -> None:
    with Network("khlw3pol") as network:
        node = network.add_node("a", 11, own_pids=False)

        def rules() -> list[str]:
            return by_name(judged(node))["rules"]

        def load(ruleset: str) -> None:
            (tmp_path / "ruleset.nft").write_text(ruleset)
            node.run(["nft", "-f", str(tmp_path / "ruleset.nft")])

        load(FIREWALLD)
        seen = judged(node)
        assert seen["rules"] == [FIREWALLD_REJECT], seen
        assert seen["findings"][0].endswith("; the ruleset drops VRRP: " + FIREWALLD_REJECT), seen
        # `firewall-cmd --add-protocol=vrrp`: the zone's allow chain, reached through two jumps, accepts it.
        node.run(["nft", "add rule inet firewalld filter_IN_public_allow meta l4proto vrrp accept"])
        assert rules() == [], "accepted by a jumped-to chain"
        node.run(["nft", "flush ruleset"])

        # A hand-written policy drop: established traffic and lo accepted, not VRRP multicast.
        load("table inet filter {\n chain input {\n type filter hook input priority 0; policy drop;\n"
             ' ct state established,related accept\n iifname "lo" accept\n tcp dport 22 accept\n }\n}\n')
        assert rules() == ["nft table inet filter chain input: policy drop (no rule in it accepts VRRP)"]
        node.run(["nft", "add rule inet filter input iifname \"eth1\" accept"])  # another interface's
        assert rules() == ["nft table inet filter chain input: policy drop (no rule in it accepts VRRP)"]
        node.run(["nft", "add rule inet filter input ip daddr 224.0.0.18 accept"])  # VRRP's group: accepted
        assert rules() == []
        node.run(["nft", "flush ruleset"])
        load("table ip6 filter6 {\n chain input {\n type filter hook input priority 0; policy drop;\n }\n}\n")
        assert rules() == [], "an IPv6 chain does not drop IPv4 VRRP"
        node.run(["nft", "flush ruleset"])

        # iptables: a DROP policy, and RHEL's final REJECT; an ACCEPT of all eth0 traffic before it lets VRRP in.
        node.run(["iptables-nft", "-P", "INPUT", "DROP"])
        assert rules() == ["iptables table filter: chain INPUT policy DROP (no rule in it accepts VRRP)"]
        node.run(["iptables-nft", "-P", "INPUT", "ACCEPT"])
        node.run(["iptables-nft", "-N", "ZONE"])
        node.run(["iptables-nft", "-A", "INPUT", "-j", "ZONE"])
        node.run(["iptables-nft", "-A", "INPUT", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"])
        assert rules() == ["iptables table filter: -A INPUT -j REJECT --reject-with icmp-host-prohibited "
                           "(no rule before it accepts VRRP)"]
        node.run(["iptables-nft", "-A", "ZONE", "-i", "eth0", "-j", "ACCEPT"])
        assert rules() == []
