"""A real rsyslogd for tests, benchmarks and the lab: a private unix socket, UDP and TCP inputs, all to a file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from kahooks.lab.netns import free_port


class Rsyslog:
    def __init__(self, directory: Path, udp_port: int | None = None, tcp_port: int | None = None,
                 host: str = "127.0.0.1", namespace: str | None = None, rules: str = "") -> None:
        """`rules`: rsyslog statements placed before the catch-all file (a snippet under test)."""
        self.directory = directory
        self.host = host
        self.namespace = namespace
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
input(type="imudp" address="{host}" port="{self.udp_port}")
module(load="imtcp")
input(type="imtcp" address="{host}" port="{self.tcp_port}")
template(name="all" type="string"
         string="%timegenerated:::date-rfc3339% %hostname% %syslogfacility-text%.%syslogseverity-text% %programname% %procid% %msgid% %structured-data% %msg%\\n")
{rules}
*.* action(type="omfile" file="{self.output}" template="all" flushOnTXEnd="on" asyncWriting="off")
''')
        binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        prefix = ["ip", "netns", "exec", namespace] if namespace else []
        self.process = subprocess.Popen([*prefix, binary, "-n", "-f", str(config), "-i", str(directory / "rsyslog.pid")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not (self.socket.exists() and self._tcp_open()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rsyslogd did not start: {self.process.stderr.read() if self.process.stderr else b''!r}")
            time.sleep(0.02)

    def _tcp_open(self) -> bool:
        import socket

        try:
            if self.namespace:  # not reachable from here: the socket file is the sign of life
                return True
            socket.create_connection((self.host, self.tcp_port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stamped_lines(self) -> list[tuple[float, str, str]]:
        """(when rsyslogd received it as epoch seconds, the sender's hostname, the rest of the line)."""
        import datetime

        found = []
        for raw in self.output.read_text().splitlines() if self.output.exists() else []:
            stamp, _, rest = raw.partition(" ")
            host, _, line = rest.partition(" ")
            try:
                when = datetime.datetime.fromisoformat(stamp).timestamp()
            except ValueError:
                when = 0.0
            found.append((when, host, line))
        return found

    def lines(self) -> list[str]:
        return [line for _, _, line in self.stamped_lines()]

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
