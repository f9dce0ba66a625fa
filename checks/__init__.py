"""Health probes keepalived runs as track scripts, and the daemon runs in-process.

A kind of check is one module here, named after it (`process.py` is `ka-check-process`), with a
`CHECK` class; `base.py` is the contract and modules starting with `_` are helpers. Every list of
kinds (the programs, the daemon's `run` words, the manual, the tests) comes from this folder, so a
new check is its module, its tests and one line in pyproject.toml; `build` is the one way a check
is made. A module is imported only when its kind is used, so a process check never pays for
http.client or ssl.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from kahooks.checks.base import Check

PROGRAM_PREFIX = "ka-check-"


def kinds() -> list[str]:
    """Every kind of check, from the modules in this folder."""
    return sorted(name[:-3] for name in os.listdir(os.path.dirname(__file__))
                  if name.endswith(".py") and not name.startswith("_") and name != "base.py")


def load_check_class(kind: str) -> type[Check]:
    """The Check subclass for `kind` (one of kinds()); KeyError if none."""
    if not kind.isidentifier() or kind.startswith("_") or kind == "base":
        raise KeyError(kind)
    try:
        module = __import__(f"kahooks.checks.{kind}", fromlist=["CHECK"])
    except ModuleNotFoundError as exc:
        if exc.name == f"kahooks.checks.{kind}":
            raise KeyError(kind) from None
        raise
    return module.CHECK


def build(kind: str, argv: Sequence[str], prog: str,
          parsed: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], Check]:
    """The one way a Check is made from its command line: a ka-check-KIND program's argv and the
    daemon's `run` words alike. `parsed` sees the option values before the check is built (the
    program's own rules on its output modes). Raises UsageError, for an unknown kind too."""
    from kahooks.checks.base import COMMON_OPTIONS
    from kahooks.errors import UsageError
    from kahooks.settings.options import parse_argv

    try:
        check_class = load_check_class(kind)
    except KeyError:
        raise UsageError(f"no check named {kind!r} (run as {PROGRAM_PREFIX}KIND)") from None
    values = parse_argv(COMMON_OPTIONS + check_class.OPTIONS, argv, prog)
    if parsed is not None:
        parsed(values)
    return values, check_class(values)
