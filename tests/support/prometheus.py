"""Real Prometheus and Alertmanager servers (Debian's packages) on loopback, for the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from kahooks.lab.netns import free_port, wait_for

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PROMTOOL = "/usr/bin/promtool"


def get_json(url: str) -> object:
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


class Server:
    """A server process in its own temporary directory; stop() ends it and removes the directory."""

    def __init__(self, name: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=f"kahooks-{name}-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(self.directory / "log", "ab"))
        wait_for(lambda: self._ready(), 30, f"{argv[0]} to be ready")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.process.args[0]} exited: {(self.directory / 'log').read_text()[-2000:]}")
        try:
            return urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).status == 200
        except OSError:
            return False

    def stop(self, remove: bool = True) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)


class Prometheus(Server):
    def __init__(self, config: str, rules: dict[str, str]) -> None:
        super().__init__("prometheus")
        for name, text in rules.items():
            (self.directory / name).write_text(text)
        (self.directory / "prometheus.yml").write_text(config)
        self._start([PROMETHEUS, f"--config.file={self.directory / 'prometheus.yml'}",
                     f"--storage.tsdb.path={self.directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                     "--log.level=warn"])

    def alerts(self) -> list[dict]:
        return get_json(f"{self.url}/api/v1/alerts")["data"]["alerts"]  # type: ignore[index]

    def query(self, expression: str) -> list[dict]:
        from urllib.parse import quote

        return get_json(f"{self.url}/api/v1/query?query={quote(expression)}")["data"]["result"]  # type: ignore[index]


class Alertmanager(Server):
    CONFIG = "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n"

    def __init__(self) -> None:
        super().__init__("alertmanager")
        (self.directory / "alertmanager.yml").write_text(self.CONFIG)
        self.start()

    def start(self) -> None:
        # --cluster.listen-address= : no gossip port (each test server stands alone)
        self._start([ALERTMANAGER, f"--config.file={self.directory / 'alertmanager.yml'}",
                     f"--storage.path={self.directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                     "--cluster.listen-address=", "--log.level=warn"])

    def alerts(self) -> list[dict]:
        return get_json(f"{self.url}/api/v2/alerts")  # type: ignore[return-value]
