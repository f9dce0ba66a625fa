"""What keepalived reads for each check: its track file, written failed while a maintenance file drains the node.

The daemon's CheckRunners judge; this module turns a verdict into the number in
a track file. The file on disk, not a cache, is the truth: keepalived reads a
missing track file as 0 (healthy), so a file deleted or edited by hand is
written again at the next publication.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from kahooks.daemon import trackfile
from kahooks.errors import os_words

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kahooks.daemon.settings import CheckSpec

log = logging.getLogger("kahooks.serve")


class TrackFiles:
    """Each check's track file and the node's maintenance files, shared by every check thread."""

    def __init__(self) -> None:
        self.written: dict[str, int] = {}       # track file -> the value it holds now
        self.write_errors: dict[str, str] = {}  # track file -> the error last logged for it
        self.lock = threading.Lock()
        self.node_maintenance: str | None = None  # [serve] maintenance_file: drains every check
        self.maintenance_seen: frozenset[str] = frozenset()

    def drained_by(self, spec: CheckSpec, present: frozenset[str] | None = None) -> str | None:
        """The maintenance file that drains this check's node now, if any; `present`: the maintenance files
        that exist, already looked up for every check (maintenance_now), else each is looked up here."""
        exists = os.path.exists if present is None else present.__contains__
        for path in (self.node_maintenance, spec.maintenance_file):
            if path and exists(path):
                return path
        return None

    def publish(self, spec: CheckSpec, ok: bool | None) -> None:
        """Make the track file say what the verdict `ok` (None: nothing known yet) and maintenance mean."""
        drained = self.drained_by(spec)
        if ok is None and not drained:
            return  # nothing known yet: keepalived's init_file value stands
        value = spec.ok_value if ok and not drained else spec.fail_value
        with self.lock:
            if trackfile.read_value(spec.track_file) == value:
                self.written[spec.track_file] = value
                self.write_errors.pop(spec.track_file, None)
                return
            try:
                trackfile.write_value(spec.track_file, value)
            except OSError as exc:
                # Once per distinct error, not once per probe: a full disk must not flood the log.
                why = os_words(exc)
                if self.write_errors.get(spec.track_file) != why:
                    self.write_errors[spec.track_file] = why
                    log.error("check %s: cannot write %s: %s", spec.name, spec.track_file, why)
                return
            if self.write_errors.pop(spec.track_file, None):
                log.info("check %s: %s written again", spec.name, spec.track_file)
            self.written[spec.track_file] = value

    def maintenance_paths(self, specs: Iterable[CheckSpec]) -> set[str]:
        paths = {self.node_maintenance} | {spec.maintenance_file for spec in specs}
        return {path for path in paths if path}

    def maintenance_now(self, specs: Iterable[CheckSpec]) -> frozenset[str]:
        return frozenset(path for path in self.maintenance_paths(specs) if os.path.exists(path))

    def maintenance_change(self, specs: Iterable[CheckSpec]) -> str | None:
        """What changed since last asked, in words for the log, or None when nothing did."""
        now = self.maintenance_now(specs)
        if now == self.maintenance_seen:
            return None
        self.maintenance_seen = now
        return (f"maintenance files present: {', '.join(sorted(now))}: draining" if now
                else "no maintenance file present: undraining")
