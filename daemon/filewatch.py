"""Hearing at once that a pidfile or a maintenance file appeared, changed or went.

Each file's directory is watched (a file that does not exist yet cannot be watched
itself), through the one watcher of kahooks.files.watching, and a callback runs for
changes that name the file, including renames onto it, which is how daemons and
operators usually replace one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class FileWatch:
    """Call `callback(path)` whenever one of the registered paths changes content or existence."""

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callable[[str], None]]] = {}
        self.observer: Any = None

    def add(self, path: str, callback: Callable[[str], None]) -> None:
        self.callbacks.setdefault(os.path.abspath(path), []).append(callback)

    def start(self) -> None:
        if not self.callbacks:
            return
        from kahooks.files.watching import observe

        def dispatch(path: str) -> None:
            for callback in self.callbacks.get(path, ()):
                callback(path)

        self.observer = observe({os.path.dirname(path) for path in self.callbacks}, dispatch)

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(5)
            self.observer = None
