"""Hearing at once that a file appeared, changed or went: pidfiles and maintenance files.

watchdog's inotify observer watches each file's directory (a file that does not
exist yet cannot be watched itself) and calls back for events that name the file,
including renames onto it, which is how daemons and operators usually replace one.
"""

from __future__ import annotations

import logging
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

log = logging.getLogger("kahooks.serve")


class FileWatch:
    """Call `callback(path)` whenever one of the registered paths changes in any way."""

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callable[[str], None]]] = {}
        self.observer: Any = None

    def add(self, path: str, callback: Callable[[str], None]) -> None:
        self.callbacks.setdefault(os.path.abspath(path), []).append(callback)

    def start(self) -> None:
        if not self.callbacks:
            return
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watch = self

        class Dispatch(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                for path in {event.src_path, getattr(event, "dest_path", "")}:
                    for callback in watch.callbacks.get(os.fsdecode(path), ()):
                        try:
                            callback(os.fsdecode(path))
                        except Exception:
                            log.exception("watching %s", path)

        self.observer = Observer()
        self.observer.daemon = True
        for directory in sorted({os.path.dirname(path) for path in self.callbacks}):
            if not os.path.isdir(directory):
                # Nothing to hear until the directory exists; the checks' own intervals still look.
                log.warning("cannot watch %s: the directory does not exist; checking on each interval", directory)
                continue
            self.observer.schedule(Dispatch(), directory, recursive=False)
        self.observer.start()

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(5)
            self.observer = None
