"""CheckRunner and the pidfd watcher in-process, against real processes and real listeners."""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kahooks.checks.base import Check
from kahooks.daemon.runner import CheckRunner, ProcessWatcher
from kahooks.daemon.settings import CheckSpec, build_check
from kahooks.deadline import Deadline
from kahooks.lab.netns import wait_for
from kahooks.output.result import healthy


class Recorder:
    """Collects what a runner publishes: (monotonic time, judged ok, changed)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, bool | None, bool]] = []
        self.lock = threading.Lock()

    def __call__(self, runner: CheckRunner, changed: bool) -> None:
        with self.lock:
            self.seen.append((time.monotonic(), runner.verdict.ok, changed))

    def changes(self) -> list[bool | None]:
        return [ok for _, ok, changed in self.seen if changed]


def spec_for(words: str, interval: float = 1.0, rise: int = 1, fall: int = 1) -> CheckSpec:
    def problem(key: str, message: str) -> None:
        raise AssertionError(f"{key}: {message}")

    kind, argv, check = build_check(words, problem)
    return CheckSpec("test", kind, argv, check, interval, rise, fall, "/nonexistent/track", 0, 1)


@pytest.fixture
def watcher():
    instance = ProcessWatcher()
    yield instance
    instance.stop()


def start(spec: CheckSpec, recorder: Recorder, watcher: ProcessWatcher | None = None) -> CheckRunner:
    runner = CheckRunner(spec, recorder, watcher)
    runner.start()
    return runner


def unique_sleep() -> tuple[subprocess.Popen, str]:
    seconds = f"{random.randint(100000, 999999)}.5"
    return subprocess.Popen(["sleep", seconds]), seconds


def test_a_process_death_is_judged_at_once_not_at_the_next_interval(watcher: ProcessWatcher) -> None:
    process, seconds = unique_sleep()
    recorder = Recorder()
    # An interval of 60 s: only the pidfd can explain a verdict within the test's time.
    runner = start(spec_for(f"ka-check-process --cmdline 'sleep {seconds}'", interval=60), recorder, watcher)
    try:
        wait_for(lambda: recorder.changes() == [True], 5, "the first healthy verdict")
        assert runner.watched
        killed = time.monotonic()
        process.kill()
        wait_for(lambda: recorder.changes() == [True, False], 5, "the failed verdict")
        judged = [stamp for stamp, ok, changed in recorder.seen if changed and ok is False][0]
        assert judged - killed < 1.0  # within milliseconds in practice; bench/daemon.py measures it
        assert "not running" in runner.verdict.why
    finally:
        runner.stop()
        process.kill()
        process.wait()


def test_a_failed_process_check_looks_again_every_interval_and_rises(watcher: ProcessWatcher) -> None:
    seconds = f"{random.randint(100000, 999999)}.25"
    recorder = Recorder()
    runner = start(spec_for(f"ka-check-process --cmdline 'sleep {seconds}'", interval=0.1, rise=2), recorder,
                   watcher)
    process = None
    try:
        wait_for(lambda: recorder.changes() == [False], 5, "the first failed verdict")
        process = subprocess.Popen(["sleep", seconds])
        wait_for(lambda: recorder.changes() == [False, True], 5, "healthy again after two successes")
        assert runner.verdict.runs >= 3
    finally:
        runner.stop()
        if process is not None:
            process.kill()
            process.wait()


def test_a_port_check_follows_a_real_listener_with_fall(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    recorder = Recorder()
    runner = start(spec_for(f"ka-check-port 127.0.0.1:{port}", interval=0.05, fall=3), recorder)
    try:
        wait_for(lambda: recorder.changes() == [True], 5, "healthy")
        listener.close()
        closed = time.monotonic()
        wait_for(lambda: recorder.changes() == [True, False], 5, "failed after three refusals")
        failures = [stamp for stamp, ok, _ in recorder.seen if stamp > closed]
        assert len(failures) >= 3  # fall 3: the third refusal in a row changed it, not the first
    finally:
        runner.stop()
        listener.close()


def test_runs_keep_to_the_interval() -> None:
    recorder = Recorder()
    runner = start(spec_for("ka-check-exec -- true", interval=0.1), recorder)
    wait_for(lambda: len(recorder.seen) >= 10, 5, "ten runs")
    runner.stop()
    runner.join(2)
    stamps = [stamp for stamp, _, _ in recorder.seen]
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    # Runs start on the interval's schedule: never ahead of it (a late run is followed by a shorter gap,
    # not by a burst), and on it as a rule (the median; one run delayed by a loaded machine is allowed).
    assert all(stamp - stamps[0] >= index * 0.1 - 0.02 for index, stamp in enumerate(stamps)), gaps
    assert 0.08 < statistics.median(gaps) < 0.15, gaps


class Hangs(Check):
    """A probe that ignores its deadline, as a DNS lookup in getaddrinfo can."""

    kind = "hangs"

    def __init__(self) -> None:
        super().__init__({"timeout": 0.1})
        self.release = threading.Event()
        self.last_pids: list[int] = []

    def probe(self, deadline: Deadline) -> object:
        self.release.wait(deadline.require("resolving db.example") + 10)
        return healthy("finally answered")


def test_a_probe_that_hangs_is_judged_failed_by_the_supervisor() -> None:
    check = Hangs()
    spec = CheckSpec("hangs", "hangs", [], check, 60, 1, 1, "/nonexistent/track", 0, 1)
    recorder = Recorder()
    runner = start(spec, recorder)
    try:
        time.sleep(0.2)  # deliberate: a moment within the probe's hard limit and grace, where nothing may happen
        runner.check_stuck()
        assert recorder.changes() == []  # within its hard limit and grace: not yet
        wait_for(lambda: (runner.check_stuck(), recorder.changes())[1] == [False], 3, "the supervisor's verdict")
        assert "resolving db.example: probe did not finish within" in runner.verdict.why  # where it hung
        check.release.set()
        wait_for(lambda: runner.verdict.ok is True, 5, "the late answer to count")
    finally:
        check.release.set()
        runner.stop()


def test_a_check_bug_is_a_failed_result_and_the_thread_goes_on() -> None:
    class Broken(Hangs):
        def probe(self, deadline: object) -> object:
            raise ZeroDivisionError("oops")

    spec = CheckSpec("broken", "broken", [], Broken(), 0.05, 1, 1, "/nonexistent/track", 0, 1)
    recorder = Recorder()
    runner = start(spec, recorder)
    try:
        wait_for(lambda: runner.verdict.runs >= 3, 5, "three runs")
        assert runner.verdict.ok is False and "internal error: ZeroDivisionError: oops" in runner.verdict.why
    finally:
        runner.stop()


def test_the_watcher_releases_its_pidfds(watcher: ProcessWatcher) -> None:
    process, seconds = unique_sleep()
    before = len(os.listdir("/proc/self/fd"))
    recorder = Recorder()
    runner = start(spec_for(f"ka-check-process --cmdline 'sleep {seconds}'", interval=60), recorder, watcher)
    try:
        wait_for(lambda: runner.watched, 5, "the process to be watched")
        assert len(os.listdir("/proc/self/fd")) == before + 1
        runner.stop()
        wait_for(lambda: len(os.listdir("/proc/self/fd")) == before, 5, "the pidfd to be closed")
    finally:
        process.kill()
        process.wait()


def test_watching_unchanged_pids_again_never_wakes_the_watcher_and_a_death_pokes_only_its_check(
        watcher: ProcessWatcher) -> None:
    """What a safety probe (a healthy process check looking again) and a death cost the watcher does not
    grow with the watched processes: no wake for pids already watched, one wake for one death."""
    processes = [subprocess.Popen(["sleep", "60"]) for _ in range(40)]
    try:
        runners = [CheckRunner(spec_for("ka-check-process sleep"), Recorder(), watcher) for _ in processes]
        for runner, process in zip(runners, processes):
            assert watcher.watch(runner, [process.pid])
        nudges = watcher.nudges
        for _ in range(3):  # every check looks again and finds the same pid
            for runner, process in zip(runners, processes):
                assert watcher.watch(runner, [process.pid])
        assert watcher.nudges == nudges
        assert len(watcher.by_fd) == len(processes)
        wakes = watcher.wakes
        processes[7].kill()
        processes[7].wait()
        wait_for(lambda: runners[7].wake.is_set(), 5, "the dead process's check to be poked")
        wait_for(lambda: watcher.wakes > wakes, 5, "the watcher's wake")
        assert [index for index, runner in enumerate(runners) if runner.wake.is_set()] == [7]
        assert watcher.wakes == wakes + 1
        assert len(watcher.by_fd) == len(processes) - 1
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_healthy_watched_checks_spread_their_safety_probes_over_a_quarter_of_the_interval() -> None:
    """500 checks started together must not all look again in the same second every SAFETY_INTERVAL."""
    from kahooks.daemon.runner import SAFETY_INTERVAL, SAFETY_SPREAD

    intervals = []
    for index in range(500):
        spec = spec_for("ka-check-process sleep")
        spec.name = f"proc{index}"
        runner = CheckRunner(spec, Recorder())
        runner.watched, runner.verdict.ok = True, True
        intervals.append(runner.interval())
        assert runner.interval() == intervals[-1]  # its own, and the same every time
    assert all(SAFETY_INTERVAL * (1 - SAFETY_SPREAD) <= value <= SAFETY_INTERVAL for value in intervals)
    per_second: dict[int, int] = {}
    for value in intervals:
        per_second[int(value)] = per_second.get(int(value), 0) + 1
    assert max(per_second.values()) <= 500 // 4  # about 500 / 7.5 a second, never all 500 at once
