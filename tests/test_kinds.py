"""The folders are the registry: every list of checks and channels derives from the modules there."""

from __future__ import annotations

import tomllib
from pathlib import Path

from kahooks import checks, notifiers
from kahooks.daemon.settings import daemon_programs

ROOT = Path(__file__).resolve().parents[1]


def test_every_check_module_is_a_kind_with_its_program() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    programs = {name for name in scripts if name.startswith(checks.PROGRAM_PREFIX)}
    assert programs == {f"ka-check-{kind}" for kind in checks.kinds()}
    assert {scripts[name] for name in programs} == {"kahooks.hooks.check_cli:main"}
    for kind in checks.kinds():
        assert checks.load_check_class(kind).kind == kind


def test_the_daemon_runs_every_kind_but_its_own_guard() -> None:
    assert daemon_programs() == {f"ka-check-{kind}": kind for kind in checks.kinds() if kind != "heartbeat"}


def test_every_channel_module_is_a_type() -> None:
    assert set(notifiers.kinds()) == {"alertmanager", "apprise", "dns", "email", "exec", "rebind", "slack", "syslog",
                                      "webhook"}
    for kind in notifiers.kinds():
        assert notifiers.channel_class(kind).kind == kind
