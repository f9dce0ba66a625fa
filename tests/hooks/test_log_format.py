"""--log-format json: the daemon's and the worker's logs as one JSON object a line, for log shippers."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from kahooks.lab.netns import wait_for
from tests.support.notify import write_config
from tests.support.programs import program, quiet_env
from tests.support.serve import head


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]


def test_the_daemon_logs_json_lines(tmp_path: Path) -> None:
    config = tmp_path / "kahooks.toml"
    config.write_text(head(tmp_path) + '\n[checks.web]\nrun = "ka-check-exec -- false"\ninterval = 1\n')
    log = tmp_path / "serve.log"
    with open(log, "wb") as stderr:
        served = subprocess.Popen([program("kahooks"), "serve", "--log-format", "json", "-c", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=stderr, env=quiet_env())
    try:
        wait_for(lambda: "check web FAILED" in log.read_text(), 10, "the failed check to be logged")
    finally:
        served.send_signal(signal.SIGTERM)
        served.wait(10)
    records = json_lines(log.read_text())
    failed = next(record for record in records if "check web FAILED" in record["message"])
    assert failed["level"] == "warning" and failed["ident"] == "kahooks-serve" and failed["time"].endswith("+00:00")
    assert {"logger", "pid"} <= set(failed)


def test_the_worker_logs_json_lines(tmp_path: Path) -> None:
    from kahooks.events.event import Event
    from kahooks.notify.spool import Spool

    config = write_config(tmp_path, '[channels.log]\ntype = "exec"\ncommand = ["true"]')
    Spool(tmp_path / "spool").ensure().record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    worker = subprocess.run([program("ka-notify"), "-c", str(config), "worker", "--foreground", "--idle-exit", "0.5",
                             "--log-format", "json"], capture_output=True, text=True, env=quiet_env(), timeout=30)
    assert worker.returncode == 0, worker.stderr
    records = json_lines(worker.stderr)
    assert all(record["ident"] == "ka-notify" for record in records)
    assert any(record["message"].startswith("log: delivered VI_1 MASTER") for record in records), records
