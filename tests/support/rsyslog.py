"""A real rsyslogd for the tests: a private unix socket, UDP and TCP inputs, everything to a file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support.netservers import free_port


class Rsyslog:
    def __init__(self, directory: Path, udp_port: int | None = None, tcp_port: int | None = None) -> None:
        self.directory = directory
        self.socket = directory / "log.sock"
        self.output = directory / "messages.log"
        self.udp_port = udp_port or free_port()
        self.tcp_port = tcp_port or free_port()
        config = directory / "rsyslog.conf"
        config.write_text(f'''
global(workDirectory="{directory}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{self.socket}" CreatePath="on")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")
template(name="all" type="string"
         string="%syslogfacility-text%.%syslogseverity-text% %programname% %procid% %msgid% %structured-data% %msg%\\n")
*.* action(type="omfile" file="{self.output}" template="all" flushOnTXEnd="on" asyncWriting="off")
''')
        binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        self.process = subprocess.Popen([binary, "-n", "-f", str(config), "-i", str(directory / "rsyslog.pid")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not (self.socket.exists() and self._tcp_open()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rsyslogd did not start: {self.process.stderr.read()!r}")
            time.sleep(0.02)

    def _tcp_open(self) -> bool:
        import socket

        try:
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def lines(self) -> list[str]:
        return self.output.read_text().splitlines() if self.output.exists() else []

    def wait_for(self, fragment: str, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if fragment in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"{fragment!r} never reached rsyslog; got {self.lines()}")

    def wait_for_count(self, fragment: str, count: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        found: list[str] = []
        while time.monotonic() < deadline:
            found = [line for line in self.lines() if fragment in line]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(found)} of {count} {fragment!r} lines reached rsyslog")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
