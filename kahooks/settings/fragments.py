"""kahooks.toml and its drop-ins: conf.d/*.toml beside it, merged, remembering where each key came from.

A package owns /etc/kahooks/kahooks.toml as a conffile; an operator (or a
configuration manager) adds a channel or an instance by dropping a file in
/etc/kahooks/conf.d/ instead of editing it. Fragments are read in name order
after the main file: tables merge key by key, `[[rules]]` are appended in that
order, and any other value set again replaces the earlier one. Every key keeps
the file (and the key path within that file) it came from, so a problem is
reported as FILE:LINE of the file the operator has to edit.
"""

from __future__ import annotations

import os

from kahooks.files import safefs
from kahooks.settings.tomlfile import MAX_TOML, locate, read_toml

TYPE_CHECKING = False  # typing costs ka-notify's handler start-up; only mypy needs it
if TYPE_CHECKING:
    from typing import Any

DROP_IN_DIR = "conf.d"
APPENDED = ("rules",)  # arrays of tables that fragments add to rather than replace

Where = tuple[str, tuple[str | int, ...]]  # (file, key path within that file)


def drop_ins(path: str) -> list[str]:
    """The fragments that go with `path`: conf.d/*.toml beside it, in name order (none when absent)."""
    directory = os.path.join(os.path.dirname(path), DROP_IN_DIR)  # no pathlib: ka-notify's start-up
    try:
        names = sorted(entry.name for entry in os.scandir(directory)
                       if entry.name.endswith(".toml") and not entry.name.startswith(".") and entry.is_file())
    except OSError:  # no conf.d (or not a directory): the main file alone
        return []
    return [os.path.join(directory, name) for name in names]


def files(path: str) -> list[str]:
    """Every file the configuration at `path` is read from, main file first."""
    return [path, *drop_ins(path)]


def identity(path: str) -> str:
    """What changes when any file of the configuration is edited, replaced, added or removed."""
    parts = []
    for name in [*files(path), os.path.join(os.path.dirname(path), DROP_IN_DIR)]:
        try:
            info = os.stat(name)
            parts.append(f"{name}:{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:-")
    return " ".join(parts)


class Merged:
    """The merged settings (`data`) and, for each key path, the file that set it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        self.files: list[str] = []
        self._origins: dict[tuple[str | int, ...], Where] = {}
        self._texts: dict[str, str] = {}

    def add(self, name: str, data: dict[str, Any]) -> None:
        self.files.append(name)
        self._merge(self.data, data, name, (), ())

    def _merge(self, into: dict[str, Any], incoming: dict[str, Any], name: str,
               merged_path: tuple[str | int, ...], own_path: tuple[str | int, ...]) -> None:
        for key, value in incoming.items():
            here, own = (*merged_path, key), (*own_path, key)
            if not merged_path and key in APPENDED and isinstance(value, list) and isinstance(into.get(key), list):
                for index, item in enumerate(value):
                    self._origins[(*here, len(into[key]))] = (name, (*own, index))
                    into[key].append(item)
                continue
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                self._origins.setdefault(here, (name, own))
                self._merge(into[key], value, name, here, own)
                continue
            into[key] = value
            self._origins[here] = (name, own)
            if not merged_path and key in APPENDED and isinstance(value, list):
                for index in range(len(value)):
                    self._origins[(*here, index)] = (name, (*own, index))

    def where(self, key: str) -> tuple[str, int | None]:
        """The file that set dotted `key` (as problems name it, e.g. rules[2].channels) and its line there."""
        import re

        tokens: list[str | int] = [int(token[1:-1]) if token.startswith("[") else token
                                   for token in re.findall(r"\[\d+\]|[^.\[\]]+", key)]
        for length in range(len(tokens), 0, -1):
            origin = self._origins.get(tuple(tokens[:length]))
            if origin is not None:
                name, own = origin
                return name, locate(self._text(name), _dotted([*own, *tokens[length:]]))
        return self.path, locate(self._text(self.path), key)

    def _text(self, name: str) -> str:
        if name not in self._texts:
            try:
                self._texts[name] = safefs.read_text(name, MAX_TOML)
            except (OSError, safefs.UnsafeFile):  # the line is then unknown
                self._texts[name] = ""
        return self._texts[name]


def _dotted(tokens: list[str | int]) -> str:
    text = ""
    for token in tokens:
        text += f"[{token}]" if isinstance(token, int) else (f".{token}" if text else token)
    return text


def read(path: str) -> Merged:
    """Read `path` and its drop-ins; a file that cannot be read or parsed raises ConfigError naming it."""
    merged = Merged(path)
    for name in files(path):
        try:
            data = read_toml(name)
        except RecursionError:  # tomllib nests arrays and inline tables by recursion, with no limit of its own
            from kahooks.settings.tomlfile import config_error

            raise config_error(name, "syntax", "arrays or inline tables nested too deeply") from None
        merged.add(name, data)
    return merged
