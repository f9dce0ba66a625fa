"""Rise/fall and the schedule, with a test clock: no threads, no sleeps."""

from __future__ import annotations

from kahooks.daemon.verdict import Verdict, next_due
from kahooks.output.result import healthy, unhealthy

OK = healthy("up")
DOWN = unhealthy("down")


def feed(verdict: Verdict, results: list) -> list[bool | None]:
    """The judged state after each result."""
    states = []
    for index, result in enumerate(results):
        verdict.record(result, now=float(index))
        states.append(verdict.ok)
    return states


def test_the_first_result_decides_at_once_whatever_rise_and_fall() -> None:
    assert feed(Verdict(rise=3, fall=3), [DOWN]) == [False]
    assert feed(Verdict(rise=3, fall=3), [OK]) == [True]


def test_fall_counts_failures_in_a_row() -> None:
    assert feed(Verdict(rise=1, fall=3), [OK, DOWN, DOWN, OK, DOWN, DOWN, DOWN]) == \
        [True, True, True, True, True, True, False]


def test_rise_counts_successes_in_a_row() -> None:
    assert feed(Verdict(rise=2, fall=1), [DOWN, OK, DOWN, OK, OK]) == [False, False, False, False, True]


def test_a_change_records_when_and_why() -> None:
    verdict = Verdict(rise=1, fall=2)
    assert verdict.record(OK, now=10.0)
    assert not verdict.record(unhealthy("refused"), now=11.0)
    assert verdict.record(unhealthy("refused again"), now=12.0)
    assert (verdict.ok, verdict.since, verdict.why, verdict.changes) == (False, 12.0, "refused again", 2)
    assert (verdict.runs, verdict.failures, verdict.last_summary) == (3, 2, "refused again")


def test_schedule_keeps_a_fixed_rate() -> None:
    # A probe that took 0.3 s does not push the next slot back.
    assert next_due(previous_due=10.0, interval=1.0, now=10.3) == 11.0


def test_an_overrun_is_followed_by_one_run_at_once_not_a_burst() -> None:
    # The probe ran 3.5 intervals: the next run starts now, and the one after a whole interval later.
    first = next_due(previous_due=10.0, interval=1.0, now=13.5)
    assert first == 13.5
    assert next_due(previous_due=first, interval=1.0, now=13.6) == 14.5
