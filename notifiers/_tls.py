"""The `ca` and `insecure` settings of the channels that speak TLS (webhook, alertmanager, email).

One reading for all of them: `insecure = true` turns verification off (and wins over `ca`); `ca`,
a file relative to kahooks.toml, is checked as a setting whenever it is given; otherwise the
system's CAs. The result is what requests takes as `verify`; email turns it into a context
(`kahooks.system.tls.client_context`) with `insecure_and_ca`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from kahooks.notifiers.base import Channel

def verify(channel: Channel, settings: dict[str, Any]) -> bool | str:
    """False (no verification), the CA file's path, or True (the system's CAs)."""
    ca = str(channel.base / channel.text(settings, "ca")) if "ca" in settings else None
    if settings.get("insecure") is True:
        return False
    return ca or True


def insecure_and_ca(verified: bool | str) -> tuple[bool, str | None]:
    """What verify() said, as `kahooks.system.tls.client_context` takes it."""
    return verified is False, verified if isinstance(verified, str) else None
