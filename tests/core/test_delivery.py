"""The delivery worker's scheduling: order per instance, retries, dead letters, flap summaries.

The endpoint here is a recording channel (what is under test is the worker's
scheduling, with a clock the test moves); tests/notifiers and tests/hooks drive
the same worker against real rsyslogd and real commands.
"""

from __future__ import annotations

import time
from pathlib import Path

from kahooks.events.event import Event
from kahooks.notifiers import channel_types
from kahooks.notifiers.base import Channel
from kahooks.notify.delivery import PermanentFailure, TemporaryFailure, Worker
from kahooks.notify.spool import Spool
from kahooks.settings.config import load


class Recorder(Channel):
    kind = "recorder"
    SETTINGS = frozenset()

    def configure(self, settings: dict) -> None:
        self.sent: list = []
        self.failures: list[Exception] = []

    def send(self, message) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, flap_window: float = 0, max_attempts: int = 4) -> tuple[Worker, Spool, Recorder, Clock]:
    path = tmp_path / "kahooks.toml"
    path.write_text(f"""
spool_dir = "{tmp_path / 'spool'}"
[delivery]
flap_window = {flap_window}
max_attempts = {max_attempts}
backoff_initial = 1
backoff_max = 8
[channels.rec]
type = "recorder"
[[rules]]
channels = ["rec"]
""")
    config = load(str(path), {**channel_types(), "recorder": Recorder})
    spool = Spool(config.spool_dir).ensure()
    clock = Clock()
    return Worker(config, spool, clock=clock), spool, config.channels["rec"], clock


def record(spool: Spool, clock: Clock, name: str, state: str) -> Event:
    event = Event.new("INSTANCE", name, state, 100, "test")
    object.__setattr__(event, "time", clock.now)  # the test's clock, not the wall clock
    spool.record(event)
    return event


def run_pass(worker: Worker) -> float | None:
    worker.fan_out_pending()
    return worker.channel_pass("rec")


def test_delivers_in_order_with_previous_state(tmp_path: Path) -> None:
    worker, spool, rec, clock = make(tmp_path)
    for state in ("BACKUP", "MASTER", "FAULT"):
        record(spool, clock, "VI_1", state)
        clock.now += 1
    for _ in range(3):
        run_pass(worker)
    assert [(m.event.state, m.context["previous_state"]) for m in rec.sent] == \
        [("BACKUP", None), ("MASTER", "BACKUP"), ("FAULT", "MASTER")]
    assert rec.sent[1].subject.endswith("VI_1 is MASTER (was BACKUP)")
    assert spool.idle()


def test_a_retrying_event_holds_back_later_ones_of_that_instance_only(tmp_path: Path) -> None:
    worker, spool, rec, clock = make(tmp_path)
    record(spool, clock, "VI_1", "MASTER")
    record(spool, clock, "VI_1", "BACKUP")
    record(spool, clock, "VI_2", "MASTER")
    rec.failures = [TemporaryFailure("endpoint down")]
    next_due = run_pass(worker)
    # VI_1 MASTER failed; VI_1 BACKUP must wait for it; VI_2 is independent.
    assert [(m.event.name, m.event.state) for m in rec.sent] == [("VI_2", "MASTER")]
    assert next_due is not None and next_due <= clock.now + 1
    clock.now += 2
    run_pass(worker)
    run_pass(worker)
    assert [(m.event.name, m.event.state) for m in rec.sent] == \
        [("VI_2", "MASTER"), ("VI_1", "MASTER"), ("VI_1", "BACKUP")]


def test_backoff_is_full_jitter_and_retry_after_wins(tmp_path: Path) -> None:
    worker, *_ = make(tmp_path)
    delays = [worker.backoff(5, None) for _ in range(300)]
    assert 0 <= min(delays) < 1 and 6 < max(delays) <= 8  # uniform in [0, min(8, 1 * 2^4)]
    assert worker.backoff(1, 3.5) == 3.5
    assert worker.backoff(1, 3600) == 3600  # honoured whole, not cut to backoff_max
    assert worker.backoff(1, 10**12, age_left=7200) == 7200  # bounded by what is left of max_age


def test_permanent_failure_goes_to_dead_letters_without_retry(tmp_path: Path) -> None:
    worker, spool, rec, clock = make(tmp_path)
    record(spool, clock, "VI_1", "MASTER")
    rec.failures = [PermanentFailure("403 channel_is_archived")]
    run_pass(worker)
    assert rec.sent == [] and spool.idle()
    dead = list((spool.dead_dir / "rec").glob("*.json"))
    assert len(dead) == 1 and "channel_is_archived" in dead[0].read_text()


def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    worker, spool, rec, clock = make(tmp_path, max_attempts=3)
    record(spool, clock, "VI_1", "MASTER")
    rec.failures = [TemporaryFailure("down")] * 5
    for _ in range(5):
        run_pass(worker)
        clock.now += 10
    assert rec.sent == [] and spool.idle()
    assert "gave up after 3 attempts: down" in next((spool.dead_dir / "rec").glob("*.json")).read_text()


def test_by_default_an_endpoint_down_for_hours_loses_nothing_and_max_age_ends_the_retries(tmp_path: Path) -> None:
    """A mail relay down over a night still gets the failover's message: with the default [delivery],
    retries back off to 300 s and go on until max_age (a day), not until a handful of attempts ran out."""
    path = tmp_path / "kahooks.toml"
    path.write_text(f'spool_dir = "{tmp_path / "spool"}"\n[channels.rec]\ntype = "recorder"\n'
                    '[[rules]]\nchannels = ["rec"]\n')
    config = load(str(path), {**channel_types(), "recorder": Recorder})
    spool = Spool(config.spool_dir).ensure()
    clock = Clock()
    clock.now = time.time()  # a delivery's age counts from when fan-out made it, on the wall clock
    worker, rec = Worker(config, spool, clock=clock), config.channels["rec"]
    assert isinstance(rec, Recorder)

    def outage(hours: float) -> int:
        """Fail every attempt for `hours`, then let one through; the number of attempts made."""
        end, attempts = clock.now + hours * 3600, 0
        while not spool.idle():
            rec.failures = [TemporaryFailure("relay down")] if clock.now < end else []
            next_due = run_pass(worker)
            attempts += 1
            if next_due is not None:
                clock.now = max(clock.now, next_due)
        return attempts

    record(spool, clock, "VI_1", "MASTER")
    attempts = outage(hours=8)
    assert [m.event.state for m in rec.sent] == ["MASTER"], "delivered once the relay came back"
    assert attempts > 50 and not list(spool.dead_dir.rglob("*.json"))

    record(spool, clock, "VI_1", "BACKUP")
    outage(hours=30)
    assert [m.event.state for m in rec.sent] == ["MASTER"]
    assert "gave up after too old" in next((spool.dead_dir / "rec").glob("*.json")).read_text()


def test_flapping_burst_becomes_one_summary(tmp_path: Path) -> None:
    worker, spool, rec, clock = make(tmp_path, flap_window=10)
    record(spool, clock, "VI_1", "MASTER")
    run_pass(worker)
    assert [m.event.state for m in rec.sent] == ["MASTER"]  # the first transition goes out at once
    for state in ("BACKUP", "MASTER", "BACKUP", "MASTER"):
        clock.now += 2
        record(spool, clock, "VI_1", state)
        run_pass(worker)
    assert len(rec.sent) == 1  # held while the instance keeps changing
    clock.now += 9
    run_pass(worker)
    assert len(rec.sent) == 1  # not quiet for a whole window yet
    clock.now += 2
    run_pass(worker)
    summary = rec.sent[-1]
    assert len(rec.sent) == 2 and summary.context["flapping"]
    assert [change["state"] for change in summary.context["events"]] == ["BACKUP", "MASTER", "BACKUP", "MASTER"]
    assert summary.subject.endswith("VI_1 flapped 4 times, now MASTER")
    assert spool.idle()


def test_isolated_transitions_are_not_held(tmp_path: Path) -> None:
    worker, spool, rec, clock = make(tmp_path, flap_window=10)
    record(spool, clock, "VI_1", "MASTER")
    run_pass(worker)
    clock.now += 60
    record(spool, clock, "VI_1", "BACKUP")
    run_pass(worker)
    assert [m.event.state for m in rec.sent] == ["MASTER", "BACKUP"]
    assert not any(m.context["flapping"] for m in rec.sent)


def test_unreadable_spool_entries_are_kept_aside(tmp_path: Path) -> None:
    worker, spool, rec, clock = make(tmp_path)
    (spool.incoming_dir / "00000000000000000001-bad.json").write_text("{not json")
    record(spool, clock, "VI_1", "MASTER")
    run_pass(worker)
    assert [m.event.state for m in rec.sent] == ["MASTER"]
    assert (spool.dead_dir / "00000000000000000001-bad.json").exists()


def test_a_message_knows_when_a_newer_event_is_queued(tmp_path: Path) -> None:
    worker, spool, rec, clock = make(tmp_path)
    record(spool, clock, "VI_1", "BACKUP")
    record(spool, clock, "VI_1", "MASTER")
    run_pass(worker)
    run_pass(worker)
    assert [(m.event.state, m.superseded) for m in rec.sent] == [("BACKUP", True), ("MASTER", False)]


def test_the_spool_works_under_keepalived_umask(tmp_path: Path) -> None:
    """keepalived runs scripts with umask 0177; found by the lab: directories lost their x bit."""
    import os
    import stat

    from kahooks.notify.spool import Spool

    old = os.umask(0o177)
    try:
        spool = Spool(str(tmp_path / "spool")).ensure()
        spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
        spool.fan_out(spool.incoming()[0], lambda event: ["mail"])
    finally:
        os.umask(old)
    for directory in (spool.root, spool.incoming_dir, spool.queue_dir / "mail", spool.dead_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750, directory


class VrrpOnlyRecorder(Recorder):
    kind = "vrrp-recorder"
    vrrp_only = True  # as the DNS and rebind channels: they change things for a VRRP instance


def test_a_real_server_has_its_own_history_and_vrrp_only_channels_let_lvs_events_pass(tmp_path: Path) -> None:
    path = tmp_path / "kahooks.toml"
    path.write_text(f"""
spool_dir = "{tmp_path / 'spool'}"
[delivery]
flap_window = 0
[channels.rec]
type = "recorder"
[channels.dns]
type = "vrrp-recorder"
[[rules]]
channels = ["rec", "dns"]
""")
    config = load(str(path), {**channel_types(), "recorder": Recorder, "vrrp-recorder": VrrpOnlyRecorder})
    spool = Spool(config.spool_dir).ensure()
    worker = Worker(config, spool, clock=Clock())
    for line in ("RS [10.0.0.1]:tcp:80 [192.0.2.50]:tcp:80 DOWN", "RS [10.0.0.1]:tcp:80 [192.0.2.51]:tcp:80 DOWN",
                 "RS [10.0.0.1]:tcp:80 [192.0.2.50]:tcp:80 UP"):
        spool.record(Event.from_fifo_line(line))
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    for _ in range(4):
        worker.fan_out_pending()
        worker.channel_pass("rec")
        worker.channel_pass("dns")
    sent = [(m.event.virtual_server, m.event.state, m.context["previous_state"]) for m in config.channels["rec"].sent
            if m.event.is_lvs]
    assert sent == [("[192.0.2.50]:tcp:80", "DOWN", None), ("[192.0.2.51]:tcp:80", "DOWN", None),
                    ("[192.0.2.50]:tcp:80", "UP", "DOWN")]  # the same real server in two pools: two histories
    assert [m.event.name for m in config.channels["dns"].sent] == ["VI_1"]
    assert spool.idle()


def test_a_recording_stays_until_its_deliveries_are_settled(tmp_path: Path) -> None:
    """The worker wakes a channel once its delivery is queued (Spool.queue), before the fsyncs of
    Spool.settle: a worker that dies in between leaves the recording, and the next one queues it
    again, under the same name, and delivers it once."""
    worker, spool, rec, clock = make(tmp_path)
    record(spool, clock, "VI_1", "MASTER")
    path = spool.incoming()[0]
    assert spool.queue(path, worker.config.channels_for) is not None  # ... and the worker dies here
    assert spool.incoming() == [path] and spool.names("queue", "rec") == [path.name]
    run_pass(worker)
    assert [message.event.state for message in rec.sent] == ["MASTER"]
    assert spool.idle() and spool.instance_states() == {"VI_1": "MASTER"}


def test_an_event_is_heard_before_its_channel_is_woken(tmp_path: Path) -> None:
    """The daemon's /metrics and status hear an event (on_event) before a channel can deliver it: a receiver
    that asks the daemon once a transition arrives (the package test's /metrics) found the state missing."""
    worker, spool, _, clock = make(tmp_path)
    heard: list[str] = []
    worker.on_event = lambda event: heard.append(event.state)

    class Waker:
        def set(self) -> None:
            assert heard == ["MASTER"], "a channel was woken before the event was heard"

    worker._channel_wakers["rec"] = Waker()  # type: ignore[assignment]
    record(spool, clock, "VI_1", "MASTER")
    assert worker.fan_out_pending() == 1 and heard == ["MASTER"]
