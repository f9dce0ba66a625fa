"""Run the installed `kahooks serve` as systemd would: a process, a config file, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from kahooks.lab.netns import wait_for
from tests.support.programs import program


class Served:
    """`kahooks serve -c CONFIG` with its stderr in a file; stopped (SIGTERM, then SIGKILL) by stop()."""

    def __init__(self, directory: Path, config_text: str) -> None:
        self.directory = directory
        self.state = directory / "state"
        self.config = directory / "kahooks.toml"
        self.config.write_text(config_text)
        self.log = directory / "serve.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Served:
        env = {**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"}
        self.process = subprocess.Popen([program("kahooks"), "serve", "-v", "-c", str(self.config)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=open(self.log, "ab"), env=env)
        if wait:
            started = time.time()
            wait_for(lambda: self.heartbeat() > started or self.process.poll() is not None, 15,
                     "kahooks serve to write its heartbeat")
            assert self.process.poll() is None, self.log_text()
        return self

    def heartbeat(self) -> float:
        try:
            return (self.state / "heartbeat").stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def track(self, name: str) -> str | None:
        try:
            return (self.state / "track" / name).read_text().strip()
        except FileNotFoundError:
            return None

    def wait_track(self, name: str, value: str, timeout: float = 5) -> float:
        """Wait until the track file holds `value`; return the moment it was seen."""
        return wait_for(lambda: self.track(name) == value and time.monotonic(), timeout,
                        f"track file {name} to hold {value} (holds {self.track(name)!r})", poll=0.002)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
