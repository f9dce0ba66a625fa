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


# One event's path through the core (ARCHITECTURE.md): the modules it passes, each with the core modules
# it may import. Data flows one way, fifo -> event -> spool -> delivery -> transition: the event model
# imports none of the path, the spool neither the FIFO reader nor the delivery, the reader not the delivery.
PATH_ALLOWED = {
    "kahooks.events.event": {"kahooks.errors", "kahooks.settings.options", "kahooks.events.lvs"},
    "kahooks.events.lvs": {"kahooks.errors"},
    "kahooks.notify.fifo": {"kahooks.events.event", "kahooks.notify.spool"},
    "kahooks.notify.spool": {"kahooks.settings.defaults", "kahooks.events.event", "kahooks.settings.options",
                             "kahooks.notify.spooldir", "kahooks.output.redact"},
    "kahooks.notify.spooldir": {"kahooks.files.atomicfile", "kahooks.files.safefs", "kahooks.errors"},
    "kahooks.files.atomicfile": set(),
    "kahooks.notify.delivery": {"kahooks.settings.config", "kahooks.errors", "kahooks.events.event", "kahooks.output.redact",
                                "kahooks.notify.spool",
                         "kahooks.notify.spooldir", "kahooks.events.transition", "kahooks.files.watching"},
    "kahooks.events.transition": {"kahooks.events.event"},
}


def kahooks_modules(names: set[str]) -> set[str]:
    """The kahooks modules among imported names (`from kahooks.events.event import Event` names kahooks.events.event)."""
    import importlib.util

    found = set()
    for name in names:
        if not name.startswith("kahooks.") or name.startswith("relative import"):
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # a name inside a module (kahooks.events.event.Event)
            continue
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            found.add(name)
    return found


def test_one_event_path_imports_point_one_way() -> None:
    """Read from the installed package: where each module lives is its own business, its imports are not."""
    import importlib.util

    wrong = []
    for module, allowed in PATH_ALLOWED.items():
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, module
        extra = kahooks_modules(imported(Path(spec.origin))) - allowed - {module}
        if extra:
            wrong.append(f"{module} imports {', '.join(sorted(extra))}")
    assert not wrong, wrong
