"""The exec channel with real commands: environment, exit codes, timeouts, process groups."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.settings.config import ConfigError
from tests.support.notify import worker_for, write_config


def channel(script: str, extra: str = "") -> str:
    """A channel running `script` through sh (a plain string command is split, not given to a shell)."""
    return f'[channels.run]\ntype = "exec"\ncommand = {json.dumps(["sh", "-c", script])}\n{extra}'


def test_the_event_is_in_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    script = f"python3 -c 'import json,os; json.dump({{k: v for k, v in os.environ.items() if k.startswith(\"KAHOOKS_\") or k == \"TEAM\"}}, open(\"{out}\", \"w\"))'"  # noqa: E501 (one shell line)
    path = write_config(tmp_path, channel(script, 'env = { TEAM = "netops" }'))
    _, spool, worker = worker_for(path)
    event = Event.new("INSTANCE", "VI_1", "MASTER", 100, "test")
    spool.record(event)
    assert worker.drain(10)
    env = json.loads(out.read_text())
    assert env["KAHOOKS_EVENT_ID"] == event.id
    assert (env["KAHOOKS_INSTANCE"], env["KAHOOKS_STATE"], env["KAHOOKS_PRIORITY"]) == ("VI_1", "MASTER", "100")
    assert env["KAHOOKS_HOST"] == "lb-test" and env["KAHOOKS_VIPS"] == "192.0.2.10"
    assert env["KAHOOKS_SUBJECT"] == "[lb-test] VI_1 is MASTER" and "Priority:  100" in env["KAHOOKS_BODY"]
    assert env["TEAM"] == "netops"


def test_failures_retry_and_permanent_codes_do_not(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    # Fails twice, then succeeds: retried until delivered.
    script = f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ $n -ge 2 ]'
    path = write_config(tmp_path, channel(script), delivery="flap_window = 0\nbackoff_initial = 0.01\nbackoff_max = 0.05")
    _, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    assert worker.drain(10)
    assert counter.read_text().strip() == "3"

    other = tmp_path / "permanent"
    other.mkdir()
    path = write_config(other, channel("echo 'bad recipient' >&2; exit 67", "permanent_exit_codes = [67]"))
    _, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    assert worker.drain(10)
    dead = next((spool.dead_dir / "run").glob("*.json")).read_text()
    assert "exited 67: bad recipient" in dead


def test_a_hanging_command_is_stopped_with_its_group(tmp_path: Path) -> None:
    """The attempt returns only once the whole group is gone: a child that ignores SIGTERM is
    killed, and none of the command's processes (found by this test's own sleep length) is left."""
    marker = tmp_path / "still-running"
    length = f"30.{uuid.uuid4().int % 10**9:09d}"
    script = f"(trap '' TERM; sleep {length}; touch {marker}) & sleep {length}"
    path = write_config(tmp_path, channel(script, "timeout = 0.3"), delivery="flap_window = 0\nbackoff_initial = 5")
    config, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    started = time.monotonic()
    worker.fan_out_pending()
    worker.channel_pass("run")
    # The timeout, the channel's kill grace, a margin for a loaded machine (4.1 s seen with suites beside
    # this one); without the kill the group sleeps 30 s.
    assert time.monotonic() - started < 0.3 + 2.0 + 3.0
    queued = spool.queued("run")
    assert len(queued) == 1 and "timed out after 0.3 s" in queued[0].last_error
    assert alive_with(length) == []


def alive_with(argument: str) -> list[int]:
    """Live (not zombie) processes with exactly `argument` in their argv: this test's, nobody else's."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if argument.encode() in argv and state not in "ZX":
                found.append(int(entry))
    return found


@pytest.mark.parametrize("extra, message", [
    ("", "channels.run.command: /nonexistent/notify: no such executable"),
])
def test_config_errors(tmp_path: Path, extra: str, message: str) -> None:
    path = write_config(tmp_path, f'[channels.run]\ntype = "exec"\ncommand = "/nonexistent/notify --now"\n{extra}')
    with pytest.raises(ConfigError, match=message):
        worker_for(path)
