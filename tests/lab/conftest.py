"""The lab's fixtures: kahooks installed the documented way, and a work directory keepalived_script can reach."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kahooks.lab.install import ensure_installed

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab_bin() -> Path:
    return ensure_installed(CHECKOUT)


@pytest.fixture
def work() -> Iterator[Path]:
    # Not under pytest's tmp_path: its parent is mode 700, and keepalived_script must reach the configs.
    directory = Path(tempfile.mkdtemp(prefix="kahooks-lab-test-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
