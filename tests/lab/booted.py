"""A Debian root booted with systemd in systemd-nspawn, for the package tests: the packaged units run
as they would on a machine, under a real PID-1 systemd.

Its network is its own (nothing but loopback) or a lab node's namespace; commands run inside with
nsenter; leaving the `with` block powers it off. Also the set-up the boot test and `./run bench
restart` share: a stand-in service, and the packaged daemon arrangement with both units enabled.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kahooks.lab.netns import LabError, wait_for
from tests.lab.packaging import System, clean_env

# kahooks serve's configuration beside the packaged haproxy-pair-daemon.conf: its haproxy check on a
# stand-in's pidfile, every transition appended to a file in the spool (the unit may write there).
DAEMON_CONFIG = """\
spool_dir = "/var/spool/kahooks"
[serve]
notify_fifo = "/run/kahooks/notify.fifo"
[checks.haproxy]
run = "ka-check-process --pidfile /run/haproxy.pid"
interval = 1
[channels.out]
type = "exec"
command = ["/bin/sh", "-c", "echo $KAHOOKS_STATE >> /var/spool/kahooks/boot-delivered"]
[[rules]]
channels = ["out"]
"""
VIP = "192.0.2.100"  # the packaged haproxy-pair-daemon.conf's


def write_standin(system: System) -> None:
    """/usr/local/bin/standin PIDFILE: a service that writes its pidfile, then sleeps (start it with systemd-run)."""
    standin = system.path("/usr/local/bin/standin")
    standin.write_text('#!/bin/sh\necho $$ > "$1"\nexec sleep infinity\n')
    standin.chmod(0o755)


def prepare_daemon_boot(system: System) -> None:
    """The packaged haproxy-pair-daemon.conf as it ships, DAEMON_CONFIG, and both units enabled."""
    example = system.path("/usr/share/kahooks/contrib/keepalived/haproxy-pair-daemon.conf").read_text()
    system.path("/etc/keepalived/keepalived.conf").write_text(example)
    system.path("/etc/kahooks/kahooks.toml").write_text(DAEMON_CONFIG)
    enabled = system.run(["systemctl", "enable", "kahooks", "keepalived"])
    assert enabled.returncode == 0, enabled


class Booted:
    def __init__(self, root: Path, network_namespace: str | None = None) -> None:
        self.root = root
        # In a lab node's network, keepalived needs to add addresses and send VRRP (raw sockets).
        self.network = [f"--network-namespace-path=/run/netns/{network_namespace}",
                        "--capability=CAP_NET_ADMIN,CAP_NET_RAW"] if network_namespace else ["--private-network"]
        self.process: subprocess.Popen | None = None
        self.init = 0

    def __enter__(self) -> Booted:
        import psutil

        self.process = subprocess.Popen(["systemd-nspawn", "-q", "-D", str(self.root), "-b", "--console=pipe",
                                         "--register=no", "--keep-unit", *self.network],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            process = self.process

            def systemd() -> int | None:
                """nspawn's child that is systemd; its other children come and go as it sets the root up."""
                for child in psutil.Process(process.pid).children():
                    try:
                        if child.name() == "systemd":
                            return child.pid
                    except psutil.NoSuchProcess:  # ended between the listing and the look (seen in CI)
                        continue
                return None

            self.init = wait_for(lambda: systemd() or process.poll() is not None, 20, "systemd to start in the root")
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            # Until systemd's own socket is up, systemctl cannot even ask: ask again.
            try:
                wait_for(lambda: self.run("systemctl", "is-system-running", "--wait").stdout.strip()
                         in ("running", "degraded"), 60, "the root to finish booting", poll=0.2)
            except LabError:
                raise AssertionError(self.run("systemctl", "--failed", "--no-pager")) from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()  # systemd-nspawn powers the root off
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "-t", str(self.init), "-a", "-r", "-w", *argv], capture_output=True,
                              text=True, env=clean_env(), timeout=60)

    def path(self, inside: str) -> Path:
        """The host's path for a file inside the running root (its /run is its own tmpfs)."""
        return Path(f"/proc/{self.init}/root") / inside.lstrip("/")

    def text(self, inside: str) -> str | None:
        try:
            return self.path(inside).read_text()
        except FileNotFoundError:
            return None

    def journal(self, unit: str) -> str:
        """This boot's journal of `unit`, the messages only."""
        return self.run("journalctl", "-b", "-u", unit, "-o", "cat", "--no-pager").stdout
