"""ka-check-heartbeat: is `kahooks serve` alive? The guard against stale track files.

The daemon rewrites its heartbeat file every second. If it dies (and systemd
cannot bring it back), its track files keep saying whatever they said last,
possibly "healthy". keepalived runs this check as an ordinary vrrp_script with
a long interval; it fails once the heartbeat is older than --max-age, so the
node goes to FAULT instead of serving unchecked. A restart of the daemon takes
well under the default 3 s, so `systemctl restart kahooks` causes no failover.
"""

from __future__ import annotations

import os
import time

from kahooks.checks.base import Check
from kahooks.errors import os_words
from kahooks.output.result import CheckResult, healthy, unhealthy
from kahooks.settings.options import Option, positive_float

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kahooks.deadline import Deadline

DEFAULT_PATH = "/run/kahooks/heartbeat"
DEFAULT_MAX_AGE = 3.0


class HeartbeatCheck(Check):
    kind = "heartbeat"
    EXAMPLES = (("ka-check-heartbeat /run/kahooks/heartbeat", "kahooks serve wrote its heartbeat in the last 3 s"),)
    in_daemon = False  # it guards the daemon: running it inside the daemon would guard nothing
    STARTUP_IMPORTS: frozenset[str] = frozenset()
    OPTIONS = (
        Option("PATH", default=DEFAULT_PATH, help="the daemon's heartbeat file ([serve] state_dir/heartbeat)"),
        Option("--max-age", convert=positive_float, default=DEFAULT_MAX_AGE, metavar="SECONDS",
               help="fail when the heartbeat is older than this"),
    )

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.path: str = values["path"]
        self.max_age: float = values["max_age"]

    def probe(self, deadline: Deadline) -> CheckResult:
        try:
            modified = os.stat(self.path).st_mtime
        except FileNotFoundError:
            return unhealthy(f"{self.path} does not exist: kahooks serve is not running")
        except OSError as exc:
            return unhealthy(f"cannot read {self.path}: {os_words(exc)}")
        age = time.time() - modified
        if age > self.max_age:
            return unhealthy(f"kahooks serve heartbeat is {age:.1f} s old (limit {self.max_age:g} s): "
                             f"the daemon is dead or stuck, its track files are stale", age=round(age, 3))
        return healthy(f"kahooks serve heartbeat {age:.1f} s old", age=round(age, 3))


CHECK = HeartbeatCheck
