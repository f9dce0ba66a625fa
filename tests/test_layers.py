"""Imports point one way: hooks, admin -> daemon -> doctor, checks, notifiers -> the core, kahooks/ (ARCHITECTURE.md).

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
    # The two kinds of entry point: keepalived's (hooks/) and the operator's (admin/). Each program's
    # manual (hooks/manual.py) describes the `kahooks` command too, and that command's --help is read from it.
    "hooks": {"kahooks", "checks", "notifiers", "daemon", "doctor", "lab", "admin"},
    "admin": {"kahooks", "checks", "notifiers", "daemon", "doctor", "lab", "hooks"},
}
# The core's modules live in its concept folders (kahooks/notify/, kahooks/settings/ ...); only these stay
# at its top, because every folder imports them.
FLAT_CORE = {"__init__", "errors", "deadline"}


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
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in imported(path):
                if name.startswith("relative import"):
                    wrong.append(name)
                    continue
                layer = layer_of(name)
                if layer is not None and layer != folder and layer not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong


def test_the_core_is_grouped_into_installed_packages_that_import_nothing() -> None:
    """kahooks/ holds concept folders, not modules; each is installed, and its `__init__` is a docstring
    alone (a check crosses some of them at every start: tests/hooks/test_startup.py)."""
    assert {path.stem for path in (ROOT / "kahooks").glob("*.py")} <= FLAT_CORE, "a new core module goes in a folder"
    installed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = sorted(path.parent for path in (ROOT / "kahooks").glob("*/*.py"))
    assert folders
    for folder in folders:
        init = folder / "__init__.py"
        assert init.exists(), f"{folder.relative_to(ROOT)} is not a package"
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str), f"{init.relative_to(ROOT)}: a docstring alone"
        assert f"kahooks.{folder.name}" in installed, f"pyproject's packages misses kahooks.{folder.name}"


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
        # A package (`from kahooks.output import redact` names kahooks.output) is a docstring alone
        # (test_the_core_is_grouped_...): only the modules it holds count.
        if spec is not None and spec.origin and spec.origin.endswith(".py") and spec.submodule_search_locations is None:
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
