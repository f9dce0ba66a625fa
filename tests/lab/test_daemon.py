"""End to end, in the lab: `kahooks serve` on both balancers, keepalived tracking its track file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from kahooks.lab.pair import Pair, PairOptions

pytestmark = pytest.mark.root


def seen_after(pair: Pair, after: float, fragment: str) -> bool:
    return any(fragment in entry["what"] for entry in pair.seen() if entry["t"] >= after)


def test_daemon_pair_fails_over_notifies_through_the_fifo_and_its_guard_faults_a_dead_daemon(
        work: Path, lab_bin: Path) -> None:
    with Pair(work, lab_bin, PairOptions(tag="khle2e5", check="daemon")) as pair:
        pair.wait_answer("lb1", 30)
        track = pair.state_dir("lb1") / "track" / "haproxy"
        assert track.read_text() == "0\n"
        # `kahooks status` shows keepalived's own view next to the daemon's.
        status = pair.nodes["lb1"].run([str(lab_bin / "kahooks"), "status", "-c", str(work / "lb1" / "kahooks.toml")])
        assert "keepalived: VI_1 MASTER, priority 150 (base 150)" in status.stdout, status.stdout

        # haproxy dies: the daemon writes the track file, keepalived faults lb1, lb2 takes the VIP.
        killed = pair.kill_haproxy("lb1")
        pair.wait_answer("lb2", 20)
        fault = pair.state_at("lb1", "FAULT", killed)
        assert fault and pair.state_at("lb2", "MASTER", killed)
        assert track.read_text() == "1\n"
        assert "kahooks_haproxy" in " ".join(line for stamp, line in pair.keepalived["lb1"].lines if stamp >= killed)
        # keepalived wrote the transitions to the FIFO; each node's daemon delivered its own.
        for fragment in ("email: [lb1] VI_1 is FAULT", "email: [lb2] VI_1 is MASTER", "held by lb2"):
            wait_for(lambda: seen_after(pair, killed, fragment), 15, fragment)

        # haproxy back: found again, lb1 preempts.
        pair.start_haproxy("lb1")
        pair.wait_answer("lb1", 20)
        assert track.read_text() == "0\n"

        # The daemon crashes and stays down: its track file still says healthy, the guard faults lb1.
        crashed = pair.kill_daemon("lb1")
        pair.wait_answer("lb2", 20)
        assert pair.state_at("lb1", "FAULT", crashed)
        assert track.read_text() == "0\n"  # stale: only the heartbeat guard could tell
        assert pair.answer() == "lb2"

        # systemd's Restart=always: the daemon is back, the heartbeat is fresh, lb1 takes over again.
        pair.start_daemon("lb1")
        pair.wait_answer("lb1", 20)

        # keepalived reloads (and the daemon was restarted): the FIFO still carries lb1's transitions.
        pair.nodes["lb1"].run(["sh", "-c", "kill -HUP $(cat /run/keepalived.pid)"])
        reloaded = time.time()
        wait_for(lambda: pair.keepalived["lb1"].find("Reload", reloaded - 1), 10, "keepalived on lb1 to reload")
        time.sleep(1)  # deliberate: keepalived's reload settles (it logs no line when its FIFO is open again)
        killed = pair.kill_haproxy("lb1")
        pair.wait_answer("lb2", 20)
        wait_for(lambda: seen_after(pair, killed, "email: [lb1] VI_1 is FAULT"), 15, "lb1's FAULT after the reload")
        pair.start_haproxy("lb1")
        pair.wait_answer("lb1", 20)

        status = pair.nodes["lb1"].run([str(lab_bin / "kahooks"), "status", "-c", str(work / "lb1" / "kahooks.toml")],
                                       check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "haproxy" in status.stdout and "healthy" in status.stdout
        log = (work / "lb1" / "serve.log").read_text()
        assert "Traceback" not in log


def test_each_node_keeps_keepalived_s_dump_in_its_own_tmpdir() -> None:
    """keepalived writes its JSON dump to $TMPDIR/keepalived.json, and `kahooks status` reads it there: with
    one /tmp for every node, a CI run's test_daemon read a dump test_doctor's lab had asked for. Each node
    with its own namespaces has its own TMPDIR; a chroot from it runs without (the root has no such folder)."""
    from kahooks.lab.netns import Network, chroot

    with Network("khltmpd") as network:
        one, other = network.add_node("a", 11), network.add_node("b", 12)
        written = one.run(["sh", "-c", 'echo "{}" > "$TMPDIR/keepalived.json" && echo "$TMPDIR"']).stdout.strip()
        assert written.startswith("/run/")
        assert one.run(["test", "-e", f"{written}/keepalived.json"], check=False).returncode == 0
        assert other.run(["test", "-e", f"{written}/keepalived.json"], check=False).returncode == 1
        assert other.run(["sh", "-c", 'test ! -e "${TMPDIR:-/tmp}/keepalived.json"'], check=False).returncode == 0
    assert "TMPDIR" in chroot("/srv/root")[:3] and chroot("/srv/root")[-2:] == ["chroot", "/srv/root"]
