"""ka-notify end to end: the real program records, a real detached worker delivers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from tests.support.notify import write_config
from tests.support.programs import pids_mentioning, program, quiet_env

LOG_ONE_LINE = ('[channels.log]\ntype = "exec"\n'
                'command = ["sh", "-c", "echo \\"$KAHOOKS_INSTANCE $KAHOOKS_STATE $KAHOOKS_EVENT_ID\\" >> {log}"]')


def notify(*args: str, config: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    env = quiet_env()
    return subprocess.run([program("ka-notify"), "-c", str(config), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_lines(path: Path, count: int, timeout: float = 15) -> list[str]:
    return wait_for(lambda: len(lines_of(path)) >= count and lines_of(path), timeout, f"{count} deliveries in {path}")


def spool_is_empty(spool: Path) -> bool:
    """Nothing recorded waits to be fanned out or delivered: every delivery is done."""
    return not list((spool / "incoming").glob("*.json")) and not list((spool / "queue").rglob("*.json"))


def workers_for(spool: Path) -> list[int]:
    return [pid for pid in pids_mentioning("worker", str(spool)) if pid != os.getpid()]


@pytest.fixture
def setup(tmp_path: Path):
    log = tmp_path / "delivered.log"
    config = write_config(tmp_path, LOG_ONE_LINE.format(log=log))
    yield config, log, tmp_path / "spool"
    for pid in workers_for(tmp_path / "spool"):
        os.kill(pid, signal.SIGKILL)


def test_keepalived_argv_is_recorded_and_delivered_by_a_detached_worker(setup) -> None:
    config, log, spool = setup
    result = notify("INSTANCE", "VI_1", "MASTER", "100", config=config)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result
    assert wait_for_lines(log, 1)[0].startswith("VI_1 MASTER ")
    workers = workers_for(spool)
    assert len(workers) == 1
    # In a session of its own: keepalived killing the handler's process group cannot reach it.
    assert os.getsid(workers[0]) == workers[0]


def test_notify_master_style_flags(setup) -> None:
    config, log, _ = setup
    assert notify("--group", "VG_1", "--state", "fault", config=config).returncode == 0
    assert wait_for_lines(log, 1)[0].startswith("VG_1 FAULT ")


def test_send_dry_run_shows_each_message_and_sends_nothing(setup) -> None:
    config, log, spool = setup
    result = notify("send", "--instance", "VI_1", "--state", "BACKUP", "--priority", "90", "--dry-run", config=config)
    assert result.returncode == 0, result
    assert "--- log (exec) would send:\nSubject: [lb-test] VI_1 is BACKUP" in result.stdout
    assert "Priority:  90" in result.stdout and "VIPs:      192.0.2.10" in result.stdout
    # A worker would have been started before ka-notify exited: none was, and nothing was recorded.
    assert workers_for(spool) == []
    assert not log.exists() and not list((spool / "incoming").glob("*.json"))


@pytest.mark.parametrize("args, message", [
    (("INSTANCE", "VI_1", "MASTER"), "expected TYPE NAME STATE PRIORITY from keepalived, got 3 words"),
    (("INSTANCE", "VI_1", "PRIMARY", "100"), "state 'PRIMARY' is not one of"),
    (("--instance", "VI_1"), "--instance/--group needs --state"),
    (("--state", "MASTER"), "--state needs --instance or --group"),
    ((), "expected TYPE NAME STATE PRIORITY"),
    (("fifo",), "fifo takes the FIFO's path"),
    (("--bogus",), "unknown option --bogus"),
])
def test_bad_arguments_one_line_exit_2(setup, args: tuple[str, ...], message: str) -> None:
    config, _, _ = setup
    result = notify(*args, config=config)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_invalid_config_is_refused_but_the_event_is_kept(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[channels.log]\ntype = "syslog"\nfacility = "kitchen"')
    result = notify("INSTANCE", "VI_1", "MASTER", "100", config=config)
    assert result.returncode == 1
    assert f"{config}:" in result.stderr and "channels.log.facility: 'kitchen' is not one of" in result.stderr
    assert "Traceback" not in result.stderr
    kept = list((tmp_path / "spool" / "incoming").glob("*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["state"] == "MASTER"
    validate = subprocess.run([program("kahooks"), "validate", "-c", str(config)], capture_output=True, text=True)
    assert validate.returncode == 1 and "channels.log.facility" in validate.stderr


def test_racing_argv_calls_are_all_delivered_in_recording_order(setup) -> None:
    """keepalived forks notify scripts back to back; they run concurrently."""
    config, log, spool = setup
    env = quiet_env()
    calls = [subprocess.Popen([program("ka-notify"), "-c", str(config), "INSTANCE", f"VI_{n % 3}",
                               ("MASTER", "BACKUP")[n % 2], "100"], env=env, stdin=subprocess.DEVNULL)
             for n in range(30)]
    assert all(call.wait(30) == 0 for call in calls)
    lines = wait_for_lines(log, 30)
    ids = [line.split()[2] for line in lines]
    assert len(set(ids)) == 30
    for instance in ("VI_0", "VI_1", "VI_2"):
        mine = [line.split()[2] for line in lines if line.startswith(instance + " ")]
        assert mine == sorted(mine)  # ids start with the recording time: delivered in event order
    assert len(workers_for(spool)) == 1


def test_a_worker_killed_mid_delivery_loses_nothing(tmp_path: Path) -> None:
    log = tmp_path / "delivered.log"
    slow = ('[channels.log]\ntype = "exec"\n'
            f'command = ["sh", "-c", "sleep 0.4; echo $KAHOOKS_EVENT_ID >> {log}"]')
    config = write_config(tmp_path, slow)
    spool = tmp_path / "spool"
    for state in ("MASTER", "BACKUP", "MASTER", "FAULT"):
        assert notify("INSTANCE", "VI_1", state, "100", config=config).returncode == 0
    recorded_ids = set()
    wait_for_lines(log, 1)  # the worker is in the middle of delivering: one done, three to go
    for pid in workers_for(spool):
        os.kill(pid, signal.SIGKILL)
    for path in list((spool / "queue" / "log").glob("*.json")) + list((spool / "incoming").glob("*.json")):
        recorded_ids.add(json.loads(path.read_text()).get("event", {}).get("id") or json.loads(path.read_text())["id"])
    delivered_before = set(log.read_text().split()) if log.exists() else set()
    assert recorded_ids, "the kill came too late to interrupt anything"
    # The next transition starts a new worker, which replays the spool.
    assert notify("INSTANCE", "VI_1", "BACKUP", "100", config=config).returncode == 0
    wait_for(lambda: len(set(log.read_text().split())) >= 5 and spool_is_empty(spool), 15,
             "all five delivered and the spool empty")
    lines = log.read_text().split()
    assert recorded_ids <= set(lines) and delivered_before <= set(lines)
    # All five transitions arrived; a replay may repeat an id (at least once), never invent one.
    assert len(set(lines)) == 5
    for pid in workers_for(spool):
        os.kill(pid, signal.SIGKILL)


LVS_LOG = ('[channels.log]\ntype = "exec"\ncommand = ["sh", "-c", "echo \\"$KAHOOKS_TYPE $KAHOOKS_REAL_SERVER '
           '$KAHOOKS_VIRTUAL_SERVER $KAHOOKS_STATE $KAHOOKS_PREVIOUS_STATE\\" >> {log}"]')
# Never reached: it acts on VRRP transitions only, and the tests send none to it.
DNS_CHANNEL = ('\n[channels.dns]\ntype = "dns"\nserver = "127.0.0.1"\nzone = "example.test."\nname = "www"\n'
               'key_name = "k"\nkey_secret = "c2VjcmV0"\n')


def test_real_server_and_quorum_notifies_are_delivered_with_their_servers(tmp_path: Path) -> None:
    """keepalived runs notify_up/notify_down and quorum_up/quorum_down with no arguments: the flags say it all."""
    log = tmp_path / "delivered.log"
    config = write_config(tmp_path, LVS_LOG.format(log=log))
    try:
        for flags in (("--real-server", "10.0.0.1:80", "--virtual-server", "192.0.2.50:80", "--state", "DOWN"),
                      ("--virtual-server", "192.0.2.50:80", "--state", "DOWN"),
                      ("--real-server", "10.0.0.1:80", "--virtual-server", "192.0.2.50:80", "--state", "UP")):
            assert notify(*flags, config=config).returncode == 0
        # (an empty variable leaves a double space: the words are what counts)
        assert [" ".join(line.split()) for line in wait_for_lines(log, 3)] == [
            "RS 10.0.0.1:80 192.0.2.50:80 DOWN", "VS 192.0.2.50:80 DOWN",
                                          "RS 10.0.0.1:80 192.0.2.50:80 UP DOWN"]
    finally:
        for pid in workers_for(tmp_path / "spool"):
            os.kill(pid, signal.SIGKILL)


def test_a_lost_quorum_reads_as_one_in_the_default_message(tmp_path: Path) -> None:
    config = write_config(tmp_path, LVS_LOG.format(log=tmp_path / "log"))
    result = notify("send", "--virtual-server", "fwmark 7", "--state", "DOWN", "--dry-run", config=config)
    assert result.returncode == 0, result
    assert "Subject: [lb-test] virtual server fwmark 7 LOST its quorum" in result.stdout
    assert "Virtual:   fwmark 7" in result.stdout and "Problem:   quorum lost" in result.stdout


def test_a_dry_run_shows_the_previous_state_delivery_uses_for_a_real_server(tmp_path: Path) -> None:
    """The dry run and the worker compose one way: a real server's previous state is looked up by its
    sequence (virtual server and real server), not by its bare name (the dry run said 'unknown')."""
    log = tmp_path / "delivered.log"
    config = write_config(tmp_path, LVS_LOG.format(log=log) + DNS_CHANNEL)
    spool = tmp_path / "spool"
    server = ("--real-server", "[10.0.0.21]:80", "--virtual-server", "[10.0.0.1]:80")
    try:
        assert notify(*server, "--state", "DOWN", config=config).returncode == 0
        wait_for(lambda: lines_of(log) and spool_is_empty(spool), 15, "the DOWN delivered")
        result = notify("send", *server, "--state", "UP", "--dry-run", "--spool", str(spool), config=config)
        assert result.returncode == 0, result
        assert "--- log (exec) would send:\n" in result.stdout and "State:     DOWN -> UP" in result.stdout
        # Delivery lets an LVS change pass a channel that acts on VRRP transitions only: so does the dry run.
        assert "--- dns (dns) would send nothing: it acts on VRRP transitions only" in result.stdout
    finally:
        for pid in workers_for(spool):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("args, message", [
    (("--real-server", "10.0.0.1:80", "--state", "DOWN"), "--real-server needs --virtual-server"),
    (("--virtual-server", "192.0.2.50:80"), "--virtual-server needs --state UP or DOWN"),
    (("--virtual-server", "192.0.2.50:80", "--state", "MASTER"), "is not UP or DOWN"),
    (("--virtual-server", "192.0.2.50", "--state", "UP"), "'192.0.2.50' is not a server"),
    (("--virtual-server", "192.0.2.50:80", "--instance", "VI_1", "--state", "UP"), "not both"),
])
def test_bad_server_flags_one_line_exit_2(setup, args: tuple[str, ...], message: str) -> None:
    config, _, _ = setup
    result = notify(*args, config=config)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
