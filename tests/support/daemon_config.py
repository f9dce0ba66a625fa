"""A kahooks.toml with the daemon's tables, written for a test and loaded as `kahooks serve` loads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kahooks.daemon.service import load_config
from kahooks.settings.config import ConfigError

HEAD = 'spool_dir = "{spool}"\n\n[serve]\nstate_dir = "{state}"\n\n'


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "kahooks.toml"
    path.write_text(HEAD.format(spool=tmp_path / "spool", state=tmp_path / "state") + body)
    return path


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(str(write(tmp_path, body)))
    return caught.value.lines()
