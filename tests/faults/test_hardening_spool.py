"""The spool's owner (keepalived_script; `nobody` here) is not trusted: what it plants in the spool,
the locks it holds and the numbers it writes must never hang, stall or escalate root's programs.

Real processes throughout: the installed ka-notify and `kahooks serve`, `flock(1)` run as the
other user, real hard links and FIFOs.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.lab.netns import wait_for
from tests.support.notify import worker_for, write_config
from tests.support.programs import program, quiet_env
from tests.support.serve import Served, head

NOBODY = 65534


def as_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    os.umask(0o177)  # keepalived's


def exec_config(directory: Path, delivery: str = "flap_window = 0") -> Path:
    out = directory / "delivered"
    return write_config(directory, "[channels.out]\ntype = \"exec\"\n"
                        f"command = ['/bin/sh', '-c', 'echo $KAHOOKS_INSTANCE $KAHOOKS_STATE >> {out}']\n",
                        delivery=delivery)


def delivered(directory: Path) -> list[str]:
    path = directory / "delivered"
    return path.read_text().splitlines() if path.exists() else []


def nobody_spool(directory: Path) -> Path:
    spool = directory / "spool"
    spool.mkdir(mode=0o750)
    os.chown(spool, NOBODY, NOBODY)
    return spool


def ka_notify(config: Path, *words: str, timeout: float = 20, bin_dir: Path | None = None,
              **popen: object) -> subprocess.CompletedProcess:
    """The installed handler; `bin_dir`: the root-owned install another user can run."""
    ka_notify = str(bin_dir / "ka-notify") if bin_dir else program("ka-notify")
    return subprocess.run([ka_notify, "-c", str(config), *words], capture_output=True, text=True,
                          cwd="/", env=quiet_env(), timeout=timeout, **popen)  # type: ignore[call-overload]


def hold_record_lock(spool: Path) -> subprocess.Popen:
    """`flock record.lock sleep 60` as the spool's owner, as a handler run by keepalived could; returned
    once the lock is really held."""
    holder = subprocess.Popen(["flock", "-x", str(spool / "record.lock"), "sleep", "60"], preexec_fn=as_nobody,
                              cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def held() -> bool:
        try:
            fd = os.open(spool / "record.lock", os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    wait_for(held, 5, "flock(1) to hold record.lock")
    return holder


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


# 1. A FIFO planted as worker.log ------------------------------------------------------------------

def test_a_fifo_planted_as_worker_log_does_not_hang_the_handler(tmp_path: Path) -> None:
    path = exec_config(tmp_path, delivery="flap_window = 0\nworker_idle_exit = 0.5")
    _, spool, _ = worker_for(path)
    os.mkfifo(spool.root / "state" / "worker.log", 0o600)
    started = time.monotonic()
    try:
        result = ka_notify(path, "INSTANCE", "VI_1", "MASTER", "100", timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("ka-notify hung opening the FIFO planted as worker.log")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 5
    wait_for(lambda: delivered(tmp_path) == ["VI_1 MASTER"], 15, "the worker to deliver")
    assert (spool.root / "state" / "worker.log").is_file()


# 2. Hard links to a file outside the spool --------------------------------------------------------

@pytest.mark.root
def test_root_never_chowns_or_appends_to_a_file_hard_linked_into_the_spool(work: Path) -> None:
    config = exec_config(work, delivery="flap_window = 0\nworker_idle_exit = 0.5")
    config.chmod(0o644)
    spool = nobody_spool(work)
    (spool / "state").mkdir(mode=0o750)
    os.chown(spool / "state", NOBODY, NOBODY)
    outside = {}
    for name in ("record.lock", "worker.lock", "state/worker.log"):
        secret = work / f"secret-{name.replace('/', '-')}"
        secret.write_text("root's own\n")
        secret.chmod(0o600)
        # fs.protected_hardlinks keeps nobody from linking root's file: root stands in for the attacker.
        os.link(secret, spool / name)
        outside[secret] = secret.stat()
    # The handler as root (keepalived without script_user, or `ka-notify send`): it takes record.lock,
    # probes worker.lock and opens worker.log for the worker's stderr; its worker, root too, takes both locks.
    result = ka_notify(config, "INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: delivered(work) == ["VI_1 MASTER"], 15, "the worker to deliver")
    wait_for(lambda: subprocess.run(["flock", "-n", str(spool / "worker.lock"), "true"]).returncode == 0, 15,
             "the worker to exit")
    for secret, before in outside.items():
        after = secret.stat()
        assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode), secret
        assert secret.read_text() == "root's own\n", secret
    for name in ("record.lock", "worker.lock", "state/worker.log"):
        info = (spool / name).lstat()
        assert info.st_nlink == 1 and info.st_uid == NOBODY, name


# 3. Entries read through the one helper -------------------------------------------------------------

def test_planted_entries_are_bad_entries_and_never_block(tmp_path: Path) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path))
    incoming = spool.incoming_dir
    os.mkfifo(incoming / "00000000000000000001-aa.json")
    (incoming / "00000000000000000002-bb.json").write_bytes(b" " * (300 * 1024) + b"{}")
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    assert worker.drain(5)
    assert delivered(tmp_path) == ["VI_1 MASTER"]
    assert sorted(path.name for path in spool.dead_dir.glob("0000*")) == ["00000000000000000001-aa.json",
                                                                          "00000000000000000002-bb.json"]


# 4. The spool's owner holding record.lock ---------------------------------------------------------

@pytest.mark.root
def test_the_owner_holding_record_lock_stalls_neither_heartbeat_nor_handlers_nor_delivery(work: Path,
                                                                                          lab_bin: Path) -> None:
    spool = nobody_spool(work)
    out = work / "delivered"
    text = head(work, serve=f'metrics_textfile = "{work}/state/kahooks.prom"\n') + (
        "\n[instances.VI_1]\nvips = [\"192.0.2.10\"]\n\n[channels.out]\ntype = \"exec\"\n"
        f"command = ['/bin/sh', '-c', 'echo $KAHOOKS_INSTANCE $KAHOOKS_STATE >> {out}']\n\n"
        "[[rules]]\nchannels = [\"out\"]\n")
    with Served(work, text) as served:
        served.config.chmod(0o644)
        holder = hold_record_lock(spool)
        try:
            gaps = served.heartbeat_gaps(3.0)
            assert gaps and max(gaps) < 1.5, f"the heartbeat stalled while nobody held record.lock: {gaps}"
            assert time.time() - served.heartbeat() < 1.5
            started = time.monotonic()
            result = ka_notify(served.config, "INSTANCE", "VI_1", "MASTER", "100", timeout=15, bin_dir=lab_bin,
                               preexec_fn=as_nobody)
            assert result.returncode == 0, result.stderr
            assert time.monotonic() - started < 5, "the handler waited on the held lock"
            wait_for(lambda: delivered(work) == ["VI_1 MASTER"], 15, "the daemon to deliver past the held lock")
            assert time.time() - served.heartbeat() < 1.5
        finally:
            stop(holder)
    assert "record.lock" in served.log_text()  # going on without the lock is said


@pytest.mark.root
def test_a_spool_folder_swapped_for_a_link_does_not_stop_the_daemon(work: Path) -> None:
    spool = nobody_spool(work)
    text = head(work, serve=f'metrics_textfile = "{work}/state/kahooks.prom"\n')
    with Served(work, text) as served:
        metrics = work / "state" / "kahooks.prom"
        wait_for(lambda: (spool / "incoming").is_dir() and metrics.exists(), 5, "the spool and metrics")
        os.rename(spool / "incoming", spool / "moved")
        os.symlink("/etc", spool / "incoming")
        written = metrics.stat().st_mtime
        gaps = served.heartbeat_gaps(2.0)
        assert served.process is not None and served.process.poll() is None, served.log_text()
        assert gaps and max(gaps) < 1.5, gaps
        assert metrics.stat().st_mtime > written and "kahooks_" in metrics.read_text()


# 5. Numbers from the spool: finite and in range, or a bad entry ------------------------------------

def queue_file(spool_root: Path, name: str, event: dict, **fields: object) -> None:
    record = {"event": event, "channel": "out", "previous_state": None, "attempts": 0, "next_attempt": 0,
              "last_error": None, "created": time.time()}
    record.update(fields)
    folder = spool_root / "queue" / "out"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(record))


def event_dict(name: str = "VI_1", state: str = "MASTER", **fields: object) -> dict:
    data = json.loads(Event.new("INSTANCE", name, state, 100, "test").to_json())
    data.update(fields)
    return data


def test_an_event_time_out_of_range_is_a_bad_entry_and_delivery_flows(tmp_path: Path) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path))
    (spool.incoming_dir / "00000000000000000001-aa.json").write_text(json.dumps(event_dict(time=1e300)))
    queue_file(spool.root, "00000000000000000002-bb.json", event_dict(time=-5.0))
    spool.record(Event.new("INSTANCE", "VI_1", "BACKUP", 100, "test"))
    assert worker.drain(5), "delivery stopped behind an event with time 1e300"
    assert delivered(tmp_path) == ["VI_1 BACKUP"]
    assert len(list(spool.dead_dir.glob("0000*"))) == 1 and len(list((spool.dead_dir / "out").iterdir())) == 1


@pytest.mark.parametrize("fields", [{"next_attempt": 1e300}, {"next_attempt": float("nan")},
                                    {"next_attempt": float("inf")}, {"created": 1e300}, {"attempts": 10 ** 30},
                                    {"attempts": 2.0}])
def test_a_delivery_with_numbers_out_of_range_goes_to_dead(tmp_path: Path, fields: dict) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path))
    queue_file(spool.root, "00000000000000000001-aa.json", event_dict(state="FAULT"), **fields)
    queue_file(spool.root, "00000000000000000002-bb.json", event_dict(state="BACKUP"))
    assert worker.drain(5), f"the queue was held by {fields}"
    assert delivered(tmp_path) == ["VI_1 BACKUP"]
    assert [path.name for path in (spool.dead_dir / "out").iterdir()] == ["00000000000000000001-aa.json"]


def test_a_next_attempt_far_in_the_future_is_clamped_and_holds_no_queue(tmp_path: Path) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path, delivery="flap_window = 0\nbackoff_max = 0.5\n"
                                                   "max_age = 0.5"))
    years = time.time() + 10 * 365 * 86400
    queue_file(spool.root, "00000000000000000001-aa.json", event_dict(state="FAULT"), next_attempt=years,
               attempts=1)
    queue_file(spool.root, "00000000000000000002-bb.json", event_dict(state="BACKUP"))
    assert worker.drain(5), "a next_attempt ten years ahead held the instance's queue"
    assert delivered(tmp_path) == ["VI_1 FAULT", "VI_1 BACKUP"]


def test_events_stamped_in_the_future_do_not_hold_a_flapping_instance(tmp_path: Path) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path, delivery="flap_window = 0.3"))
    ahead = time.time() + 30 * 86400
    queue_file(spool.root, "00000000000000000001-aa.json", event_dict(state="MASTER", time=ahead))
    queue_file(spool.root, "00000000000000000002-bb.json", event_dict(state="BACKUP", time=ahead + 0.1))
    assert worker.drain(5), "events a month ahead held the flap window for a month"
    assert delivered(tmp_path)[-1] == "VI_1 BACKUP"


# 6. The operator's tools read the spool through spooldir too ----------------------------------------

def test_purge_ages_unreadable_dead_letters_by_their_own_time(tmp_path: Path) -> None:
    from kahooks.notify.spooltools import purge_dead

    _, spool, _ = worker_for(exec_config(tmp_path))
    dead = spool.dead_dir / "out"
    dead.mkdir()
    (dead / "00000000000000000001-aa.json").write_text("not json")
    os.utime(dead / "00000000000000000001-aa.json", (1000.0, 1000.0))
    (dead / "00000000000000000002-bb.json").write_text("not json either")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.utime(outside, (1000.0, 1000.0))
    os.symlink(outside, dead / "00000000000000000003-cc.json")  # a fresh link to an old file: the link's age
    assert purge_dead(spool, older_than=3600) == 1
    assert sorted(path.name for path in dead.iterdir()) == ["00000000000000000002-bb.json",
                                                            "00000000000000000003-cc.json"]
    assert outside.read_text() == "{}"
