"""Rise and fall: turning a stream of probe results into the state keepalived is told.

The same rule as keepalived's vrrp_script: a healthy check turns failed after
`fall` failures in a row, a failed one turns healthy after `rise` successes in a
row. The very first result decides at once (a node should not wait `rise`
intervals after a daemon restart to be told what is true). Pure and clocked by
the caller, so it is tested without threads or sleeps.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kahooks.daemon.snapshot import VerdictState
    from kahooks.output.result import CheckResult


# Upper bounds (seconds) of the probe-duration histogram: a loopback probe takes about a millisecond,
# a remote one tens, a check near keepalived's timeout seconds. Ten buckets, not Prometheus' fifteen:
# each is a series per check at every scrape.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5)

class Verdict:
    """The judged state of one check, and what changed it."""

    __slots__ = ("rise", "fall", "ok", "streak", "since", "why", "last_summary", "last_ok", "last_run",
                 "last_latency", "runs", "failures", "changes", "latency_total", "latency_buckets")

    def __init__(self, rise: int = 1, fall: int = 1) -> None:
        self.rise = rise
        self.fall = fall
        self.ok: bool | None = None       # None until the first result
        self.streak = 0                   # results in a row that disagree with `ok`
        self.since: float | None = None   # when `ok` last changed
        self.why = ""                     # the result that changed it
        self.last_summary = ""
        self.last_ok: bool | None = None
        self.last_run: float | None = None
        self.last_latency = 0.0
        self.runs = 0
        self.failures = 0
        self.changes = 0
        self.latency_total = 0.0
        # Probes per duration bucket (not cumulative): /metrics' histogram, with LATENCY_BUCKETS' bounds.
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)

    def record(self, result: CheckResult, now: float, latency: float = 0.0, counted: bool = True) -> bool:
        """Count one result taken at `now`; True when it changed the judged state.

        `counted=False`: a probe run early (a file event poked it) less than an interval after
        the last counted one. It is shown, but rise and fall count only probes an interval
        apart, as keepalived's do: three inotify events from one pidfile write are not three
        good results.
        """
        self.runs += 1
        self.failures += 0 if result.ok else 1
        self.last_summary = result.summary
        self.last_ok = result.ok
        self.last_run = now
        self.last_latency = latency
        self.latency_total += latency
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
        if not counted and self.ok is not None:
            return False
        if self.ok is None or result.ok == self.ok:
            self.streak = 0
            if self.ok is None:
                self._change(result, now)
                return True
            return False
        self.streak += 1
        if self.streak < (self.rise if result.ok else self.fall):
            return False
        self._change(result, now)
        return True

    def _change(self, result: CheckResult, now: float) -> None:
        self.ok = result.ok
        self.streak = 0
        self.since = now
        self.why = result.summary
        self.changes += 1

    def as_dict(self) -> VerdictState:
        return {"ok": self.ok, "since": self.since, "why": self.why, "streak": self.streak,
                "last": {"ok": self.last_ok, "summary": self.last_summary, "time": self.last_run,
                         "latency": self.last_latency},
                "runs": self.runs, "failures": self.failures, "changes": self.changes,
                "latency_total": self.latency_total, "latency_buckets": list(self.latency_buckets)}


def next_due(previous_due: float, interval: float, now: float) -> float:
    """When the next run of a check is due: a fixed rate that never bursts.

    Runs keep to the schedule (previous + interval) so probe time does not make
    the interval drift; a run that overran its slot is followed by one run at
    once, and the slots it missed are skipped, not run back to back.
    """
    due = previous_due + interval
    return due if due > now else now
