"""`keepalived -t` as the doctor runs it: through kahooks.system.commands, like every command kahooks runs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from kahooks.doctor import running
from kahooks.system import procfs


def test_keepalived_t_is_read_and_what_it_left_running_is_stopped(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A keepalived -t that leaves a child holding its output: the doctor reads the complaint when it
    exits (no wait for the pipe to close) and stops what it left. Without unshare on PATH, as where no
    pid namespace can be made, so it is the doctor's own child."""
    marker = uuid.uuid4().hex
    conf = tmp_path / "keepalived.conf"
    conf.write_text("vrrp_instance VI_1 {\n    bogus_keyword 1\n}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "keepalived"
    fake.write_text(f"#!/bin/sh\necho \"({conf}: Line 2) Unknown keyword 'bogus_keyword'\"\n"
                    f"TEST_MARK={marker} /bin/sleep 30 &\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    started = time.monotonic()
    found = running.config_test(str(conf), timeout=10)
    took = time.monotonic() - started
    assert found is not None and [(item.severity, item.file, item.line) for item in found] == \
        [("error", str(conf), 2)], found
    assert "Unknown keyword 'bogus_keyword'" in found[0].message
    assert took < 5, took
    left = [info.pid for info in procfs.iter_processes()
            if not info.zombie and procfs.environ_has(info.pid, f"TEST_MARK={marker}".encode())]
    assert not left, left
