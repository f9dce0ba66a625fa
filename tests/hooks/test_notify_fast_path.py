"""ka-notify's fast path: once the configuration passed, the handler records without parsing it.

What it must never change: the event lands in the spool the configuration names, and a configuration
edited since it passed is validated again (its errors said, the event kept). A worker lock held by the
test stands for a running worker, so no worker is started.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from kahooks.hooks.notify_cli import top_level_spool_dir
from tests.support.notify import write_config
from tests.support.programs import program, quiet_env

LOG = '[channels.log]\ntype = "exec"\ncommand = ["true"]'


def notify(config: Path, state: str = "MASTER") -> subprocess.CompletedProcess:
    return subprocess.run([program("ka-notify"), "-c", str(config), "INSTANCE", "VI_1", state, "100"],
                          capture_output=True, text=True, timeout=60, env=quiet_env(), stdin=subprocess.DEVNULL)


def recorded(spool: Path) -> list[str]:
    return [json.loads(path.read_text())["state"] for path in sorted((spool / "incoming").glob("*.json"))]


@contextmanager
def workers_running(*spools: Path) -> Iterator[None]:
    """Each spool's worker.lock held, as a running worker holds it."""
    with ExitStack() as stack:
        for spool in spools:
            spool.mkdir(exist_ok=True)
            fd = os.open(spool / "worker.lock", os.O_RDONLY | os.O_CREAT, 0o644)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def test_a_configuration_edited_after_it_passed_is_validated_again(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOG)
    spool = tmp_path / "spool"
    with workers_running(spool):
        assert notify(config).returncode == 0
        assert notify(config, "BACKUP").returncode == 0  # the fast path
        config.write_text(config.read_text() + '\n[channels.bad]\ntype = "syslog"\nfacility = "kitchen"\n')
        result = notify(config, "FAULT")
    assert result.returncode == 1 and "channels.bad.facility" in result.stderr, result
    assert recorded(spool) == ["MASTER", "BACKUP", "FAULT"]


def test_a_changed_spool_dir_takes_the_next_event(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOG)
    first, second = tmp_path / "spool", tmp_path / "other"
    with workers_running(first, second):
        assert notify(config).returncode == 0 and notify(config).returncode == 0
        config.write_text(config.read_text().replace(f'"{first}"', f'"{second}"'))
        assert notify(config, "BACKUP").returncode == 0
        assert notify(config, "FAULT").returncode == 0  # the fast path, now in the new spool
    assert recorded(first) == ["MASTER", "MASTER"]
    assert recorded(second) == ["BACKUP", "FAULT"]


def test_a_spool_the_stamp_does_not_confirm_is_never_recorded_in(tmp_path: Path) -> None:
    """The guess reads `spool_dir = ...` lines; a quoted key in a drop-in escapes it. The main file's
    spool even holds the very stamp the real spool has: the event still goes where TOML says."""
    config = write_config(tmp_path, LOG)
    guessed, real = tmp_path / "spool", tmp_path / "real"
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-spool.toml").write_text(f'"spool_dir" = "{real}"\n')
    with workers_running(guessed, real):
        assert notify(config).returncode == 0
        (guessed / "state").mkdir()
        (guessed / "state" / "config-ok").write_bytes((real / "state" / "config-ok").read_bytes())
        assert notify(config, "BACKUP").returncode == 0
    assert recorded(real) == ["MASTER", "BACKUP"]
    assert recorded(guessed) == []


@pytest.mark.parametrize("text, expected", [
    ('spool_dir = "/var/spool/a"\n', "/var/spool/a"),
    ("host = 'x'\nspool_dir='/s p'  # a comment\n", "/s p"),
    ('spool_dir = "/a"\n[delivery]\nspool_dir = "/not-top-level"\n', "/a"),
    ('spool_dir = "/a\\u0062"\n', None),  # an escape: left to TOML
    ('note = """\nspool_dir = "/inside"\n"""\n', None),  # inside a multi-line string
    ('"spool_dir" = "/quoted"\n', None),
    ("", None),
])
def test_the_guess_reads_only_plain_top_level_lines(text: str, expected: str | None) -> None:
    assert top_level_spool_dir(text) == expected
