"""Health probes keepalived runs as track scripts, and the daemon runs in-process.

Each kind lives in its own module, imported only when that kind is used, so a
process check never pays for http.client or ssl.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kahooks.checks.base import Check

CHECK_MODULES = {
    "process": "kahooks.checks.process",
    "port": "kahooks.checks.port",
    "http": "kahooks.checks.http",
    "exec": "kahooks.checks.command",
    "heartbeat": "kahooks.checks.heartbeat",
}


def load_check_class(kind: str) -> type[Check]:
    """The Check subclass for `kind` ('process', 'port', 'http', 'exec')."""
    module = __import__(CHECK_MODULES[kind], fromlist=["CHECK"])
    return module.CHECK
