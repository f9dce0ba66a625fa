"""The lab's fixtures: the Debian package, built once for the package tests. (lab_bin and work live in
tests/conftest.py: the fault tests run programs as keepalived_script too.)"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def deb() -> Iterator[Path]:
    """The Debian package, built once for the package tests (`./run package`)."""
    from tests.lab.packaging import build_package

    out = Path(tempfile.mkdtemp(prefix="kahooks-deb-"))
    try:
        yield build_package(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def other_release_deb() -> Iterator[Path]:
    """The package built in the other release's cached root with its own debhelper (`./run package --release`)."""
    from tests.lab.packaging import OTHER_RELEASE, build_package

    out = Path(tempfile.mkdtemp(prefix="kahooks-deb-"))
    try:
        yield build_package(out, OTHER_RELEASE)
    finally:
        shutil.rmtree(out, ignore_errors=True)
