"""The folders are the registry: every list of checks and channels derives from the modules there,
or is checked against them here."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from kahooks import checks, notifiers
from kahooks.checks.base import COMMON_OPTIONS, PROGRAM_ONLY
from kahooks.daemon.settings import daemon_programs

ROOT = Path(__file__).resolve().parents[1]


def _declaring(folder: str, name: str) -> set[str]:
    """The modules of a family's folder that assign `name` (CHECK, CHANNEL) at their top level."""
    found = set()
    for path in (ROOT / folder).glob("*.py"):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == name
                                                    for target in node.targets) for node in tree.body):
            found.add(path.stem)
    return found


def test_every_check_module_is_a_kind_with_its_program() -> None:
    assert set(checks.kinds()) == _declaring("checks", "CHECK")  # no helper taken for a kind, no kind missed
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    programs = {name for name in scripts if name.startswith(checks.PROGRAM_PREFIX)}
    assert programs == {f"ka-check-{kind}" for kind in checks.kinds()}
    assert {scripts[name] for name in programs} == {"kahooks.hooks.check_cli:main"}
    for kind in checks.kinds():
        assert checks.load_check_class(kind).kind == kind


def test_the_daemon_runs_every_kind_but_its_own_guard() -> None:
    assert daemon_programs() == {f"ka-check-{kind}": kind for kind in checks.kinds() if kind != "heartbeat"}


def test_every_channel_module_is_a_type() -> None:
    assert set(notifiers.kinds()) == _declaring("notifiers", "CHANNEL")
    for kind in notifiers.kinds():
        assert notifiers.channel_class(kind).kind == kind


def test_the_daemon_refuses_only_options_the_programs_have() -> None:
    names = {name for option in COMMON_OPTIONS for name in option.names} | {"-h", "--help", "-V", "--version"}
    assert set(PROGRAM_ONLY) <= names


def test_the_prose_names_no_check_that_is_not_one() -> None:
    """README and the package's description name checks as examples; a renamed or removed kind shows here."""
    for path in (ROOT / "README.md", ROOT / "debian" / "control"):
        named = set(re.findall(r"\bka-check-([a-z]+)\b", path.read_text()))
        assert named <= set(checks.kinds()), (path.name, named - set(checks.kinds()))


def test_the_package_test_runs_every_kind_under_keepalived() -> None:
    """tests/lab/packaging.py's keepalived.conf: a vrrp_script per registered kind, each tracked (keepalived
    runs no script nothing tracks), and the port check that must fail."""
    from tests.lab.packaging import keepalived_conf

    text = keepalived_conf(Path("/srv/work"))
    scripts = dict(re.findall(r'vrrp_script (\S+) \{\n    script "(\S+)', text))
    assert {f"/usr/bin/ka-check-{kind}" for kind in checks.kinds()} <= set(scripts.values()), scripts
    tracked = set(re.findall(r"^        (chk_\S+)$", text, re.MULTILINE))
    assert tracked == set(scripts), (tracked, scripts)
    assert scripts["chk_closed"] == "/usr/bin/ka-check-port"


def _table_keys(text: str, header: str) -> set[str]:
    """The backquoted first cells of the README table under `header` (its first line)."""
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append(line)
    return {match.group(1) for row in rows if (match := re.match(r"\| `([^` ]+)", row))}


def test_the_readme_tables_and_layout_name_only_real_kinds() -> None:
    """The README's tables and layout present kinds; like the prose above, they may only name real ones (a
    renamed or removed check or channel shows here). What lists every kind is generated: the manual, the
    man pages, completion (hooks/manual.py) and the package's programs."""
    text = (ROOT / "README.md").read_text()
    programs = _table_keys(text, "| program | replaces | healthy when |")
    assert programs and programs <= {f"ka-check-{kind}" for kind in checks.kinds()}, programs
    channels = _table_keys(text, "| type | what it does | retried | permanent |")
    assert channels and channels <= set(notifiers.kinds()), channels
    layout = {folder: set(re.findall(r"[a-z]+", names)) for folder, names in
              re.findall(r"^(checks|notifiers)/ .*\((.*)\)$", text, re.M)}
    assert layout.keys() == {"checks", "notifiers"}, layout
    assert layout["checks"] <= set(checks.kinds()) and layout["notifiers"] <= set(notifiers.kinds()), layout
