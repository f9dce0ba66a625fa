"""The spool belongs to keepalived_script and root reads it: a hostile owner, bad entries, full disks.

The worker here runs a real exec channel (a shell appending to a file); the
handler is the installed ka-notify, run as keepalived would (a fresh process,
another user where ownership is the point).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.notify.spool import Spool, SpoolError
from tests.support.notify import worker_for, write_config
from tests.support.programs import program, quiet_env

NOBODY = 65534


def exec_config(tmp_path: Path, command: str = "echo $KAHOOKS_STATE >> {out}") -> Path:
    out = tmp_path / "delivered"
    return write_config(tmp_path, f"[channels.out]\ntype = \"exec\"\ncommand = ['/bin/sh', '-c', '{command.format(out=out)}']\n")


def delivered(tmp_path: Path) -> list[str]:
    path = tmp_path / "delivered"
    return path.read_text().split() if path.exists() else []


def event(state: str = "MASTER") -> Event:
    return Event.new("INSTANCE", "VI_1", state, 100, "test")


def test_planted_lock_symlinks_are_not_followed(tmp_path: Path) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path))
    target = tmp_path / "outside" / "created-by-root"
    target.parent.mkdir()
    for name in ("worker.lock", "record.lock"):
        os.symlink(target, spool.root / name)
    spool.record(event())
    assert worker.drain(5)
    lock = spool.take_worker_lock()
    assert lock is not None
    os.close(lock)
    assert not target.exists()
    assert not (spool.root / "worker.lock").is_symlink() and delivered(tmp_path) == ["MASTER"]


def test_a_queue_symlinked_out_of_the_spool_is_refused(tmp_path: Path) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path))
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rmdir(spool.queue_dir)
    os.symlink(outside, spool.queue_dir)
    spool.record(event())
    with pytest.raises(SpoolError, match="queue is not a directory"):
        worker.fan_out_pending()  # the worker's loop logs this and tries again later
    assert list(outside.iterdir()) == []  # root wrote nothing through the link
    assert len(spool.incoming()) == 1      # and the event is still recorded, waiting


def test_queue_entries_planted_by_the_owner_go_to_dead_and_delivery_flows(tmp_path: Path) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path))
    queue = spool.queue_dir / "out"
    queue.mkdir()
    good = json.loads(event().to_json())
    (queue / "00000000000000000001-aa.json").write_text(json.dumps(
        {"event": good, "channel": "../../../escaped", "previous_state": None, "attempts": "x",
         "next_attempt": 0, "last_error": None, "created": 0}))  # wrong type, and a path in content
    os.symlink("/dev/zero", queue / "00000000000000000002-bb.json")
    (queue / "00000000000000000003-cc.json").write_text("[" * 100000)
    os.mkdir(queue / "00000000000000000004-dd.json")
    spool.record(event("BACKUP"))
    assert worker.drain(5)
    assert delivered(tmp_path) == ["BACKUP"]
    dead = sorted(path.name.split(".json")[0] for path in (spool.dead_dir / "out").iterdir())
    assert dead == ["00000000000000000001-aa", "00000000000000000002-bb", "00000000000000000003-cc",
                    "00000000000000000004-dd"]
    assert not (tmp_path / "escaped").exists() and not (spool.root.parent / "escaped").exists()


def test_a_directory_or_garbage_in_incoming_does_not_stop_the_worker(tmp_path: Path) -> None:
    config, spool, worker = worker_for(exec_config(tmp_path))
    os.mkdir(spool.incoming_dir / "00000000000000000001-aa.json")
    (spool.incoming_dir / "00000000000000000002-bb.json").write_text('{"type": 1}')
    os.symlink("/dev/zero", spool.incoming_dir / "00000000000000000003-cc.json")
    spool.record(event())
    assert worker.drain(5)
    assert delivered(tmp_path) == ["MASTER"]
    assert len(list(spool.dead_dir.glob("0000*"))) == 3


def as_user(uid: int):
    def demote() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        os.umask(0o177)  # keepalived's
    return demote


def notify(config: Path, *words: str, user: int | None = None, bin_dir: Path | None = None,
           preexec_fn=None) -> subprocess.CompletedProcess:
    env = quiet_env()
    ka_notify = str(bin_dir / "ka-notify") if bin_dir else program("ka-notify")
    return subprocess.run([ka_notify, "-c", str(config), *words], capture_output=True, text=True, cwd="/",
                          env=env, timeout=20, preexec_fn=as_user(user) if user is not None else preexec_fn)


@pytest.mark.root
def test_root_running_send_leaves_the_spool_usable_by_its_owner(work: Path, lab_bin: Path) -> None:
    """The README's install: the spool made for keepalived_script, then root tries a send."""
    tmp_path = work
    config = exec_config(tmp_path)
    config.chmod(0o644)
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o750)
    os.chown(spool_dir, NOBODY, NOBODY)
    first = notify(config, "send", "--instance", "VI_1", "--state", "BACKUP", bin_dir=lab_bin)
    assert first.returncode == 0, first.stderr
    handler = notify(config, "INSTANCE", "VI_1", "MASTER", "100", user=NOBODY, bin_dir=lab_bin)
    assert handler.returncode == 0, handler.stderr
    from kahooks.lab.netns import wait_for

    wait_for(lambda: delivered(tmp_path) == ["BACKUP", "MASTER"], 15, "both delivered by the worker")
    for path in spool_dir.rglob("*"):
        try:
            assert path.lstat().st_uid == NOBODY, path
        except FileNotFoundError:
            pass  # the worker finished with it meanwhile


@pytest.mark.root
def test_a_handler_that_cannot_record_says_so_in_one_line_and_exits_1(work: Path, lab_bin: Path) -> None:
    tmp_path = work
    config = exec_config(tmp_path)
    config.chmod(0o644)
    (tmp_path / "spool").mkdir(mode=0o700)  # root's: keepalived_script cannot write it
    result = notify(config, "INSTANCE", "VI_1", "MASTER", "100", user=NOBODY, bin_dir=lab_bin)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot record the event" in lines[0] and "NOT recorded" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_short_write_leaves_no_half_file_and_fails_loudly(tmp_path: Path) -> None:
    config = exec_config(tmp_path)
    Spool(tmp_path / "spool").ensure()

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))  # a recording is ~300 bytes

    result = notify(config, "INSTANCE", "VI_1", "MASTER", "100", preexec_fn=small_files)
    assert result.returncode == 1 and "NOT recorded" in result.stderr, result
    assert list((tmp_path / "spool" / "tmp").iterdir()) == []
    assert list((tmp_path / "spool" / "incoming").iterdir()) == []


@pytest.mark.root
def test_a_full_disk_leaves_no_half_file_and_fails_loudly(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], check=True)
    try:
        spool_dir = mount / "spool"
        config = write_config(tmp_path, "[channels.out]\ntype = \"exec\"\ncommand = ['/bin/true']\n")
        config.write_text(config.read_text().replace(str(tmp_path / "spool"), str(spool_dir)))
        spool = Spool(spool_dir).ensure()
        filler = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"x" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(filler)
        result = notify(config, "INSTANCE", "VI_1", "MASTER", "100")
        assert result.returncode == 1 and "No space left on device" in result.stderr, result
        assert list((spool_dir / "tmp").iterdir()) == [] and spool.names("incoming") == []
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_kahooks_folder_in_the_working_directory_is_never_imported(tmp_path: Path) -> None:
    """Root's `ka-notify send` from a directory another user can write: its detached worker ran
    `python -m kahooks...`, which puts the working directory first on sys.path."""
    planted = tmp_path / "cwd" / "kahooks"
    planted.mkdir(parents=True)
    marker = tmp_path / "planted-code-ran"
    (planted / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    config = exec_config(tmp_path)
    env = {name: value for name, value in quiet_env().items() if name != "PYTHONSAFEPATH"}  # as a shell has it
    result = subprocess.run([program("ka-notify"), "-c", str(config), "INSTANCE", "VI_1", "MASTER", "100"],
                            capture_output=True, text=True, cwd=planted.parent, env=env, timeout=20)
    assert result.returncode == 0, result.stderr
    from kahooks.lab.netns import wait_for

    wait_for(lambda: delivered(tmp_path) == ["MASTER"], 15, "the worker to deliver")
    assert not marker.exists(), "the worker imported the planted kahooks/ package"
