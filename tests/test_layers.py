"""Imports point one way: hooks -> daemon -> checks, notifiers -> the core, kahooks/ (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder -> the kahooks subpackages its modules must not import
FORBIDDEN = {
    "kahooks": ("kahooks.checks", "kahooks.notifiers", "kahooks.daemon", "kahooks.hooks", "kahooks.lab"),
    "checks": ("kahooks.notifiers", "kahooks.daemon", "kahooks.hooks"),
    "notifiers": ("kahooks.checks", "kahooks.daemon", "kahooks.hooks"),
    "daemon": ("kahooks.hooks",),
    "doctor": ("kahooks.notifiers", "kahooks.daemon", "kahooks.hooks", "kahooks.lab"),
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_imports_point_one_way() -> None:
    wrong = []
    for folder, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            for name in imported(path):
                if name.startswith(forbidden):
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong
