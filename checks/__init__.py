"""Health probes keepalived runs as track scripts, and the daemon runs in-process.

A kind of check is one module here, named after it (`process.py` is `ka-check-process`), with a
`CHECK` class; `base.py` is the contract and modules starting with `_` are helpers. Every list of
kinds (the programs, the daemon's `run` words) comes from this folder, so a new check is its module,
its tests and one line in pyproject.toml. A module is imported only when its kind is used, so a
process check never pays for http.client or ssl.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kahooks.checks.base import Check

PROGRAM_PREFIX = "ka-check-"


def kinds() -> list[str]:
    """Every kind of check, from the modules in this folder."""
    return sorted(name[:-3] for name in os.listdir(os.path.dirname(__file__))
                  if name.endswith(".py") and not name.startswith("_") and name != "base.py")


def load_check_class(kind: str) -> type[Check]:
    """The Check subclass for `kind` ('process', 'port', 'http', 'exec', 'heartbeat'); KeyError if none."""
    if not kind.isidentifier() or kind.startswith("_") or kind == "base":
        raise KeyError(kind)
    try:
        module = __import__(f"kahooks.checks.{kind}", fromlist=["CHECK"])
    except ModuleNotFoundError as exc:
        if exc.name == f"kahooks.checks.{kind}":
            raise KeyError(kind) from None
        raise
    return module.CHECK
