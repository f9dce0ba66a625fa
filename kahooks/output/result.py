"""What a probe found: healthy or not, a one-line summary, and numbers for perfdata."""

from __future__ import annotations


class CheckResult:
    """The outcome of one probe run. `ok` is the only thing keepalived cares about."""

    __slots__ = ("ok", "summary", "metrics")

    def __init__(self, ok: bool, summary: str, metrics: dict[str, float] | None = None) -> None:
        self.ok = ok
        self.summary = summary
        self.metrics = metrics if metrics is not None else {}

    def __repr__(self) -> str:
        return f"CheckResult(ok={self.ok!r}, summary={self.summary!r}, metrics={self.metrics!r})"


def healthy(summary: str, **metrics: float) -> CheckResult:
    return CheckResult(True, summary, metrics)


def unhealthy(summary: str, **metrics: float) -> CheckResult:
    return CheckResult(False, summary, metrics)
