"""End to end, in the lab: real keepalived pairs with kahooks in keepalived.conf (the seeds' scenarios)."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from kahooks.lab.pair import VIP, Pair, PairOptions

pytestmark = pytest.mark.root
def seen_after(pair: Pair, after: float, fragment: str) -> bool:
    return any(fragment in entry["what"] for entry in pair.seen() if entry["t"] >= after)


def syslog_after(pair: Pair, after: float, host: str, state: str) -> bool:
    return any(stamp >= after and sender == host and f'state="{state}"' in line
               for stamp, sender, line in pair.rsyslog.stamped_lines())


def test_haproxy_pair_fails_over_notifies_everyone_and_fails_back(work: Path, lab_bin: Path) -> None:
    """Seeds 001/002: `killall -0 haproxy` replaced by `ka-check-process haproxy`, with script security."""
    with Pair(work, lab_bin, PairOptions(tag="khle2e1")) as pair:
        pair.wait_answer("lb1", 30)
        wait_for(lambda: seen_after(pair, 0, "held by lb1"), 10, "DNS to name lb1 the holder")

        # No false failover: healthy services for a while, no transitions at all.
        settled = time.time()
        time.sleep(5)  # deliberate: an observation window in which nothing may happen
        assert pair.transitions(settled) == []

        killed = pair.kill_haproxy("lb1")
        pair.wait_answer("lb2", 20)
        assert pair.state_at("lb1", "FAULT", killed) and pair.state_at("lb2", "MASTER", killed)
        for fragment in ("email: [lb1] VI_1 is FAULT", "slack: [lb1] VI_1 is FAULT",
                         "email: [lb2] VI_1 is MASTER", "slack: [lb2] VI_1 is MASTER", "held by lb2"):
            wait_for(lambda: seen_after(pair, killed, fragment), 15, fragment)
        wait_for(lambda: syslog_after(pair, killed, "lb1", "FAULT") and syslog_after(pair, killed, "lb2", "MASTER"),
                 15, "syslog lines from both nodes")

        restarted = time.time()
        pair.start_haproxy("lb1")
        pair.wait_answer("lb1", 20)  # preemption: the higher priority takes the VIP back
        for fragment in ("email: [lb1] VI_1 is MASTER", "email: [lb2] VI_1 is BACKUP", "held by lb1"):
            wait_for(lambda: seen_after(pair, restarted, fragment), 15, fragment)

        # Script security as documented: nothing refused, the handler ran as keepalived_script.
        logs = "\n".join(line for stamped in pair.keepalived.values() for _, line in stamped.lines)
        assert "Unsafe permissions" not in logs and "disabling" not in logs.lower()
        script_user = pwd.getpwnam("keepalived_script").pw_uid
        assert (work / "lb1" / "spool" / "state").stat().st_uid == script_user


def test_interface_down_faults_and_notifications_follow(work: Path, lab_bin: Path) -> None:
    """Seed 004: `track_interface`. The tracked inside link goes down: FAULT, and everyone hears at once.
    Then the VRRP link itself goes down: lb1's own messages wait in its spool and arrive when it is back."""
    with Pair(work, lab_bin, PairOptions(tag="khle2e2", track_interface=True)) as pair:
        pair.wait_answer("lb1", 30)
        down = time.time()
        pair.nodes["lb1"].run(["ip", "link", "set", "eth1", "down"])
        pair.wait_answer("lb2", 20)
        wait_for(lambda: pair.state_at("lb1", "FAULT", down), 10, "lb1 FAULT")
        for fragment in ("email: [lb1] VI_1 is FAULT", "slack: [lb2] VI_1 is MASTER", "held by lb2"):
            wait_for(lambda: seen_after(pair, down, fragment), 15, fragment)
        up = time.time()
        pair.nodes["lb1"].run(["ip", "link", "set", "eth1", "up"])
        pair.wait_answer("lb1", 20)
        wait_for(lambda: seen_after(pair, up, "held by lb1"), 15, "DNS back to lb1")

        cut = time.time()
        pair.nodes["lb1"].run(["ip", "link", "set", "eth0", "down"])
        pair.wait_answer("lb2", 20)
        wait_for(lambda: seen_after(pair, cut, "email: [lb2] VI_1 is MASTER"), 15, "lb2's MASTER mail")
        assert not seen_after(pair, cut, "[lb1] VI_1 is FAULT")  # lb1 is cut off: its message waits
        time.sleep(1)  # deliberate: lb1 stays cut off for a while
        pair.nodes["lb1"].run(["ip", "link", "set", "eth0", "up"])
        for fragment in ("email: [lb1] VI_1 is FAULT", "slack: [lb1] VI_1 is FAULT"):
            wait_for(lambda: seen_after(pair, cut, fragment), 20, f"{fragment} after the link came back")
        pair.wait_answer("lb1", 20)


def test_apache_style_pair_with_an_http_check(work: Path, lab_bin: Path) -> None:
    """Seed 003: `pidof httpd` replaced by `ka-check-http`: the web server dies, haproxy does not."""
    with Pair(work, lab_bin, PairOptions(tag="khle2e3", check="http", notify=False)) as pair:
        pair.wait_answer("lb1", 30)
        killed = pair.kill_backend("lb1")
        wait_for(lambda: pair.state_at("lb1", "FAULT", killed), 10, "lb1 FAULT")
        pair.wait_answer("lb2", 20)
        assert os.path.exists(work / "lb1" / "keepalived.log")
        assert VIP not in pair.nodes["lb1"].addresses()


def test_squid_pair_rebinds_the_moved_vip_and_dns_follows(work: Path, lab_bin: Path) -> None:
    """Seed 004: two squids, two VIPs, `squid -k check` at interval 3, round-robin DNS over both VIPs."""
    from kahooks.lab.squidpair import VIPS, SquidPair

    vip1, vip2 = VIPS["VI_1"], VIPS["VI_2"]
    with SquidPair(work, lab_bin) as pair:
        pair.wait_state("lb1", "MASTER", timeout=30)
        pair.wait_state("lb2", "MASTER", timeout=30, instance="VI_2")
        pair.wait_fetch(vip1)
        pair.wait_fetch(vip2)
        wait_for(lambda: pair.bind.query("192-0-2-101._kahooks.proxy.example.test", "TXT") == {'"lb1"'}, 15,
                 "lb1 to claim VIP1 in DNS")

        killed = time.time()
        pair.kill_squid("lb1")
        wait_for(lambda: vip1 in pair.nodes["lb2"].addresses(), 20, "VIP1 to move to lb2")
        # lb2's squid started without VIP1; ka-notify reconfigured it and waited until it listened.
        pair.wait_fetch(vip1, 20)
        assert pair.fetch_through(vip2) == "backend"
        wait_for(lambda: pair.bind.query("192-0-2-101._kahooks.proxy.example.test", "TXT") == {'"lb2"'}, 15,
                 "lb2 to claim VIP1 in DNS")
        assert pair.bind.query("proxy.example.test", "A") == {vip1, vip2}  # both names still point at live VIPs
        log = (work / "lb2" / "keepalived.log").read_text()
        assert "Entering MASTER STATE" in log and pair.state_at("lb1", "FAULT", killed)
        squid_log = (work / "lb2" / "cache.log").read_text()
        assert f"local={vip1}:3128" in squid_log  # "Accepting HTTP Socket connections at ... local=VIP1"
