"""Shared fixtures: real servers on loopback, started per test and always stopped."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kahooks.lab.rsyslog import Rsyslog
from tests.support.netservers import HttpServer, make_certificate
from tests.support.serve import service  # noqa: F401 (a fixture: pytest finds it by name here)

CHECKOUT = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="session")
def lab_bin() -> Path:
    """kahooks installed the documented way: a root-owned venv keepalived_script can run."""
    from kahooks.lab.install import ensure_installed

    return ensure_installed(CHECKOUT)


@pytest.fixture
def work() -> Iterator[Path]:
    # Not under pytest's tmp_path: its parent is mode 700, and keepalived_script must reach the configs.
    directory = Path(tempfile.mkdtemp(prefix="kahooks-test-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("certs")
    return {"long": make_certificate(directory, 365), "short": make_certificate(directory, 5)}


@pytest.fixture
def https_server(certs: dict[str, tuple[Path, Path]]) -> Iterator[HttpServer]:
    server = HttpServer(tls=certs["short"])
    yield server
    server.close()


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    if not shutil.which("rsyslogd") and not os.path.exists("/usr/sbin/rsyslogd"):
        pytest.fail("rsyslogd is not installed: the test command installs it (apt package rsyslog)")
    server = Rsyslog(tmp_path)
    yield server
    server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The test daemons' state folders on /run (tests/support/serve.py), this process's only."""
    from tests.support.serve import tmpfs_parent

    shutil.rmtree(tmpfs_parent(), ignore_errors=True)

