"""ka-notify queue, retry-dead and purge: what an operator does with messages that did not get through."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from kahooks.lab.netns import wait_for
from tests.support.notify import write_config
from tests.support.programs import pids_mentioning, program, quiet_env

FAILING = ('[channels.page]\ntype = "exec"\ncommand = ["sh", "-c", "{script}"]\npermanent_exit_codes = [3]\n')


def notify(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([program("ka-notify"), "-c", str(config), *args], capture_output=True, text=True,
                          timeout=30, env=quiet_env(), stdin=subprocess.DEVNULL)


def stop_workers(spool: Path) -> None:
    for pid in pids_mentioning("worker", str(spool)):
        if pid != os.getpid():
            os.kill(pid, signal.SIGKILL)


def test_a_dead_letter_is_seen_retried_once_fixed_and_delivered(tmp_path: Path) -> None:
    out = tmp_path / "paged"
    config = write_config(tmp_path, FAILING.format(script="exit 3"))
    spool = tmp_path / "spool"
    try:
        assert notify(config, "INSTANCE", "VI_1", "FAULT", "0").returncode == 0
        wait_for(lambda: list((spool / "dead" / "page").glob("*.json")), 15, "the permanent failure in dead/")
        queue = notify(config, "queue")
        assert queue.returncode == 0 and "0 queued; 1 dead" in queue.stdout, queue
        assert "page         VI_1 FAULT" in queue.stdout and "gave up: permanent: sh exited 3" in queue.stdout
        # The operator fixes the channel, then sends what died again.
        config.write_text(config.read_text().replace("exit 3", f"echo $KAHOOKS_STATE >> {out}"))
        retried = notify(config, "retry-dead", "--channel", "page")
        assert retried.returncode == 0 and "1 dead letter queued again" in retried.stdout, retried
        wait_for(lambda: out.exists() and out.read_text().split() == ["FAULT"], 15, "the retried page")
        # The command's output comes before the worker removes its queue entry: waited for, not raced.
        wait_for(lambda: "0 queued; 0 dead" in notify(config, "queue").stdout, 5, "the delivered page gone from the queue")
    finally:
        stop_workers(spool)


def test_a_message_still_retrying_shows_its_attempt_and_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAILING.format(script="echo no route >&2; exit 1"),
                          delivery="flap_window = 0\nbackoff_initial = 300\nbackoff_max = 300")
    spool = tmp_path / "spool"
    try:
        assert notify(config, "INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        wait_for(lambda: "attempt 2 in" in notify(config, "queue").stdout, 15, "the first attempt to fail")
        line = next(line for line in notify(config, "queue").stdout.splitlines() if "VI_1 MASTER" in line)
        assert "last error: sh exited 1: no route" in line, line
    finally:
        stop_workers(spool)


def test_purge_removes_only_dead_letters_older_than_asked(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAILING.format(script="exit 3"))
    spool = tmp_path / "spool"
    try:
        assert notify(config, "INSTANCE", "VI_1", "FAULT", "0").returncode == 0
        wait_for(lambda: list((spool / "dead" / "page").glob("*.json")), 15, "the dead letter")
        kept = notify(config, "purge", "--older-than", "1d")
        assert kept.returncode == 0 and "0 dead letters older than 1d removed" in kept.stdout
        gone = notify(config, "purge", "--older-than", "0s")
        assert gone.returncode == 0 and "1 dead letter older than 0s removed" in gone.stdout
        assert not list((spool / "dead" / "page").glob("*.json"))
    finally:
        stop_workers(spool)


def test_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAILING.format(script="true"))
    for args, message in ((("purge",), "purge needs --older-than"), (("purge", "--older-than", "soon"), "is not like"),
                          (("queue", "extra"), "queue takes no words")):
        result = notify(config, *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result
