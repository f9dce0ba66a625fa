"""Run the installed `kahooks serve` as systemd would: a process, a config file, signals."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from tests.support.programs import program, quiet_env


def heartbeat_time(path: Path) -> float:
    """When a daemon last wrote its heartbeat file (0.0: none yet)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def heartbeat_gaps(path: Path, seconds: float) -> list[float]:
    """Watch a heartbeat file for `seconds`; the gaps between the moments it was rewritten."""
    beats = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        beats.add(heartbeat_time(path))
        time.sleep(0.05)
    stamps = sorted(beats)
    return [later - earlier for earlier, later in zip(stamps, stamps[1:])]


class Served:
    """`kahooks serve -c CONFIG` with its stderr in a file; stopped (SIGTERM, then SIGKILL) by stop()."""

    def __init__(self, directory: Path, config_text: str) -> None:
        self.directory = directory
        self.state = directory / "state"
        self.config = directory / "kahooks.toml"
        self.config.write_text(config_text)
        self.log = directory / "serve.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True, env: dict[str, str] | None = None) -> Served:
        env = quiet_env(**(env or {}))
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
        return heartbeat_time(self.state / "heartbeat")

    def track(self, name: str) -> str | None:
        try:
            return (self.state / "track" / name).read_text().strip()
        except FileNotFoundError:
            return None

    def wait_track(self, name: str, value: str, timeout: float = 5) -> float:
        """Wait until the track file holds `value`; return the moment it was seen."""
        return wait_for(lambda: self.track(name) == value and time.monotonic(), timeout,
                        f"track file {name} to hold {value} (holds {self.track(name)!r})", poll=0.002)

    def heartbeat_gaps(self, seconds: float) -> list[float]:
        return heartbeat_gaps(self.state / "heartbeat", seconds)

    def runs(self, check: str) -> int:
        """How many probes the check has run, as status.json says."""
        import json

        try:
            return json.loads((self.state / "status.json").read_text())["checks"][check]["runs"]
        except (FileNotFoundError, KeyError, ValueError):
            return 0

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


HEAD = """\
host = "node1"
spool_dir = "{dir}/spool"

[delivery]
flap_window = 0
backoff_initial = 0.2

[serve]
state_dir = "{dir}/state"
heartbeat_interval = 0.2
"""


def head(tmp_path: Path, serve: str = "") -> str:
    """The config's head; `serve` adds lines to its [serve] table. The state folder is on a tmpfs."""
    state_on_tmpfs(tmp_path / "state")
    return HEAD.format(dir=tmp_path).replace("[serve]\n", "[serve]\n" + serve)


def state_on_tmpfs(state: Path) -> None:
    """`state` made a link (root's, in root's own folder: a trusted link) to a fresh folder under /run,
    as the daemon's state is in production (/run/kahooks). On the disk, a rename waits behind other
    processes' fsyncs (ext4's journal): the heartbeat of a test daemon stalled for up to a second while
    the machine wrote, and tests that bound its gaps failed for the disk's sake, not the daemon's."""
    run = Path("/run")
    if state.exists() or state.is_symlink() or os.geteuid() != 0 or not os.access(run, os.W_OK):
        return
    import tempfile

    parent = tmpfs_parent()
    parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    state.symlink_to(tempfile.mkdtemp(prefix="state-", dir=parent))


def tmpfs_parent() -> Path:
    """This test process's folder of state folders (each parallel worker has its own; removed at its end)."""
    return Path("/run/kahooks-tests") / str(os.getpid())


def svc_check(service: Service, words: str = "") -> str:
    """The check most tests use: the service by its pidfile, at an interval of 60 s, so nothing
    but the pidfd and the pidfile watch can explain a change within seconds."""
    return f'\n[checks.svc]\nrun = "ka-check-process {words}--pidfile {service.pidfile}"\ninterval = 60\n'


class Service:
    """A stand-in daemon (sleep) that writes its pidfile the way daemons do: temp file, rename."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile = pidfile
        self.process: subprocess.Popen | None = None

    def start(self) -> int:
        self.process = subprocess.Popen(["sleep", f"{random.randint(100000, 999999)}.75"])
        temporary = self.pidfile.with_suffix(".new")
        temporary.write_text(f"{self.process.pid}\n")
        os.rename(temporary, self.pidfile)
        return self.process.pid

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def service(tmp_path: Path):
    (tmp_path / "run").mkdir()
    instance = Service(tmp_path / "run" / "svc.pid")
    yield instance
    instance.kill()


def fifo_config(tmp_path: Path, command: str = 'echo "$KAHOOKS_INSTANCE $KAHOOKS_STATE" >> {out}') -> str:
    return head(tmp_path, f'notify_fifo = "{tmp_path}/state/notify.fifo"\n') + f"""
[channels.log]
type = "exec"
command = ["/bin/sh", "-c", '{command.format(out=tmp_path / "delivered")}']

[[rules]]
channels = ["log"]
"""


class KeepalivedFifo:
    """keepalived's side of notify_fifo: opened read-write and non-blocking (no reader needed),
    held open while it runs, one write per line."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def write(self, lines: list[str]) -> None:
        for line in lines:
            os.write(self.fd, (line + "\n").encode())

    def close(self) -> None:
        os.close(self.fd)


def write_fifo(path: Path, lines: list[str]) -> None:
    writer = KeepalivedFifo(path)
    writer.write(lines)
    writer.close()
