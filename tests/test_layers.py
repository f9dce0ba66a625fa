"""Imports point one way: hooks -> daemon -> doctor, checks, notifiers -> the core, kahooks/ (ARCHITECTURE.md).

An allow-list per layer: each folder names the layers its modules may import, so an import nobody
thought of (a new family, a check reaching into the daemon, the lab into the doctor) fails here.
"""

from __future__ import annotations

import ast
import functools
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder -> the layers (besides its own) its modules may import; "kahooks" is the core.
ALLOWED = {
    "kahooks": set(),
    "checks": {"kahooks"},
    "notifiers": {"kahooks"},
    "lab": {"kahooks", "doctor"},  # doctor.versions: the differential harness names the rules the doctor models
    "doctor": {"kahooks", "checks"},  # checks.base: a kahooks check's own timeout
    "daemon": {"kahooks", "checks", "notifiers", "doctor"},  # doctor: the wire observer reads keepalived.conf
    "hooks": {"kahooks", "checks", "notifiers", "daemon", "doctor", "lab"},
}


@functools.cache
def families() -> frozenset[str]:
    """The folders pyproject joins under kahooks (kahooks.checks = checks/ ...)."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return frozenset(folder for name, folder in package_dir.items() if name.startswith("kahooks."))


def layer_of(name: str) -> str | None:
    """The layer an imported module belongs to; None when it is not kahooks'."""
    parts = name.split(".")
    if parts[0] != "kahooks":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in families() else "kahooks"


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            names.add(f"relative import in {path.name}")  # none today: say it, rather than guess its layer
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_every_layer_has_its_allow_list() -> None:
    assert set(ALLOWED) == families() | {"kahooks"}


def test_imports_point_one_way() -> None:
    wrong = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            for name in imported(path):
                if name.startswith("relative import"):
                    wrong.append(name)
                    continue
                layer = layer_of(name)
                if layer is not None and layer != folder and layer not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong


def test_tests_share_helpers_through_the_support_package() -> None:
    """A test module imports no other test module: what two share lives in tests/support/."""
    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for name in imported(path):
            if name.startswith("tests.") and any(part.startswith("test_") for part in name.split(".")[1:]):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong
