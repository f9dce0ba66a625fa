"""The differential test: generated pairs on real keepalived against `kahooks doctor`'s predictions.

For each seed, `diffgen.generate` writes two keepalived.conf; the doctor predicts, for every
tracked item of every node, who holds each VIP before, after the item fails (and how soon)
and after it recovers. Then the pair runs on real keepalived in its own lab network (two
nodes, each its own network, pid and mount namespace) and each item is failed and recovered
in turn: a script's flag file created (the script exits 1 while it exists), a track file
rewritten with its failed value, an interface set down. Between items, keepalived is
restarted from scratch unless the VIPs already sit where the doctor says the next item starts.
The VIP holders come from the kernel (`ip -j addr`), the failover time from the moment of the
failing action to the kernel's RTM_NEWADDR of the VIP on the new holder (`addrwatch`).

Agreement: the same holders, and the failover within [min - 0.3 s, max + 0.3 s] of the
prediction. Where the doctor calls the first MASTER "undecided" (equal priorities: the first
keepalived to start wins), the holder seen must be one it names, and the rest is compared with
its outcome for that holder; such comparisons are counted in their own column, and a holder the
doctor leaves undecided after a failure or recovery is "unknown", never agreement.
keepalived is a command prefix (`Keepalived`): the host's by default, or one in
another root (`chroot ROOT /usr/sbin/keepalived`), whose files the pair is written under.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from kahooks.files import atomicfile
from kahooks.lab.addrwatch import AddressWatch
from kahooks.lab.diffgen import NODES, Item, Spec, generate
from kahooks.lab.netns import LabError, Network, Node, chroot, wait_for

TOLERANCE = 0.3
UNDECIDED = "undecided"  # the doctor's word for a holder no configuration decides (never None, nobody)
CHECK = '#!/bin/sh\n# A differential-test track script: it fails while its flag exists.\n[ ! -e "{work}/flags/$1" ]\n'


class Aborted(Exception):
    """The run was interrupted (Ctrl-C, SIGTERM): pairs stop at their next step and clean up."""


@dataclass(frozen=True)
class Keepalived:
    """How to start keepalived in a node: `command` (argv prefix) sees the file system from `root`."""

    command: tuple[str, ...] = ("/usr/sbin/keepalived",)
    root: str = "/"

    @classmethod
    def in_root(cls, root: str) -> Keepalived:
        """keepalived of another Debian root (2.3.x from a Debian 13 debootstrap), run by chroot."""
        return cls((*chroot(root), "/usr/sbin/keepalived"), root)

    def prepare(self, node: Node, work: Path) -> None:
        """Inside the node's own mount namespace: the root's /proc, /dev and a private /run; and, where the
        root has no keepalived_script user (the pairs' script_user), its passwd and group with this
        machine's, bound over the root's in this namespace only (the cached root is never changed)."""
        if self.root == "/":
            return
        root = shlex.quote(self.root)
        mounts = [f"mount -t proc proc {root}/proc", f"mount --rbind /dev {root}/dev",
                  f"mount -t tmpfs -o mode=755 tmpfs {root}/run"]
        for name in ("passwd", "group"):
            theirs = Path(self.root) / "etc" / name
            text = theirs.read_text()
            if any(line.startswith("keepalived_script:") for line in text.splitlines()):
                continue
            ours = [line for line in Path(f"/etc/{name}").read_text().splitlines() if line.startswith("keepalived_script:")]
            if not ours:
                raise LabError(f"no keepalived_script in /etc/{name} to lend the root")
            copy = work / f"{node.namespace}-{name}"
            copy.write_text(text.rstrip("\n") + "\n" + ours[0] + "\n")
            copy.chmod(0o644)
            mounts.append(f"mount --bind {shlex.quote(str(copy))} {shlex.quote(str(theirs))}")
        node.run(["sh", "-c", " && ".join(mounts)])

    def describe(self) -> str:
        return " ".join(self.command)

    def rules(self) -> str | None:
        """The keepalived rules the doctor must model for this keepalived (2.2.7 or 2.3.3), from its --version."""
        from kahooks.doctor import versions

        result = subprocess.run([*self.command, "--version"], capture_output=True, text=True, timeout=10)
        found = versions.parse(result.stderr or result.stdout)
        return versions.rules_for(found) if found is not None else None


@dataclass
class Disagreement:
    seed: int
    item: str  # node:kind:name
    instance: str
    what: str  # master_before, master_after_failure, failover, master_after_recovery, error
    expected: str
    seen: str

    def line(self) -> str:
        return (f"seed {self.seed}: {self.item} -> {self.instance} {self.what}: "
                f"expected {self.expected}, seen {self.seen}")


@dataclass
class PairResult:
    spec: Spec
    checked: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    rows: list[dict] = field(default_factory=list)  # every comparison, for --json
    # Comparisons whose first MASTER the doctor called undecided (a tie: whoever starts first): the rest
    # was compared with its prediction for the holder seen. Counted apart, never as plain agreement.
    undecided_start: int = 0
    # Holders the doctor could not name at all ("undecided" after the failure or recovery): not compared.
    unknown: list[Disagreement] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.error and not self.disagreements and not self.unknown


# Running a pair ------------------------------------------------------------------------------


class PairRun:
    """One generated pair in its own lab network: keepalived on both nodes, its items, the VIPs watched."""

    def __init__(self, spec: Spec, net: Network, keepalived: Keepalived, abort: threading.Event) -> None:
        self.spec = spec
        self.net = net
        self.keepalived = keepalived
        self.abort = abort
        root = keepalived.root.rstrip("/")
        self.host_work = Path(tempfile.mkdtemp(prefix="kahooks-diff-", dir=f"{root}/var/tmp"))
        self.host_work.chmod(0o755)  # keepalived_script runs the check script from here
        self.work = "/" + str(self.host_work.relative_to(keepalived.root)) if root else str(self.host_work)
        self.nodes: dict[str, Node] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        for sub in ("flags", "track", *NODES):
            (self.host_work / sub).mkdir(mode=0o755)
        check = self.host_work / "check"
        check.write_text(CHECK.format(work=self.work))
        check.chmod(0o755)
        for node in NODES:
            (self.host_work / node / "keepalived.conf").write_text(spec.config(node, self.work))
        for index, node in enumerate(NODES, 11):
            self.nodes[node] = net.add_node(node, index)
            if any(item.node == node and item.kind == "interface" for item in spec.items):
                net.add_link(node)
            keepalived.prepare(self.nodes[node], self.host_work)
        self.watch = AddressWatch({node: self.nodes[node].namespace for node in NODES})

    def conf(self, node: str) -> str:
        """The node's keepalived.conf as this machine (and the doctor) reads it."""
        return str(self.host_work / node / "keepalived.conf")

    def pause(self, seconds: float) -> None:
        if self.abort.wait(seconds):
            raise Aborted()

    # keepalived -----------------------------------------------------------------------------

    def start(self) -> None:
        self.reset_items()
        for node in NODES:
            here = f"{self.work}/{node}"
            log = open(self.host_work / node / "keepalived.log", "ab")
            self.processes[node] = self.nodes[node].popen(
                [*self.keepalived.command, "-n", "-l", "-D", "-P", "-f", f"{here}/keepalived.conf",
                 "-p", f"{here}/keepalived.pid", "-r", f"{here}/vrrp.pid"],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()

    def stop(self) -> None:
        # What we hold is nsenter, which passes no signal on: stop keepalived inside each node.
        for node in self.nodes.values():
            node.run(["pkill", "-TERM", "-x", "keepalived"], check=False)
        for node in self.nodes.values():
            wait_for(lambda node=node: node.run(["pgrep", "-x", "keepalived"], check=False).returncode == 1, 15,
                     f"keepalived on {node.namespace} to stop")
        for process in self.processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()

    def running(self) -> bool:
        return bool(self.processes) and all(process.poll() is None for process in self.processes.values())

    # items --------------------------------------------------------------------------------

    def reset_items(self) -> None:
        for flag in (self.host_work / "flags").iterdir():
            flag.unlink()
        for item in self.spec.items:
            if item.kind == "file":
                self.write_track(item.name, 0)
            elif item.kind == "interface":
                self.nodes[item.node].run(["ip", "link", "set", item.name, "up"])

    def write_track(self, name: str, value: int) -> None:
        atomicfile.replace(str(self.host_work / "track" / name), f"{value}\n".encode())

    def fail(self, item: Item) -> float:
        """Fail `item`; returns the moment (monotonic) just before the failing action."""
        stamp = time.monotonic()
        if item.kind == "script":
            (self.host_work / "flags" / item.name).touch()
        elif item.kind == "file":
            self.write_track(item.name, item.failed_value)
        else:
            self.nodes[item.node].run(["ip", "link", "set", item.name, "down"])
        return stamp

    def recover(self, item: Item) -> None:
        if item.kind == "script":
            (self.host_work / "flags" / item.name).unlink(missing_ok=True)
        elif item.kind == "file":
            self.write_track(item.name, 0)
        else:
            self.nodes[item.node].run(["ip", "link", "set", item.name, "up"])

    # what the kernel says --------------------------------------------------------------------

    def holders(self) -> dict[str, str | None]:
        """Each VIP and the node holding it (None: nobody; 'n1+n2': both)."""
        present: dict[str, set[str]] = {}
        for name, node in self.nodes.items():
            listing = json.loads(node.run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
            present[name] = {entry.get("local", "") for link in listing for entry in link.get("addr_info", [])}
        found: dict[str, str | None] = {}
        for instance, vip in self.spec.vips.items():
            holding = [name for name in NODES if vip in present[name]]
            found[instance] = "+".join(holding) if holding else None
        return found

    def close(self) -> None:
        self.watch.close()
        try:
            self.stop()
        except (LabError, subprocess.SubprocessError, OSError):
            pass  # the namespaces' close kills whatever is left

    def remove_files(self) -> None:
        import shutil

        shutil.rmtree(self.host_work, ignore_errors=True)


def settle_time(spec: Spec) -> float:
    """From a start to a settled first election, for any reading of the timers (2.2.7 rounds some up)."""
    timing = spec.timing
    return 3 * math.ceil(timing.advert_int) + 1 + timing.counts * math.ceil(timing.script_interval) \
        + timing.preempt_delay + 1.5


def preemption_time(spec: Spec) -> float:
    """From a first MASTER to the higher priority's preemption of it: preempt_delay and a down timer."""
    timing = spec.timing
    return timing.preempt_delay + 3 * math.ceil(timing.advert_int) + 1.5


def predict(run: PairRun, doctor: list[str], rules: str | None = None) -> list[dict]:
    # The doctor cannot know what a track file holds while its check fails: the harness says what it writes.
    values = sorted({f"--file-value={item.name}={item.failed_value}" for item in run.spec.items if item.kind == "file"})
    result = subprocess.run([*doctor, "doctor", "--json", "-f", run.conf("n1"), "--peer", run.conf("n2"),
                             "--no-keepalived-test", *values,
                             # the keepalived that runs the pair (another root's: 2.3.3), not this machine's
                             *([f"--keepalived-version={rules}"] if rules else [])],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"})
    if result.returncode not in (0, 1):
        raise LabError(f"kahooks doctor exited {result.returncode}: {result.stderr.strip()[-500:]}")
    by_path = {run.conf(node): node for node in NODES}
    return [_named(scenario, by_path) for scenario in json.loads(result.stdout)["scenarios"]]


HOLDERS = ("master_before", "master_after_failure", "master_after_recovery")


def _named(scenario: dict, by_path: dict[str, str]) -> dict:
    """The doctor's scenario with node names for paths; "undecided" stays itself (it is not nobody)."""
    def name(holder: str | None) -> str | None:
        if holder == UNDECIDED:
            return UNDECIDED
        return by_path.get(holder) if holder else None

    named = {**scenario, "node": by_path.get(scenario["node"], scenario["node"]),
             **{key: name(scenario[key]) for key in HOLDERS if key in scenario}}
    if "undecided_between" in scenario:
        named["undecided_between"] = [by_path.get(path, path) for path in scenario["undecided_between"]]
        named["if_master_before"] = {by_path.get(path, path): {**branch, **{key: name(branch[key]) for key in HOLDERS
                                                                            if key in branch}}
                                     for path, branch in scenario["if_master_before"].items()}
    return named


def starts_as_predicted(scenario: dict, holder: str | None) -> bool:
    if scenario["master_before"] == UNDECIDED:
        return holder in scenario["undecided_between"]
    return holder == scenario["master_before"]


def _show(holder: str | None) -> str:
    return holder or "nobody"


def trial(run: PairRun, item: Item, scenarios: list[dict], result: PairResult) -> None:
    """Fail and recover one item; compare every instance with the doctor's scenario for it."""
    spec = run.spec
    label = f"{item.node}:{item.kind}:{item.name}"
    mine = {scenario["instance"]: scenario for scenario in scenarios
            if scenario["node"] == item.node and scenario["fails"] == item.name and scenario["tracked_as"] == item.kind}
    current = run.holders() if run.running() else {}
    if not run.running() or not all(starts_as_predicted(scenario, current.get(name)) for name, scenario in mine.items()):
        if run.processes:
            run.stop()
        run.start()
        run.pause(settle_time(spec))
        if not run.running():
            raise LabError("keepalived exited at start (see keepalived.log)")
    before = run.holders()
    if not all(starts_as_predicted(scenario, before.get(name)) for name, scenario in mine.items()):
        # Under load one keepalived can start a few tenths of a second after the other and lose a first
        # race its higher priority would win by less than that; it then preempts, one preempt_delay and
        # down timer later: the settled state the doctor predicts. Look again once that has passed.
        run.pause(preemption_time(spec))
        before = run.holders()
    stamp = run.fail(item)
    generic = settle_time(spec)
    predicted = max([scenario["failover_max_s"] or 0.0 for scenario in mine.values()] + [0.0])
    run.pause(max(generic, predicted + TOLERANCE + 1.0) - (time.monotonic() - stamp))
    after = run.holders()
    run.recover(item)
    run.pause(generic)
    recovered = run.holders()
    for instance in spec.vips:
        scenario = mine.get(instance)
        row: dict[str, object] = {"item": label, "instance": instance, "before": before[instance], "after": after[instance],
               "recovered": recovered[instance], "failover_s": None, "predicted": scenario}
        result.rows.append(row)
        result.checked += 1

        def differs(what: str, expected: str | None, seen: str | None, instance: str = instance) -> None:
            result.disagreements.append(Disagreement(spec.seed, label, instance, what, _show(expected), _show(seen)))

        if scenario is None:  # the doctor says this instance does not feel the item: nothing may move
            if after[instance] != before[instance]:
                differs("master_after_failure (no scenario: unchanged)", before[instance], after[instance])
            elif recovered[instance] != before[instance]:
                differs("master_after_recovery (no scenario: unchanged)", before[instance], recovered[instance])
            continue
        if not starts_as_predicted(scenario, before[instance]):
            differs("master_before", scenario["master_before"], before[instance])
            continue  # the rest starts from somewhere else: not comparable
        if scenario["master_before"] == UNDECIDED:  # compare the rest with the outcome for the holder seen
            result.undecided_start += 1
            row["undecided_start"] = True
            scenario = {**scenario, **scenario["if_master_before"][before[instance]]}
        if scenario["master_after_failure"] == UNDECIDED:
            result.unknown.append(Disagreement(spec.seed, label, instance, "master_after_failure", UNDECIDED,
                                               _show(after[instance])))
        elif after[instance] != scenario["master_after_failure"]:
            differs("master_after_failure", scenario["master_after_failure"], after[instance])
        elif scenario["failover_min_s"] is not None and (holder := after[instance]) in NODES and holder:
            added = run.watch.first_added(holder, spec.vips[instance], stamp)
            measured = round(added - stamp, 3) if added is not None else None
            row["failover_s"] = measured
            low, high = scenario["failover_min_s"] - TOLERANCE, scenario["failover_max_s"] + TOLERANCE
            if measured is None or not low <= measured <= high:
                differs("failover_s", f"{scenario['failover_min_s']:g}..{scenario['failover_max_s']:g}",
                        "no takeover seen" if measured is None else f"{measured:g}")
        if scenario["master_after_recovery"] == UNDECIDED:
            result.unknown.append(Disagreement(spec.seed, label, instance, "master_after_recovery", UNDECIDED,
                                               _show(recovered[instance])))
        elif recovered[instance] != scenario["master_after_recovery"]:
            differs("master_after_recovery", scenario["master_after_recovery"], recovered[instance])


def run_pair(seed: int, tag: str, keepalived: Keepalived, doctor: list[str], abort: threading.Event,
             keep_files: bool = False, rules: str | None = None) -> PairResult:
    """Generate, predict, run and compare one pair; every namespace and process gone when it returns."""
    spec = generate(seed)
    result = PairResult(spec)
    started = time.monotonic()
    run = None
    try:
        with Network(tag) as net:
            try:
                run = PairRun(spec, net, keepalived, abort)
                scenarios = predict(run, doctor, rules)
                for item in spec.items:
                    trial(run, item, scenarios, result)
            finally:
                if run is not None:
                    run.close()
    except Aborted:
        result.error = "interrupted"
    except (LabError, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if run is not None and (result.agrees or not keep_files):
            run.remove_files()
    result.seconds = round(time.monotonic() - started, 1)
    return result


def run_many(seeds: list[int], tag_prefix: str, keepalived: Keepalived | None = None,
             doctor: list[str] | None = None, jobs: int = 4, report=None) -> list[PairResult]:
    """Run pairs `jobs` at a time, each in its own network (tag `tag_prefix` + its slot). Ctrl-C (or
    SIGTERM turned into KeyboardInterrupt) stops every pair at its next step; all is cleaned up."""
    keepalived = keepalived or Keepalived()
    doctor = doctor or [default_doctor()]
    abort = threading.Event()
    rules = keepalived.rules()
    slots = list(range(jobs))
    lock = threading.Lock()
    results: list[PairResult] = []

    def one(seed: int) -> PairResult:
        with lock:
            slot = slots.pop()
        try:
            result = run_pair(seed, f"{tag_prefix}{slot}", keepalived, doctor, abort, rules=rules)
        finally:
            with lock:
                slots.append(slot)
        if report is not None:
            report(result)
        return result

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(one, seed) for seed in seeds]
        results.extend(results_heeding_signals(futures))
    except BaseException:
        abort.set()
        pool.shutdown(wait=True, cancel_futures=True)  # each running pair cleans up at its next step
        raise
    pool.shutdown(wait=True)
    return results


SIGNAL_LATENCY = 0.2  # how soon the main thread runs a signal's handler that another thread caught


def results_heeding_signals(futures: list[Future]) -> list:
    """The futures' results in order, waited for in short slices. The kernel hands a process's signal to
    any thread that does not block it: a Ctrl-C caught by a pair's thread only flags the handler, and a
    main thread asleep on a future's lock without a timeout would run it once that pair ended (a CI
    run: SIGINT sent, one pair ran on to "agrees" 31 s later, the harness still there 60 s on)."""
    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=SIGNAL_LATENCY, return_when=FIRST_COMPLETED)
    return [future.result() for future in futures]


def default_doctor() -> str:
    beside = Path(sys.executable).with_name("kahooks")
    return str(beside) if beside.exists() else "kahooks"


# Reporting -----------------------------------------------------------------------------------

# Features of a pair that issue 23 names as known disagreements, to sort findings into classes.
KNOWN = {
    "state-master-no-priority": "state MASTER without priority (keepalived runs it at 255)",
    "sync-group-weighted-interface": "weighted track_interface in a sync group (2.2.7 keeps the weight)",
    "fractional-timer": "fractional advert_int (VRRPv2) or script interval (2.2.7 rounds to whole seconds)",
    "track-file-value": "track file failed with a value other than 1 (keepalived multiplies by the weight)",
    "equal-priority": "both nodes written with the same priority (a tie: the first keepalived to start wins)",
}


def suspects(spec: Spec) -> list[str]:
    """The known issue-23 topics present in a pair (not proof of the cause: a lead for the reader)."""
    found = []
    for node in NODES:
        text = spec.configs[node]
        blocks = text.split("vrrp_instance ")[1:]
        if any("state MASTER" in block and "priority" not in block for block in blocks):
            found.append("state-master-no-priority")
        if "vrrp_sync_group" in text and any("eth1 weight" in block and "weight 0" not in block for block in blocks):
            found.append("sync-group-weighted-interface")
        version3 = "version 3" in text
        adverts = [line.split()[1] for line in text.splitlines() if line.strip().startswith("advert_int")]
        intervals = [line.split()[1] for line in text.splitlines() if line.strip().startswith("interval")]
        if (not version3 and any(float(value) % 1 for value in adverts)) or any(float(value) % 1 for value in intervals):
            found.append("fractional-timer")
    written = [[line.split()[1] for line in spec.configs[node].splitlines() if line.strip().startswith("priority")][:1]
               for node in NODES]
    if written[0] == written[1]:
        found.append("equal-priority")
    if any(item.kind == "file" and item.failed_value != 1 for item in spec.items):
        found.append("track-file-value")
    return sorted(set(found))


def replay_command(seed: int, keepalived: Keepalived) -> str:
    root = f" --root {keepalived.root}" if keepalived.root != "/" else ""
    return f"kahooks lab diff --seed {seed} --pairs 1{root}"


def describe(result: PairResult, keepalived: Keepalived) -> str:
    """A disagreeing pair in full: both configs, each disagreement, the seed and how to replay it."""
    spec = result.spec
    lines = [f"=== seed {spec.seed}: " + (f"ERROR {result.error}" if result.error else
                                          f"{len(result.disagreements)} of {result.checked} disagree, "
                                          f"{len(result.unknown)} unknown"),
             *(f"  {entry.line()}" for entry in result.disagreements),
             *(f"  unknown: {entry.line()}" for entry in result.unknown),
             f"  known topics in this pair: {', '.join(suspects(spec)) or 'none'}",
             f"  replay: {replay_command(spec.seed, keepalived)}"]
    for node in NODES:
        lines.append(f"  --- {node}.conf (@WORK@ is the run's work folder) ---")
        lines.extend(f"  | {line}" for line in spec.configs[node].splitlines())
    return "\n".join(lines)


def summary(results: list[PairResult]) -> str:
    pairs = len(results)
    agreeing = sum(1 for result in results if result.agrees)
    checked = sum(result.checked for result in results)
    wrong = sum(len(result.disagreements) for result in results)
    undecided = sum(result.undecided_start for result in results)
    unknown = sum(len(result.unknown) for result in results)
    given_start = sum(1 for result in results if result.agrees and result.undecided_start)
    errors = [result for result in results if result.error]
    classes: dict[str, list[int]] = {}
    for result in results:
        for entry in result.disagreements:
            what = entry.what.split(" (")[0]
            key = f"{what} [{', '.join(suspects(result.spec)) or 'no known topic'}]"
            if result.spec.seed not in classes.setdefault(key, []):
                classes[key].append(result.spec.seed)
    lines = [f"pairs: {pairs}, agreeing: {agreeing} ({100 * agreeing / max(pairs, 1):.0f} %; {given_start} of them "
             f"given who started first); comparisons: {checked}, disagreeing: {wrong} "
             f"({100 * (checked - wrong - unknown) / max(checked, 1):.1f} % agree); undecided first MASTER "
             f"(the rest compared for the holder seen): {undecided}; unknown (not compared): {unknown}; "
             f"errors: {len(errors)}"]
    for key, seeds in sorted(classes.items(), key=lambda entry: -len(entry[1])):
        lines.append(f"  {len(seeds):3d} pairs: {key}: seeds {' '.join(map(str, seeds[:12]))}")
    unknown_seeds = [result.spec.seed for result in results if result.unknown]
    if unknown_seeds:
        lines.append(f"  {len(unknown_seeds):3d} pairs: the doctor said undecided: "
                     f"seeds {' '.join(map(str, unknown_seeds[:12]))}")
    for result in errors:
        lines.append(f"  error, seed {result.spec.seed}: {result.error}")
    return "\n".join(lines)


def main(seed: int, pairs: int, jobs: int, root: str | None, tag: str, json_path: str | None) -> int:
    """`kahooks lab diff`: run, print each disagreeing pair in full and a summary; exit 1 on any disagreement."""
    import signal

    keepalived = Keepalived.in_root(root) if root else Keepalived()
    version = subprocess.run([*keepalived.command, "--version"], capture_output=True, text=True, timeout=10)
    print(f"keepalived: {(version.stderr or version.stdout).splitlines()[0] if version.returncode == 0 else '?'} "
          f"({keepalived.describe()}); seeds {seed}..{seed + pairs - 1}, {jobs} at a time", flush=True)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, interrupted)

    done: list[PairResult] = []

    def report(result: PairResult) -> None:
        done.append(result)
        status = "agrees" if result.agrees else (f"ERROR {result.error}" if result.error
                                                 else f"{len(result.disagreements)} disagreement(s), "
                                                      f"{len(result.unknown)} unknown")
        if result.undecided_start:
            status += f" ({result.undecided_start} from an undecided first MASTER)"
        print(f"seed {result.spec.seed}: {result.checked} comparisons, {status} ({result.seconds:g} s)", flush=True)
        if not result.agrees:
            print(describe(result, keepalived), flush=True)

    started = time.monotonic()
    try:
        results = run_many(list(range(seed, seed + pairs)), tag, keepalived, jobs=jobs, report=report)
    except KeyboardInterrupt:
        print("interrupted: every pair's namespaces and processes were removed", file=sys.stderr)
        print(summary([result for result in done if result.error != "interrupted"]))
        return 130
    print(summary(results))
    print(f"wall time: {time.monotonic() - started:.0f} s")
    if json_path:
        with open(json_path, "w") as out:
            json.dump([{"seed": result.spec.seed, "checked": result.checked, "error": result.error,
                    "undecided_start": result.undecided_start, "unknown": [entry.__dict__ for entry in result.unknown],
                        "seconds": result.seconds, "suspects": suspects(result.spec),
                        "disagreements": [entry.__dict__ for entry in result.disagreements], "rows": result.rows}
                       for result in results], out, indent=1)
    return 0 if all(result.agrees for result in results) else 1
