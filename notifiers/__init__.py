"""What reacts to a VRRP transition: one module per channel type, each a Channel subclass.

Modules are imported only when a configuration uses their type.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from kahooks.notifiers.base import Channel

CHANNEL_MODULES = {
    "syslog": "kahooks.notifiers.syslog",
    "exec": "kahooks.notifiers.command",
    "email": "kahooks.notifiers.mail",
    "slack": "kahooks.notifiers.slack",
    "webhook": "kahooks.notifiers.webhook",
    "dns": "kahooks.notifiers.dns",
    "rebind": "kahooks.notifiers.rebind",
}


def channel_class(kind: str) -> type[Channel]:
    return __import__(CHANNEL_MODULES[kind], fromlist=["CHANNEL"]).CHANNEL


def channel_types() -> dict[str, Callable[[str, dict[str, Any], Path], Channel]]:
    """type name -> constructor, importing each channel module only when it is used."""
    return {kind: (lambda name, settings, base, kind=kind: channel_class(kind)(name, settings, base))
            for kind in CHANNEL_MODULES}
