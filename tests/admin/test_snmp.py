"""`kahooks snmp` behind a real snmpd (pass_persist), read with snmpwalk/snmpget, against `kahooks status`.

snmpd runs as root on a loopback port with its own config (-C -c), in the foreground; the MIB is
loaded by net-snmp's own snmptranslate. Debian's snmp tools ship without MIBs: OIDs are numeric.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kahooks.admin import snmp
from kahooks.daemon import snmptree
from kahooks.lab.netns import wait_for
from tests.support.programs import program, quiet_env, run
from tests.support.serve import Served, head
from tests.support.snmpd import BASE, CONTRIB, Snmpd, free_udp_port

pytestmark = pytest.mark.skipif(not shutil.which("snmpd") or not shutil.which("snmpwalk"),
                                reason="Debian's snmpd and snmp packages (./run test installs them)")


def config(tmp_path: Path) -> str:
    # interval 60: each check runs once at start, so runs and failures stay still while compared.
    return head(tmp_path, f'notify_fifo = "{tmp_path}/state/notify.fifo"\n') + """
[channels.gone]
type = "exec"
command = ["/bin/sh", "-c", "exit 3"]
permanent_exit_codes = [3]

[channels.stuck]
type = "exec"
command = ["/bin/sh", "-c", "exit 1"]

[[rules]]
channels = ["gone", "stuck"]

[checks.good]
run = "ka-check-exec -- true"
interval = 60

[checks.bad]
run = "ka-check-exec -- false"
interval = 60
"""


@pytest.fixture
def pair(tmp_path: Path):
    served = Served(tmp_path, config(tmp_path)).start()
    agent = None
    try:
        fifo = os.open(served.state / "notify.fifo", os.O_RDWR | os.O_NONBLOCK)
        os.write(fifo, b'INSTANCE "VI_1" MASTER 100\nINSTANCE "VI_2" BACKUP 50\n')
        os.close(fifo)
        agent = Snmpd(tmp_path, served.config)
        yield served, agent
    finally:
        if agent is not None:
            agent.stop()
        served.stop()


def status_of(served: Served) -> dict:
    shown = run("kahooks", "status", "--json", "-c", str(served.config))
    return json.loads(shown.stdout)


def settled(served: Served) -> dict:
    """`kahooks status` once both events are delivered as they will be: two dead, two queued."""
    def ready() -> dict | None:
        current = status_of(served)
        spool = current.get("spool") or {}
        done = (spool.get("dead") == 2 and spool.get("queued", {}).get("stuck") == 2 and spool.get("incoming") == 0
                and len(current.get("instances", {})) == 2 and all(c["runs"] for c in current["checks"].values()))
        return current if done else None
    return wait_for(ready, 20, "the spool to settle (2 dead letters, 2 queued)")


def test_snmpwalk_shows_what_kahooks_status_shows(pair) -> None:
    served, agent = pair
    status = settled(served)
    # kahooks snmp rereads status.json at most once a second: its view may be older than the one just
    # settled (under load a walk came before the instances were in it).
    walked = wait_for(lambda: (walk := agent.walk()).get(f"{BASE}.3.2.1.2.2") and walk, 10,
                      "snmpd's view to hold both instances")
    assert walked[f"{BASE}.1.1"] == "1"                      # running
    assert walked[f"{BASE}.1.3"] == str(status["pid"])
    assert walked[f"{BASE}.1.6"] == "2"                      # not healthy: a check fails
    assert walked[f"{BASE}.1.7"] == status["config"]
    names = sorted(status["checks"])
    assert walked[f"{BASE}.2.1"] == str(len(names))
    for row, name in enumerate(names, 1):
        check = status["checks"][name]
        assert walked[f"{BASE}.2.2.1.2.{row}"] == name
        assert walked[f"{BASE}.2.2.1.3.{row}"] == ("1" if check["ok"] else "2")
        assert walked[f"{BASE}.2.2.1.4.{row}"] == str(check["value"])
        assert walked[f"{BASE}.2.2.1.5.{row}"] == check["why"]
        assert walked[f"{BASE}.2.2.1.7.{row}"] == str(check["runs"])
        assert walked[f"{BASE}.2.2.1.8.{row}"] == str(check["failures"])
    assert [walked[f"{BASE}.3.2.1.2.{row}"] for row in (1, 2)] == ["VI_1", "VI_2"]
    assert [walked[f"{BASE}.3.2.1.3.{row}"] for row in (1, 2)] == ["1", "2"]  # master, backup
    spool = status["spool"]
    assert (walked[f"{BASE}.4.1"], walked[f"{BASE}.4.2"], walked[f"{BASE}.4.3"], walked[f"{BASE}.4.4"]) == \
        ("1", str(spool["incoming"]), str(sum(spool["queued"].values())), str(spool["dead"]))
    channels = {walked[f"{BASE}.5.1.1.2.{row}"]: (walked[f"{BASE}.5.1.1.3.{row}"], walked[f"{BASE}.5.1.1.4.{row}"])
                for row in (1, 2)}
    assert channels == {"gone": ("0", "2"), "stuck": ("2", "0")}


def test_get_getnext_and_set_through_snmpd(pair) -> None:
    served, agent = pair
    settled(served)
    one = agent.query("snmpget", "-Oqv", f"{BASE}.2.2.1.2.2")
    assert (one.returncode, one.stdout.strip()) == (0, '"good"')
    missing = agent.query("snmpget", f"{BASE}.2.2.1.2.9")
    assert "No Such" in missing.stdout + missing.stderr
    nothing_after = agent.query("snmpgetnext", f"{BASE}.7.99")  # past the last object
    assert "No more variables" in nothing_after.stdout + nothing_after.stderr or \
        not nothing_after.stdout.startswith(BASE), nothing_after
    refused = agent.query("snmpset", f"{BASE}.1.1", "i", "2")
    assert refused.returncode != 0 and "notWritable" in refused.stderr, refused
    assert agent.query("snmpget", "-Oqv", f"{BASE}.1.1").stdout.strip() == "1"  # still answering


def passing(served: Served) -> subprocess.Popen:
    """`kahooks snmp` as snmpd starts it: requests on its stdin, answers on its stdout."""
    return subprocess.Popen([program("kahooks"), "snmp", "-c", str(served.config)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=quiet_env())


def peak_memory_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_malformed_and_flooding_requests_are_bounded_and_leave_the_heartbeat_alone(tmp_path: Path) -> None:
    served = Served(tmp_path, config(tmp_path)).start()
    helper = None
    try:
        helper = passing(served)
        assert helper.stdin is not None and helper.stdout is not None
        helper.stdin.write(b"PING\n")
        helper.stdin.flush()
        assert helper.stdout.readline() == b"PONG\n"
        before = peak_memory_kib(helper.pid)
        # 64 MiB on one line, never a newline until the end: read in capped pieces, answered NONE.
        helper.stdin.write(b"get\n")
        chunk = b"1." * (1 << 19)
        for _ in range(64):
            helper.stdin.write(chunk)
        helper.stdin.write(b"\n")
        for junk in (b"getnext\n.1.3.x.6\n", b"get\n\xff\xfe\x00\n", b"frobnicate\n", b"get\n" + b".1" * 200 + b"\n",
                     b"getnext\n.99999999999.1\n", b"set\n.1.3\ninteger 5\n"):
            helper.stdin.write(junk)
        helper.stdin.write(b"PING\n")
        helper.stdin.flush()
        answers = [helper.stdout.readline() for _ in range(8)]
        assert answers == [b"NONE\n"] * 6 + [b"not-writable\n", b"PONG\n"], answers
        assert peak_memory_kib(helper.pid) - before < 16 * 1024, "the long line was held in memory"

        # A flood: 20000 pipelined requests while the daemon's heartbeat (every 0.2 s) is watched.
        count = 20000
        flood = b"".join(b"getnext\n" + BASE.encode() + b"\n" for _ in range(count))
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.extend(helper.stdout.readline() for _ in range(3 * count)))
        writer = threading.Thread(target=lambda: (helper.stdin.write(flood), helper.stdin.flush()))
        beats_before = served.heartbeat()
        started = time.monotonic()
        reader.start()
        writer.start()
        gaps = served.heartbeat_gaps(1.5)
        writer.join(60)
        reader.join(60)
        elapsed = time.monotonic() - started
        assert not reader.is_alive() and len(lines) == 3 * count
        assert lines[0] == f"{BASE}.1.1\n".encode() and lines[1:3] == [b"integer\n", b"1\n"]
        assert served.heartbeat() > beats_before and gaps and max(gaps) < 1.0, gaps
        assert served.process is not None and served.process.poll() is None
        print(f"{count} getnext answered in {elapsed:.2f} s")
    finally:
        if helper is not None:
            helper.kill()
            helper.wait()
        served.stop()


def test_a_flood_reads_the_status_once_a_second_at_most() -> None:
    reads = []
    now = [100.0]
    tree = snmp.Tree((1, 3), lambda: reads.append(1) or [snmptree.Cell((1,), "integer", "1")], clock=lambda: now[0])
    for _ in range(1000):
        assert tree.getnext((1, 3, 1)) is None and tree.get((1, 3, 1)) is not None
    assert len(reads) == 1
    now[0] += snmp.REFRESH
    tree.get((1, 3, 1))
    assert len(reads) == 2


def test_without_a_daemon_the_tree_says_not_running(tmp_path: Path) -> None:
    (tmp_path / "kahooks.toml").write_text(head(tmp_path))
    helper = subprocess.run([program("kahooks"), "snmp", "-c", str(tmp_path / "kahooks.toml")],
                            input=f"get\n{BASE}.1.1\nget\n{BASE}.1.2\n".encode(), capture_output=True, env=quiet_env(),
                            timeout=30)
    assert helper.returncode == 0
    lines = helper.stdout.decode().splitlines()
    assert lines[:3] == [f"{BASE}.1.1", "integer", "2"] and "not running" in lines[5], lines


def test_a_bad_base_is_one_line_and_exit_2(tmp_path: Path) -> None:
    shown = run("kahooks", "snmp", "--base", "enterprises.99")
    assert shown.code == 2 and shown.stderr.count("\n") == 1 and "not a numeric OID" in shown.stderr, shown


WIRE = {"enabled": True, "why": "", "interfaces": {"eth0": "listening", "eth9": "cannot listen on eth9: no such device"},
        "packets": 3, "adverts": 2, "arps": 1, "ignored": 0, "dropped": 0, "vrids": [], "instances": [],
        "findings": [{"kind": "master_gone", "instance": "VI_1", "interface": "eth0", "vrid": 51, "sentence": "gone",
                      "since": 1.0}, {"kind": "a_kind_from_tomorrow", "instance": "VI_0", "interface": "eth0",
                                      "vrid": 50, "sentence": "new", "since": 1.0}]}


def mib_enumeration(env: dict[str, str], name: str) -> dict[str, int]:
    """label -> number of an enumerated object, as snmptranslate reads KAHOOKS-MIB."""
    shown = subprocess.run(["snmptranslate", "-m", "KAHOOKS-MIB", "-Td", f"KAHOOKS-MIB::{name}"], capture_output=True,
                           text=True, env=env)
    assert shown.returncode == 0 and not shown.stderr, shown.stderr
    syntax = next(line for line in shown.stdout.splitlines() if line.lstrip().startswith("SYNTAX"))
    pairs = syntax[syntax.index("{") + 1:syntax.index("}")].split(",")
    return {pair.strip().split("(")[0]: int(pair.split("(")[1].rstrip(")")) for pair in pairs}


def test_the_mibs_finding_kinds_are_segment_kinds_in_their_order() -> None:
    """The enumeration the MIB names is the one `kahooks snmp` numbers: daemon/segment.py's KINDS."""
    from kahooks.daemon.segment import KINDS

    env = {**os.environ, "MIBS": "", "MIBDIRS": f"+{CONTRIB}"}
    expected = {"unknown": 0} | {snmptree.mib_label(kind): number for number, kind in enumerate(KINDS, 1)}
    assert mib_enumeration(env, "kahooksWireFindingKind") == expected
    assert snmptree.mib_label("two_masters") == "twoMasters" and snmptree.mib_label("blocked") == "blocked"
    rows = {cell.oid: cell.value for cell in snmptree.cells({"checks": {}, "pid": 1, "heartbeat": 1.0,  # type: ignore[typeddict-item]
                                                                         "wire": WIRE}, None, (True, ""), now=5.0)}
    # In order of instance: VI_0's kind unknown to this version is 0, VI_1's master_gone its place in KINDS.
    assert (rows[(7, 6, 1, 2, 1)], rows[(7, 6, 1, 2, 2)]) == ("0", str(KINDS.index("master_gone") + 1))
    assert (rows[(7, 4, 1, 3, 1)], rows[(7, 4, 1, 3, 2)]) == ("1", "2")  # eth0 listening, eth9 not
    assert rows[(7, 6, 1, 7, 2)] == "4"


def test_a_status_without_the_wire_says_the_observer_is_off() -> None:
    rows = {cell.oid: cell.value for cell in snmptree.cells(None, None, (False, "no status"))}
    assert rows[(7, 1)] == "2" and not [oid for oid in rows if oid[:1] == (7,) and oid != (7, 1)]
    off = {"enabled": False, "why": "off: [wire] enabled = false", "interfaces": {}, "findings": [], "vrids": []}
    rows = {cell.oid: cell.value for cell in snmptree.cells({"checks": {}, "pid": 1, "heartbeat": 1.0,  # type: ignore[typeddict-item]
                                                              "wire": off}, None, (True, ""), now=5.0)}
    assert (rows[(7, 1)], rows[(7, 2)], rows[(7, 3)], rows[(7, 5)]) == ("2", "off: [wire] enabled = false", "0", "0")


def test_snmptranslate_loads_the_mib_and_it_names_every_object_served() -> None:
    env = {**os.environ, "MIBS": "", "MIBDIRS": f"+{CONTRIB}"}
    alone = subprocess.run(["snmptranslate", "-m", "KAHOOKS-MIB", "-Tp"], capture_output=True, text=True, env=env)
    assert alone.returncode == 0 and not alone.stderr, alone.stderr
    added = subprocess.run(["snmptranslate", "-m", "+KAHOOKS-MIB", "-On", "KAHOOKS-MIB::kahooksMIB"],
                           capture_output=True, text=True, env=env)
    # Debian lacks the default MIB list's IETF modules (their errors are not ours); KAHOOKS-MIB loads cleanly.
    assert added.stdout.strip() == BASE and "KAHOOKS" not in added.stderr, added.stderr
    status = {"pid": 1, "heartbeat": 1.0, "config": "c", "maintenance": False, "instances": {"VI_1": {"state": "MASTER",
              "since": 1.0}}, "checks": {"a": {"ok": True, "value": 0, "why": "", "kind": "exec", "runs": 1,
                                              "failures": 0, "changes": 1, "since": 1.0}}, "wire": WIRE}
    spool = {"incoming": 0, "queued": {"mail": 1}, "dead": 0, "dead_by_channel": {"mail": 0}, "oldest": 1.0}
    cells = snmptree.cells(status, spool, (True, "ok"), now=2.0)  # type: ignore[arg-type]
    oids = [BASE + "." + ".".join(map(str, cell.oid)) for cell in cells]
    named = subprocess.run(["snmptranslate", "-m", "KAHOOKS-MIB", "-OS", *oids], capture_output=True, text=True, env=env)
    assert named.returncode == 0 and not named.stderr, named.stderr
    names = named.stdout.split()
    assert len(names) == len(oids) and all(name.startswith("KAHOOKS-MIB::kahooks") for name in names), names


def test_the_shipped_snmpd_stanza_serves_kahooks_and_nothing_else(tmp_path: Path) -> None:
    served = Served(tmp_path, config(tmp_path)).start()
    stanza = (CONTRIB / "snmpd.conf").read_text()
    assert "pass_persist .1.3.6.1.4.1.8072.9999.9999.28 /usr/bin/sudo -n /usr/bin/kahooks snmp\n" in stanza
    # As the README's sudo line makes it run, minus sudo (root already) and with the test's paths.
    stanza = stanza.replace("/usr/bin/sudo -n /usr/bin/kahooks snmp", f"{program('kahooks')} snmp -c {served.config}")
    agent = None
    try:
        agent = Snmpd(tmp_path, served.config, stanza)
        assert agent.query("snmpget", "-Oqv", f"{BASE}.1.1").stdout.strip() == "1"
        outside = agent.query("snmpget", ".1.3.6.1.2.1.1.1.0")  # sysDescr: outside the view
        assert "No Such Object" in outside.stdout or outside.returncode != 0, outside
    finally:
        if agent is not None:
            agent.stop()
        served.stop()


@pytest.mark.skipif(not shutil.which("snmptrapd"), reason="Debian's snmptrapd (./run test installs it)")
def test_a_transition_reaches_a_trap_receiver_as_kahooks_transition(tmp_path: Path) -> None:
    """contrib/snmp/kahooks-snmptrap.toml as shipped (the receiver's address aside), to a real snmptrapd."""
    port = free_udp_port()
    receiver_conf = tmp_path / "snmptrapd.conf"
    receiver_conf.write_text("disableAuthorization yes\n")
    received = tmp_path / "traps.log"
    receiver = subprocess.Popen(["snmptrapd", "-f", "-Lf", str(received), "-C", "-c", str(receiver_conf), "-On",
                                 "-p", str(tmp_path / "snmptrapd.pid"), f"udp:127.0.0.1:{port}"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=quiet_env(MIBS="", SNMP_PERSISTENT_DIR=str(tmp_path / "trap-persist")))
    channel = (CONTRIB / "kahooks-snmptrap.toml").read_text()
    assert "udp:127.0.0.1:162 " in channel
    text = head(tmp_path, f'notify_fifo = "{tmp_path}/state/notify.fifo"\n') + "\n" + \
        channel.replace("udp:127.0.0.1:162 ", f"udp:127.0.0.1:{port} ")
    served = Served(tmp_path, text)
    try:
        wait_for(lambda: received.exists() and "NET-SNMP version" in received.read_text(), 15, "snmptrapd to start")
        served.start()
        fifo = os.open(served.state / "notify.fifo", os.O_RDWR | os.O_NONBLOCK)
        os.write(fifo, b'INSTANCE "VI_1" MASTER 100\n')
        os.close(fifo)
        wait_for(lambda: "9999.28.0.1" in received.read_text(), 20, "the trap at snmptrapd")
        trap = received.read_text()
        for expected in ('.1.3.6.1.4.1.8072.9999.9999.28.6.1 = STRING: "VI_1"',
                         '.1.3.6.1.4.1.8072.9999.9999.28.6.2 = STRING: "MASTER"',
                         ".1.3.6.1.4.1.8072.9999.9999.28.6.3 = INTEGER: 100",
                         '.1.3.6.1.4.1.8072.9999.9999.28.6.4 = STRING: "node1"'):
            assert expected in trap, trap
    finally:
        served.stop()
        receiver.terminate()
        receiver.wait(10)
