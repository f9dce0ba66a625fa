"""One way to hear that files changed: inotify through watchdog, for content and existence only.

Used for pidfiles and maintenance files (the daemon) and for the spool's incoming/
(the delivery worker). Only events that change what a reader would find are asked
of the kernel: created, written and closed, moved, deleted. Opening or reading a
file (which every probe of a pidfile does) is never an event here; reacting to
those made the daemon chase its own reads at a full core.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from kahooks.errors import os_words

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

log = logging.getLogger("kahooks.watch")


def change_events() -> list[type]:
    """The watchdog event classes that mean content or existence changed (they set the inotify mask)."""
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileMovedEvent,
    )

    return [FileCreatedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
            DirCreatedEvent, DirDeletedEvent, DirMovedEvent]


def observe(directories: Iterable[str], on_change: Callable[[str], None]) -> Any:
    """Watch each directory (not recursively); call on_change(path) for each path a change names.

    Returns the started observer (stop() it), or None when nothing could be watched.
    A directory that does not exist is skipped with a warning: callers also poll.
    """
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    wanted = tuple(change_events())

    class Dispatch(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            if not isinstance(event, wanted):  # belt and braces: an observer without masks
                return
            for path in {getattr(event, "src_path", ""), getattr(event, "dest_path", "") or ""}:
                if path:
                    try:
                        on_change(os.fsdecode(path))
                    except Exception:
                        log.exception("reacting to a change of %s", os.fsdecode(path))

    observer = Observer()
    observer.daemon = True
    scheduled = 0
    for directory in sorted(set(directories)):
        if not os.path.isdir(directory):
            log.warning("cannot watch %s: the directory does not exist; checking on each interval", directory)
            continue
        try:
            try:
                observer.schedule(Dispatch(), directory, recursive=False, event_filter=list(wanted))
            except TypeError:  # watchdog before 4.0 (Debian 12 has 2.2): no event_filter, and no open/read
                observer.schedule(Dispatch(), directory, recursive=False)  # events either; Dispatch filters
            scheduled += 1
        except OSError as exc:
            log.warning("cannot watch %s: %s; checking on each interval", directory, os_words(exc))
    if not scheduled:
        return None
    try:
        observer.start()
    except OSError as exc:  # out of inotify watches or descriptors: the callers' polling still looks
        log.warning("cannot start watching files: %s; checking on each interval", os_words(exc))
        return None
    return observer
