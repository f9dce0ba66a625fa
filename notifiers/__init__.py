"""What reacts to a VRRP transition: one module per channel type, each with a `CHANNEL` class.

The module is named after the type (`email.py` is `type = "email"`); `base.py` is the contract and
modules starting with `_` are helpers. The known types come from this folder, so a new channel is
its module and its tests. Modules are imported only when a configuration uses their type.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from kahooks.notifiers.base import Channel
    from kahooks.settings.config import Config


def kinds() -> list[str]:
    """Every channel type, from the modules in this folder."""
    return sorted(name[:-3] for name in os.listdir(os.path.dirname(__file__))
                  if name.endswith(".py") and not name.startswith("_") and name != "base.py")


def channel_class(kind: str) -> type[Channel]:
    return __import__(f"kahooks.notifiers.{kind}", fromlist=["CHANNEL"]).CHANNEL


def channel_types() -> dict[str, Callable[[str, dict[str, Any], Path], Channel]]:
    """type name -> constructor, importing each channel module only when it is used."""
    def builder(kind: str) -> Callable[[str, dict[str, Any], Path], Channel]:
        return lambda name, settings, base: channel_class(kind)(name, settings, base)

    return {kind: builder(kind) for kind in kinds()}


def load_config(path: str, sections: dict[str, Callable[..., Any]] | None = None) -> Config:
    """kahooks.toml with every channel built: the one load path of ka-notify and the daemon
    (which passes the parsers of its [serve] and [checks] tables). Raises ConfigError."""
    from kahooks.settings import config

    return config.load(path, channel_types(), sections)
