"""Every prediction of `kahooks doctor` checked against real keepalived (issue: prove each prediction).

Two lab nodes run one keepalived each, whose keepalived.conf includes every corpus entry
(tests/support/doctor_corpus.py). The doctor reads the same two files and predicts, for each
tracked item of each node, who holds each VIP after it fails, after how long, and after it
recovers. Then, phase by phase (keepalived restarted between phases, so each starts from the
first election): fail the item on each node in turn, see who holds each VIP and when the new
MASTER entered that state, recover, see again. Agreement must be total, and each failover
within 0.3 s of the doctor's `failover_s` (the longest it can take: a script fails just after
a run, so its detection takes whole intervals, as the doctor's figure assumes).
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kahooks.lab.netns import LabError, Network, Node, wait_for
from kahooks.lab.pair import Stamped
from tests.support.doctor_corpus import CORPUS, SCRIPT_INTERVAL, SUBNET
from tests.support.programs import program, quiet_env

pytestmark = pytest.mark.root
NODES = ("lb1", "lb2")
TOLERANCE = 0.3

CHECK = """#!/bin/sh
# A corpus track script: it notes each run, and fails while its flag exists, noting its first failing run.
touch "{work}/ran/$1"
if [ -e "{work}/flags/$1" ]; then
    [ -e "{work}/ran/$1.failing" ] || touch "{work}/ran/$1.failing"
    exit 1
fi
"""

# vrrp_priority -20: each node's VRRP process runs at nice -20 (its scripts do not: lib/notify.c resets the
# priorities in each script's child, 2.2.7 and 2.3.3), as on a busy balancer: with adverts every 0.2 s a stall
# of 0.7 s is a flap, and CI runs four suites on two cores (a CI run saw lb2 take a VIP while lb1 was healthy;
# under 8 busy loops a failover took 0.94 s against 0.61 predicted, none with it). Not vrrp_rt_priority: with
# 28 instances its start overruns the default vrrp_rlimit_rttime (10 ms) under load, and the kernel kills the
# VRRP child over and over ("has rlimit_rttime been exceeded?").
GLOBAL_DEFS = """global_defs {{
    router_id {node}
    enable_script_security
    script_user keepalived_script
    vrrp_priority -20
}}
"""
NODE_CONF = GLOBAL_DEFS + "include ../corpus/*/{node}.conf\n"


class Lab:
    """The work tree, the two nodes and their keepalived processes."""

    def __init__(self, work: Path, net: Network) -> None:
        self.work = work
        self.nodes: dict[str, Node] = {name: net.add_node(name, index) for index, name in enumerate(NODES, 11)}
        self.keepalived: dict[str, Stamped] = {}
        user = pwd.getpwnam("keepalived_script")
        for sub in ("ran", "flags", "track", "corpus", *NODES):
            (work / sub).mkdir(mode=0o755)
        os.chown(work / "ran", user.pw_uid, user.pw_gid)
        check = work / "check"
        check.write_text(CHECK.format(work=work))
        check.chmod(0o755)
        for entry in CORPUS:
            directory = work / "corpus" / entry.name
            directory.mkdir()
            (directory / "lb1.conf").write_text(entry.lb1.replace("{work}", str(work)))
            (directory / "lb2.conf").write_text(entry.lb2.replace("{work}", str(work)))
        for node in NODES:
            (work / node / "keepalived.conf").write_text(NODE_CONF.format(node=node))

    def conf(self, node: str) -> str:
        return str(self.work / node / "keepalived.conf")

    def reset_items(self) -> None:
        for flag in [*(self.work / "flags").iterdir(), *(self.work / "ran").glob("*.failing")]:
            flag.unlink()
        for entry in CORPUS:
            for node in NODES:
                self.write_track(f"{entry.name}_{node}", 0)

    def write_track(self, name: str, value: int) -> None:
        temporary = self.work / "track" / f".{name}.tmp"
        temporary.write_text(f"{value}\n")
        os.rename(temporary, self.work / "track" / name)

    def start(self) -> None:
        self.reset_items()
        for name, node in self.nodes.items():
            process = node.popen(["keepalived", "-n", "-l", "-D", "-P", "-f", self.conf(name), "-p",
                                  "/run/keepalived.pid", "-r", "/run/vrrp.pid"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.keepalived[name] = Stamped(process, self.work / name / f"keepalived-{time.time():.0f}.log")
            # lb1 comes up first, as one node boots before the other: with nopreempt on the node of higher
            # priority, a start within the skew difference (0.2 s) is a coin toss keepalived does not settle.
            time.sleep(0.5)  # deliberate

    def stop(self) -> None:
        # The process we hold is nsenter, which passes no signal on: stop keepalived inside the node.
        for node in self.nodes.values():
            node.run(["pkill", "-TERM", "-x", "keepalived"], check=False)
        for node in self.nodes.values():
            wait_for(lambda: node.run(["pgrep", "-x", "keepalived"], check=False).returncode == 1, 15,
                     f"keepalived on {node.namespace} to stop")
        for stamped in self.keepalived.values():
            try:
                stamped.process.wait(10)
            except subprocess.TimeoutExpired:
                stamped.process.kill()
                stamped.process.wait(5)
        self.keepalived = {}

    def holders(self) -> dict[str, str | None]:
        """Each corpus VIP and the node holding it (None: nobody; 'lb1+lb2': both)."""
        present = {name: node.addresses() for name, node in self.nodes.items()}
        found: dict[str, str | None] = {}
        for vrid in range(101, 130):
            vip = f"{SUBNET}.{vrid}"
            holding = [name for name in NODES if vip in present[name]]
            found[vip] = "+".join(holding) if holding else None
        return found


def vip_of(instance: str, lab: Lab) -> str:
    """The VIP of a corpus instance, from its configuration on lb1."""
    for entry in CORPUS:
        marker = f"vrrp_instance {instance} {{"
        if marker in entry.lb1:
            block = entry.lb1.split(marker, 1)[1]
            vrid = int(block.split("virtual_router_id", 1)[1].split()[0])
            return f"{SUBNET}.{vrid}"
    raise KeyError(instance)


def predict(lab: Lab) -> list[dict]:
    result = subprocess.run([program("kahooks"), "doctor", "-f", lab.conf("lb1"), "--peer", lab.conf("lb2"), "--json",
                             "--no-keepalived-test"], capture_output=True, text=True, timeout=120, env=quiet_env())
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    by_path = {lab.conf(node): node for node in NODES}
    scenarios = []
    for scenario in report["scenarios"]:
        scenarios.append({**scenario, "node": by_path[scenario["node"]],
                          **{key: by_path.get(scenario[key]) for key in
                             ("master_before", "master_after_failure", "master_after_recovery")}})
    return scenarios


def fail(lab: Lab, item: str, kind: str, stamps: dict[str, float]) -> None:
    """Fail one item; for a script, just after a run, so detection takes whole intervals."""
    if kind == "script":
        ran = lab.work / "ran" / item
        seen = ran.stat().st_mtime if ran.exists() else 0.0
        deadline = time.monotonic() + 3
        while not (ran.exists() and ran.stat().st_mtime > seen) and time.monotonic() < deadline:
            time.sleep(0.005)  # a script keepalived ignores (c19) never runs: fail it all the same
        time.sleep(0.1)  # deliberate: this run has ended; the failure is seen at the next one
        (lab.work / "flags" / item).touch()
        # It failed, as far as keepalived can tell, the moment that run ended: no run comes between.
        stamps[item] = ran.stat().st_mtime if ran.exists() else time.time()
    else:
        lab.write_track(item, 1)
        stamps[item] = time.time()


def script_late(lab: Lab, item: str, kind: str, stamp: float) -> float:
    """How much later than keepalived's schedule (a whole interval after the last healthy run) the first
    failing run of a script began, as the script itself noted it: its start under load (fork, the switch to
    keepalived_script, exec), not keepalived's timers, which are what the doctor predicts. 0 for a track file,
    or for a script that never ran failing (c19's, which keepalived ignores)."""
    noted = lab.work / "ran" / f"{item}.failing"
    if kind != "script" or not noted.exists():
        return 0.0
    return max(0.0, noted.stat().st_mtime - (stamp + SCRIPT_INTERVAL))


def recover(lab: Lab, item: str, kind: str) -> None:
    if kind == "script":
        (lab.work / "flags" / item).unlink(missing_ok=True)
    else:
        lab.write_track(item, 0)


def phases(scenarios: list[dict]) -> list[tuple[str, int]]:
    """(node, n): the n-th item of every entry on that node fails together."""
    counts: dict[str, int] = {}
    for node in NODES:
        per_entry: dict[str, set[str]] = {}
        for scenario in scenarios:
            if scenario["node"] == node:
                per_entry.setdefault(scenario["fails"].split("_")[0], set()).add(scenario["fails"])
        counts[node] = max(len(items) for items in per_entry.values())
    return [(node, index) for node in NODES for index in range(counts[node])]


# How long a start that disagrees is looked at again before the disagreement counts: a CI run saw two VIPs
# on both nodes 9 s after the start (a flap under load, caught mid-way: each node's addresses are read one
# after the other), while the doctor predicts where the election settles.
SETTLE_LOOKS, SETTLE_PAUSE = 10, 0.5


def settled_holders(lab: Lab, mine: list[dict]) -> dict[str, str | None]:
    """The VIPs' holders once this phase's instances agree with the prediction, or after SETTLE_LOOKS looks
    (a disagreement that lasts is reported as it stands)."""
    for look in range(SETTLE_LOOKS):
        holders = lab.holders()
        unsettled = [scenario["instance"] for scenario in mine
                     if holders[vip_of(scenario["instance"], lab)] != scenario["master_before"]]
        if not unsettled:
            return holders
        print(f"at start, look {look + 1}: {', '.join(sorted(set(unsettled)))} not where predicted: "
              + "; ".join(instance_lines(lab, instance) for instance in sorted(set(unsettled))))
        time.sleep(SETTLE_PAUSE)  # deliberate: a flap settles within a few adverts
    return holders


def instance_lines(lab: Lab, instance: str) -> str:
    """What each node's keepalived said of one instance (and of its scripts), for a disagreement's message."""
    said = []
    entry = instance.rsplit("_", 1)[0]  # its scripts and files are named after the corpus entry
    for node, stamped in lab.keepalived.items():
        lines = [f"{stamp:.2f} {line}" for stamp, line in stamped.lines if f"({instance})" in line or f"{entry}_" in line]
        said.append(f"{node}: " + " | ".join(lines)[-900:])
    return "; ".join(said)


def live(lab: Lab, lab_bin: Path, node: str) -> dict:
    result = lab.nodes[node].run([str(lab_bin / "kahooks"), "doctor", "-f", lab.conf(node), "--live", "--json",
                                  "--no-keepalived-test"], check=False)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def live_checks(lab: Lab, lab_bin: Path) -> None:
    """--live, once the first election has settled (the first phase's, before anything fails): keepalived's own
    view of each instance, and a VIP configured where keepalived is not MASTER."""
    report = live(lab, lab_bin, "lb2")
    states = {entry["instance"]: entry for entry in report["live"]}
    assert states["c01_VI"]["state"] == "BACKUP" and states["c01_VI"]["priority"] == 100
    assert states["c15_VIb"]["state"] == "MASTER" and states["c15_VIb"]["vips_here"] == [f"{SUBNET}.116"]
    assert not [item for item in report["findings"] if item["code"].startswith("live-")], report["findings"]
    lab.nodes["lb2"].add_address(f"{SUBNET}.101/32")  # c01's VIP, by hand, on its BACKUP
    try:
        report = live(lab, lab_bin, "lb2")
    finally:
        lab.nodes["lb2"].remove_address(f"{SUBNET}.101/32")
    wrong = [item for item in report["findings"] if item["code"] == "live-vip-without-master"]
    assert len(wrong) == 1 and "c01_VI is BACKUP but 198.51.100.101 is on an interface here" in wrong[0]["message"]
    assert wrong[0]["file"].endswith("corpus/c01/lb2.conf")


def run_phase(lab: Lab, lab_bin: Path, scenarios: list[dict], node: str, index: int,
              first: bool) -> tuple[int, list[str], list[tuple]]:
    """Start both nodes, fail the index-th item of every entry on `node`, recover it: (scenarios checked,
    disagreements in words, the table's rows)."""
    checked, wrong, table = 0, [], []
    items = {}
    for scenario in scenarios:
        if scenario["node"] != node:
            continue
        entry_items = sorted({s["fails"] for s in scenarios
                              if s["node"] == node and s["fails"].split("_")[0] == scenario["fails"].split("_")[0]})
        if index < len(entry_items) and scenario["fails"] == entry_items[index]:
            items[scenario["fails"]] = scenario["tracked_as"]
    mine = [scenario for scenario in scenarios if scenario["node"] == node and scenario["fails"] in items]
    lab.start()
    try:
        time.sleep(9)  # deliberate: the first election, the scripts' first runs and a preemption settle
        before = settled_holders(lab, mine)
        if first:
            # The same settled start every phase has: --live is asked here rather than in a start of its own.
            live_checks(lab, lab_bin)
        for scenario in mine:
            vip = vip_of(scenario["instance"], lab)
            if before[vip] != scenario["master_before"]:
                wrong.append(f"{scenario['instance']} at start: held by {before[vip]}, "
                             f"predicted {scenario['master_before']}; " + instance_lines(lab, scenario["instance"]))
        stamps: dict[str, float] = {}
        threads = [threading.Thread(target=fail, args=(lab, item, kind, stamps)) for item, kind in items.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        longest = max([scenario["failover_s"] or 0 for scenario in mine] + [0])
        time.sleep(longest + 2.5)  # deliberate: past the longest predicted failover, then look
        after = lab.holders()
        for item, kind in items.items():
            recover(lab, item, kind)
        time.sleep(8)  # deliberate: 3 adverts + skew + preempt_delay 2 + a rise, then look
        recovered = lab.holders()
        for scenario in mine:
            vip = vip_of(scenario["instance"], lab)
            checked += 1
            measured, late = None, 0.0
            new = scenario["master_after_failure"]
            if new is not None and new != scenario["master_before"] and new in lab.keepalived:
                entered = lab.keepalived[new].find(f"({scenario['instance']}) Entering MASTER STATE",
                                                   stamps[scenario["fails"]])
                late = script_late(lab, scenario["fails"], scenario["tracked_as"], stamps[scenario["fails"]])
                measured = entered - stamps[scenario["fails"]] - late if entered else None
                if entered is None:
                    wrong.append(f"{scenario['instance']}: no 'Entering MASTER STATE' on {new} after the "
                                 f"failure; " + instance_lines(lab, scenario["instance"]))
            table.append((scenario["instance"], scenario["fails"], after[vip], scenario["master_after_failure"],
                          scenario["failover_s"], measured, late if measured is not None else None,
                          recovered[vip], scenario["master_after_recovery"]))
            if after[vip] != scenario["master_after_failure"]:
                wrong.append(f"{scenario['fails']} failed: {scenario['instance']} held by {after[vip]}, "
                             f"predicted {scenario['master_after_failure']}; "
                             + instance_lines(lab, scenario["instance"]))
            if recovered[vip] != scenario["master_after_recovery"]:
                wrong.append(f"{scenario['fails']} recovered: {scenario['instance']} held by {recovered[vip]}, "
                             f"predicted {scenario['master_after_recovery']}; "
                             + instance_lines(lab, scenario["instance"]))
            if scenario["failover_s"] is not None and (
                    measured is None or abs(measured - scenario["failover_s"]) > TOLERANCE):
                wrong.append(f"{scenario['fails']} failed: {scenario['instance']} failover measured "
                             f"{measured if measured is None else round(measured, 3)} s (its script's start "
                             f"{round(late, 3)} s late taken off), predicted {scenario['failover_s']} s; "
                             + instance_lines(lab, scenario["instance"]))
    finally:
        lab.stop()
    return checked, wrong, table


@pytest.mark.timeout(420)  # 4 phases of about 25 s, each may run twice, and the doctor's prediction
def test_every_prediction_of_the_doctor_holds_on_real_keepalived(work: Path, lab_bin: Path) -> None:
    assert len(CORPUS) >= 20
    with Network("khldoc", subnet=f"{SUBNET}.0/24") as net:
        lab = Lab(work, net)
        scenarios = predict(lab)
        assert {scenario["fails"].split("_")[0] for scenario in scenarios} == {entry.name for entry in CORPUS}
        checked, wrong, table = 0, [], []
        for node, index in phases(scenarios):
            first = (node, index) == phases(scenarios)[0]
            phase = run_phase(lab, lab_bin, scenarios, node, index, first)
            if phase[1]:
                # A phase that disagreed runs once more from a fresh start, and its second run is the one judged:
                # in CI both releases' suites share two cores with a forged VRRP flood, and a check script that
                # overran its 1 s timeout (FAULT on a healthy node: c15 "held by None") or finished late (c10
                # 0.308 s off, the tolerance 0.3) once failed phases whose prediction held run alone. A model
                # error disagrees both times; the first run's words are printed either way.
                print(f"\nphase {node} #{index} disagreed, run again:\n" + "\n".join(phase[1]))
                phase = run_phase(lab, lab_bin, scenarios, node, index, first)
            checked += phase[0]
            wrong += phase[1]
            table += phase[2]
        print("\ninstance  fails  held-after  predicted  failover-predicted  measured  script-late  held-recovered  "
              "predicted")
        for row in table:
            print("  ".join(str(round(value, 3)) if isinstance(value, float) else str(value) for value in row))
        assert checked >= 2 * len(CORPUS)
        assert not wrong, "\n".join(wrong)


# keepalived fidelity (issue 23): where the doctor and real keepalived 2.2.7 disagreed ----------------------------
# Each case is one pair in its own lab network, all cases at once. The doctor predicts, keepalived runs the pair,
# lb1's item fails just after a run (a script) or at once (an interface), and the holder after the failure and
# the failover time must be the doctor's: the time within [failover_min_s - 0.3, failover_max_s + 0.3].

FIDELITY_SUBNET = "203.0.113"
FAST_V3 = "    version 3\n    advert_int 0.2\n"


def fidelity_script(interval: str, weight: int) -> str:
    return (f'vrrp_script chk {{\n    script "{{work}}/check chk"\n    interval {interval}\n    timeout 1\n'
            f"    weight {weight}\n}}\n")


def fidelity_instance(name: str, vrid: int, head: str, tracks: str = "") -> str:
    return (f"vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id {vrid}\n{head}"
            f"    virtual_ipaddress {{\n        {FIDELITY_SUBNET}.{vrid}/24 dev eth0\n    }}\n{tracks}}}\n")


TRACK_CHK = "    track_script {\n        chk\n    }\n"
SYNC = "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
FIDELITY = {
    # state MASTER without priority: keepalived runs it at 255 and drops the weighted script (the doctor said 100).
    "khlfiowner": ("script", fidelity_script("1", -60) + fidelity_instance("VI_1", 61, "    state MASTER\n" + FAST_V3,
                                                                            TRACK_CHK),
                   fidelity_instance("VI_1", 61, "    state BACKUP\n    priority 100\n" + FAST_V3)),
    # A weighted track_interface in a sync group: keepalived still applies -30 (the doctor said FAULT).
    "khlfisync": ("interface",
                  fidelity_instance("VI_1", 62, "    priority 150\n" + FAST_V3,
                                    "    track_interface {\n        eth1 weight -30\n    }\n")
                  + fidelity_instance("VI_2", 63, "    priority 150\n" + FAST_V3) + SYNC,
                  fidelity_instance("VI_1", 62, "    priority 100\n" + FAST_V3)
                  + fidelity_instance("VI_2", 63, "    priority 100\n" + FAST_V3) + SYNC),
    # VRRPv2 advert_int 0.5 and a script interval 0.5: keepalived 2.2.7 runs both at 1 s.
    "khlfitime": ("script", fidelity_script("0.5", -60) + fidelity_instance("VI_1", 64, "    priority 150\n    advert_int 0.5\n",
                                                                             TRACK_CHK),
                  fidelity_script("0.5", -60) + fidelity_instance("VI_1", 64, "    priority 100\n    advert_int 0.5\n",
                                                                   TRACK_CHK)),
}
FIDELITY_NODE = GLOBAL_DEFS


def local_keepalived_version() -> str:
    """The keepalived that runs the pairs (2.2.7 on Debian 12, 2.3.3 on 13), as `keepalived --version` says."""
    done = subprocess.run(["keepalived", "--version"], capture_output=True, text=True, timeout=30)
    words = (done.stderr + done.stdout).split()
    return next(word[1:] for word in words if word.startswith("v") and word[1:2].isdigit())


def fidelity_case(tag: str, root: Path) -> list[str]:
    """Run one case; what disagreed, in words (empty: the doctor was right)."""
    kind, lb1_conf, lb2_conf = FIDELITY[tag]
    work = root / tag
    user = pwd.getpwnam("keepalived_script")
    for sub in ("ran", "flags"):
        (work / sub).mkdir(parents=True, mode=0o755)
    os.chown(work / "ran", user.pw_uid, user.pw_gid)
    (work / "check").write_text(CHECK.format(work=work))
    (work / "check").chmod(0o755)
    paths = {}
    for node, text in (("lb1", lb1_conf), ("lb2", lb2_conf)):
        paths[node] = work / f"{node}.conf"
        # Each node's script has its own flag: lb1's failing leaves lb2's healthy.
        paths[node].write_text(FIDELITY_NODE.format(node=node)
                               + text.replace("{work}/check chk", f"{work}/check {node}").replace("{work}", str(work)))
    doctor = subprocess.run([program("kahooks"), "doctor", "-f", str(paths["lb1"]), "--peer", str(paths["lb2"]),
                             "--json", "--no-keepalived-test"], capture_output=True, text=True, timeout=60, env=quiet_env())
    report = json.loads(doctor.stdout)
    by_path = {str(path): node for node, path in paths.items()}
    scenario = next(s for s in report["scenarios"] if s["node"] == str(paths["lb1"]) and s["instance"] == "VI_1")
    before, after = by_path.get(scenario["master_before"] or ""), by_path.get(scenario["master_after_failure"] or "")
    vip = f"{FIDELITY_SUBNET}.{FIDELITY[tag][1].split('virtual_router_id ')[1].split()[0]}"
    wrong: list[str] = []
    local = local_keepalived_version()
    if report.get("keepalived", {}).get("modelled") != local:  # this machine's keepalived, found by the doctor
        wrong.append(f"{tag}: the doctor modelled {report.get('keepalived')}, not this machine's {local}")
    with Network(tag, subnet=f"{FIDELITY_SUBNET}.0/24") as net:
        nodes = {name: net.add_node(name, index) for index, name in enumerate(("lb1", "lb2"), 11)}
        if kind == "interface":
            net.add_link("lb1")
        logs = {}
        for name, node in nodes.items():
            process = node.popen(["keepalived", "-n", "-l", "-D", "-f", str(paths[name]), "-p", "/run/keepalived.pid",
                                  "-r", "/run/vrrp.pid"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            logs[name] = Stamped(process, work / f"{name}.log")

        def holder() -> str | None:
            holding = [name for name, node in nodes.items() if vip in node.addresses()]
            return "+".join(holding) if holding else None

        try:
            wait_for(lambda: holder() == "lb1" and logs["lb2"].find("(VI_1) Entering BACKUP STATE"), 15,
                     f"{tag}: lb1 to hold {vip} and lb2 to be BACKUP")
            if before != "lb1":
                wrong.append(f"{tag}: lb1 holds {vip} at the start; the doctor predicted {before}")
            stamp = fail_fidelity(work, nodes["lb1"], kind)
            if after == "lb2":
                deadline = (scenario["failover_max_s"] or 0) + 3
                entered = wait_for(lambda: logs["lb2"].find("(VI_1) Entering MASTER STATE", stamp), deadline,
                                   f"{tag}: lb2 to take over", poll=0.02)
                measured = entered - stamp
                low, high = scenario["failover_min_s"] - TOLERANCE, scenario["failover_max_s"] + TOLERANCE
                if not low <= measured <= high:
                    wrong.append(f"{tag}: failover took {measured:.2f} s; the doctor predicted "
                                 f"{scenario['failover_min_s']}..{scenario['failover_max_s']} s")
            else:
                time.sleep(5)  # deliberate: past any failover the old model predicted (at most 4.6 s here)
                if logs["lb2"].find("(VI_1) Entering MASTER STATE", stamp) or holder() != after:
                    wrong.append(f"{tag}: {vip} held by {holder()} after lb1's {kind} failed; the doctor predicted {after}")
        except LabError as exc:
            wrong.append(f"{tag}: the real pair did not do what the doctor predicted ({exc}); lb2's log: "
                         + " | ".join(line for _, line in logs["lb2"].lines if "VI_1" in line)[-600:])
        finally:
            for node in nodes.values():
                node.run(["pkill", "-TERM", "-x", "keepalived"], check=False)
            for node in nodes.values():
                wait_for(lambda node=node: node.run(["pgrep", "-x", "keepalived"], check=False).returncode == 1, 15,
                         f"keepalived in {node.namespace} to stop")
            for stamped in logs.values():
                stamped.process.wait(10)
    return wrong


def fail_fidelity(work: Path, node: Node, kind: str) -> float:
    """Fail lb1's item: a script just after one of its runs (so detection takes whole intervals), an interface now."""
    if kind == "interface":
        stamp = time.time()
        node.run(["ip", "link", "set", "eth1", "down"])
        return stamp
    ran = work / "ran" / "lb1"
    deadline = time.monotonic() + 3
    while not ran.exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # a script keepalived drops (the address owner's weighted one) never runs
    if not ran.exists():
        (work / "flags" / "lb1").touch()
        return time.time()
    seen = ran.stat().st_mtime
    wait_for(lambda: ran.stat().st_mtime > seen, 5, "the script's next run", poll=0.002)
    time.sleep(0.05)  # deliberate: that run has ended
    (work / "flags" / "lb1").touch()
    return ran.stat().st_mtime


def test_the_models_fixes_hold_on_real_keepalived(work: Path) -> None:
    """state MASTER without priority, a weighted track_interface in a sync group, and VRRPv2 / 2.2 timers rounded:
    each failed on the doctor's previous model; all cases run at once, each in its own lab network."""
    results: dict[str, list[str]] = {}

    def run(tag: str) -> None:
        try:
            results[tag] = fidelity_case(tag, work)
        except Exception as exc:  # a lab failure is reported with its case, the other cases go on
            results[tag] = [f"{tag}: {type(exc).__name__}: {exc}"]

    threads = [threading.Thread(target=run, args=(tag,)) for tag in FIDELITY]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    wrong = [line for tag in FIDELITY for line in results.get(tag, [f"{tag}: did not finish"])]
    assert not wrong, "\n".join(wrong)
