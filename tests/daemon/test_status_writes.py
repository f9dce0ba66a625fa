"""status.json after check changes: coalesced by one writer, so a burst costs a write or two, not one each."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from kahooks.daemon.reporting import StatusWrites
from kahooks.lab.netns import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kahooks.daemon.service import Daemon


def test_a_burst_of_changes_while_a_write_runs_makes_one_more_write_not_one_each() -> None:
    started, release = threading.Event(), threading.Event()
    threads_seen: set[str] = set()

    def write() -> None:
        threads_seen.add(threading.current_thread().name)
        started.set()
        release.wait(10)

    writes = StatusWrites(write, gap=0)
    try:
        writes.request()  # a first change: its write starts and is held
        assert started.wait(10)
        # 500 checks change meanwhile, from five threads (a node losing every service at once)
        askers = [threading.Thread(target=lambda: [writes.request() for _ in range(100)]) for _ in range(5)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(10)
        release.set()
        wait_for(lambda: writes.writes == 2, 10, "the held write and the one for the burst")
        # Nothing is asked any more: no third write can follow (the count is final, not timed).
        assert not writes.asked.is_set()
        assert writes.writes == 2
        assert threads_seen == {"status-writer"}  # never in the thread of the check that changed
    finally:
        release.set()
        writes.stop(5)
    assert not writes.thread.is_alive()


def test_a_write_that_raises_does_not_end_the_writes() -> None:
    calls: list[int] = []

    def write() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("a bug in a snapshot")

    writes = StatusWrites(write, gap=0)
    try:
        writes.request()
        wait_for(lambda: writes.writes == 1, 10, "the first write")
        writes.request()
        wait_for(lambda: writes.writes == 2, 10, "a write after the failed one")
    finally:
        writes.stop(5)


@contextlib.contextmanager
def idle_daemon(tmp_path: Path, checks: str = "") -> Iterator[Daemon]:
    """A Daemon with its configuration loaded and nothing running: no status writer (the test plays its
    part), no check thread (a test runs probes by hand)."""
    from kahooks.daemon.service import Daemon, load_config

    config = tmp_path / "kahooks.toml"
    config.write_text(f'spool_dir = "{tmp_path}/spool"\n\n[serve]\nstate_dir = "{tmp_path}/state"\ndeliver = false\n\n'
                      + checks)
    daemon = Daemon(str(config))
    daemon.status_writes.stop(2)  # a probe's change would ask it for a write
    try:
        daemon.config = load_config(str(config))
        yield daemon
    finally:
        daemon.watcher.stop()


def test_a_write_built_before_the_stop_never_lands_over_the_last_one(tmp_path) -> None:  # noqa: ANN001
    """The shutdown's last status.json says the daemon stopped. The writer's thread, which had built a
    status before the stop and renamed it after the last one, put a running daemon's status back: and
    `kahooks status` then read a live daemon that was gone."""
    import json
    import time

    from kahooks.daemon import reporting

    with idle_daemon(tmp_path) as daemon:
        built, release = threading.Event(), threading.Event()
        build = daemon.status_text.text

        def build_then_wait(daemon: Daemon) -> str:
            text = build(daemon)
            if threading.current_thread().name == "late-writer":
                built.set()
                release.wait(10)  # descheduled between building and renaming
            return text

        daemon.status_text.text = build_then_wait  # type: ignore[method-assign]
        late = threading.Thread(target=reporting.write_status, args=(daemon,), name="late-writer")
        late.start()
        assert built.wait(10)
        daemon.stopped_at = time.time()
        reporting.write_status(daemon, last=True)
        release.set()
        late.join(10)
        assert json.loads(Path(daemon.serve.status_file).read_text())["stopped"] == daemon.stopped_at


def test_the_last_write_waits_for_a_hung_one_only_so_long(tmp_path, monkeypatch, caplog) -> None:  # noqa: ANN001
    from kahooks.daemon import reporting

    monkeypatch.setattr(reporting, "STATUS_RENAME_WAIT", 0.2)
    with idle_daemon(tmp_path) as daemon:
        with daemon.status_renames:  # a write stuck in its rename, on a hung disk
            waited = threading.Thread(target=reporting.write_status, args=(daemon,), kwargs={"last": True})
            waited.start()
            waited.join(5)
            assert not waited.is_alive(), "the last write waited for the hung one without a deadline"
        assert "another write of it did not end within 0.2 s" in caplog.text


def test_a_checks_command_line_in_the_status_is_redacted_as_words_and_as_a_line() -> None:
    from kahooks.daemon.settings import CheckSpec

    spec = CheckSpec("api", "exec", ["ka-check-exec", "--", "curl", "-H", "X-Api-Key:", "zzz-secret"], None,  # type: ignore[arg-type]
                     1.0, 1, 1, "/run/kahooks/track/api", 0, 1)
    shown = spec.shown
    assert "zzz-secret" not in shown["run"] and shown["run"].startswith("ka-check-exec -- curl -H"), shown


def test_status_json_reserializes_only_the_checks_that_changed(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A write every heartbeat at 500 checks held the interpreter ~15 ms (the scale bench's detection p99):
    a check's part is serialized again only when something in it changed, and the text still says
    exactly what snapshot() says (what /metrics renders)."""
    import json

    from kahooks.daemon import reporting
    from kahooks.daemon.runner import CheckRunner

    checks = "".join(f'[checks.c{index}]\nrun = "ka-check-port 127.0.0.1:1"\ninterval = 5\n\n' for index in range(5))
    with idle_daemon(tmp_path, checks) as daemon:  # its own writer would build parts too
        for spec in daemon.config.sections["checks"].values():
            daemon.runners[spec.name] = runner = CheckRunner(spec, daemon.publish)  # not started: run by hand
            runner.run_once()
        built: list[str] = []
        real = reporting.check_entry
        monkeypatch.setattr(reporting, "check_entry",
                            lambda daemon, runner, maintenance: built.append(runner.name) or real(daemon, runner, maintenance))
        status = reporting.StatusText()
        text = status.text(daemon)
        assert sorted(built) == [f"c{index}" for index in range(5)]
        assert json.loads(text) == json.loads(json.dumps(reporting.snapshot(daemon)))
        built.clear()
        status.text(daemon)
        assert built == []  # nothing changed: every part is the text kept
        daemon.runners["c3"].run_once()
        text = status.text(daemon)
        assert built == ["c3"]
        assert json.loads(text)["checks"]["c3"]["runs"] == 2
        # A result caught half-way through record() (runs counted, the rest not yet) is never kept: the
        # part waits for the lock the result is recorded with, and shows the finished record.
        runner, texts = daemon.runners["c0"], []
        with runner.lock:
            runner.verdict.runs += 1
            writer = threading.Thread(target=lambda: texts.append(status.text(daemon)))
            writer.start()
            writer.join(0.3)
            assert writer.is_alive(), "a half-recorded verdict was serialized"
            runner.verdict.last_summary = "the finished record"
        writer.join(5)
        assert json.loads(texts[0])["checks"]["c0"]["last"]["summary"] == "the finished record"
        assert json.loads(status.text(daemon))["checks"]["c0"]["last"]["summary"] == "the finished record"
        del daemon.runners["c1"]
        shown = json.loads(status.text(daemon))
        assert "c1" not in shown["checks"] and "check-c1" not in shown["threads"] and "check-c2" in shown["threads"]
        assert shown == json.loads(json.dumps(reporting.snapshot(daemon)))
