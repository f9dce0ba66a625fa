"""A keepalived pair in the lab: two load balancers with real keepalived and haproxy, a client, the peers.

    with Pair(work_dir, bin_dir, PairOptions(check="kahooks")) as pair:
        pair.wait_master("lb1")
        pair.kill_haproxy("lb1")
        pair.wait_answer("lb2")

Each balancer is a network + pid namespace with a private /run: a backend on
127.0.0.1:8080 that answers its node's name, haproxy on VIP:80 in front of it
(ip_nonlocal_bind, as the seeds configure), and keepalived (VRRP only) whose
track script is kahooks' process check, `killall -0 haproxy`, or an HTTP check.
With check="daemon", `kahooks serve` runs on each balancer instead: keepalived
tracks its track file (and its heartbeat through ka-check-heartbeat) and writes
transitions to the notify FIFO the daemon reads. Notifications go through
ka-notify (or the daemon) to the hub's peers: rsyslogd, SMTP, a Slack webhook
and BIND. Every keepalived line is stamped with the time it was read.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
import typing
from pathlib import Path

from kahooks.lab.configs import (
    CHECKS,
    DAEMON_TOML,
    GLOBAL_DEFS,
    HAPROXY_CFG,
    KAHOOKS_TOML,
    NODE_TOML_HEAD,
    PROBER,
    TRACK_FILE,
    vrrp_instance,
    vrrp_script,
)
from kahooks.lab.netns import LabError, Network, Node, wait_for

VIP = "192.0.2.100"
DNS_PORT = 5353
SYSLOG_PORT = 5514
PRIORITIES = {"lb1": 150, "lb2": 100}


@dataclasses.dataclass
class PairOptions:
    check: str = "kahooks"
    interval: int = 1
    notify: bool = True
    track_interface: bool = False
    tag: str = "khlpair"


class Stamped:
    """A process whose output lines are read as they come and stamped with time.time()."""

    def __init__(self, process: subprocess.Popen, log_path: Path) -> None:
        self.process = process
        self.lines: list[tuple[float, str]] = []
        self.log_path = log_path
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.log_path, "a") as log:
            for raw in self.process.stdout:  # type: ignore[union-attr]  # started with stdout=PIPE
                line = raw.decode("utf-8", "replace").rstrip()
                stamp = time.time()
                self.lines.append((stamp, line))
                log.write(f"{stamp:.6f} {line}\n")
                log.flush()

    def find(self, fragment: str, after: float = 0.0) -> float | None:
        for stamp, line in list(self.lines):
            if stamp >= after and fragment in line:
                return stamp
        return None


class Pair:
    def __init__(self, work: Path, bin_dir: Path, options: PairOptions | None = None) -> None:
        self.work = work
        self.bin = bin_dir
        self.options = options or PairOptions()
        if self.options.check not in CHECKS:
            raise LabError(f"unknown check {self.options.check!r} (known: {', '.join(CHECKS)})")
        for program in ("keepalived", "haproxy", "rsyslogd", "named"):
            if not shutil.which(program) and not os.path.exists(f"/usr/sbin/{program}"):
                raise LabError(f"{program} is not installed (./run installs it: apt-get install keepalived "
                               f"haproxy rsyslog bind9)")
        self.net: typing.Any = None  # the Network, from start() to stop()
        self.nodes: dict[str, Node] = {}
        self.keepalived: dict[str, Stamped] = {}
        self.haproxy: dict[str, subprocess.Popen] = {}
        self.daemons: dict[str, subprocess.Popen] = {}
        self.others: list[subprocess.Popen] = []
        self.rsyslog: typing.Any = None  # Rsyslog and Bind once the hub is up
        self.bind: typing.Any = None

    # Bringing it up ------------------------------------------------------------------------

    BALANCERS = tuple(PRIORITIES)

    def start(self) -> Pair:
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work, 0o755)  # keepalived_script reads configs and writes the spool below
        self.net = Network(self.options.tag)
        self.hub = self.net.hub_node()
        self._start_hub()
        for index, name in enumerate(self.BALANCERS, 11):
            self.nodes[name] = self.net.add_node(name, index)
            self._start_balancer(name, self.nodes[name])
        self.client = self.net.add_node("client", 50, own_pids=False)
        return self

    def _start_hub(self) -> None:
        if self.options.notify:
            self._start_peers(self.hub)

    def _start_peers(self, hub: Node) -> None:
        from kahooks.lab.bind import Bind
        from kahooks.lab.rsyslog import Rsyslog

        peers_dir = self.work / "peers"
        for sub in ("bind", "rsyslog"):
            (peers_dir / sub).mkdir(parents=True, exist_ok=True)
        self.rsyslog = Rsyslog(peers_dir / "rsyslog", udp_port=SYSLOG_PORT, host=self.net.host(1),
                               namespace=hub.namespace)
        self.bind = Bind(peers_dir / "bind", records=f"www IN A {VIP}\n", host=self.net.host(1), port=DNS_PORT,
                         namespace=hub.namespace)
        # The DNS key must be readable by keepalived_script, who runs ka-notify (and nobody else).
        key = self.work / "dns.key"
        shutil.copy(self.bind.key_file, key)
        script_user = pwd.getpwnam("keepalived_script")
        os.chown(key, script_user.pw_uid, script_user.pw_gid)
        os.chmod(key, 0o600)
        self.peers_dir = peers_dir
        self.others.append(hub.popen([sys.executable, "-P", "-m", "kahooks.lab.peers", str(peers_dir), self.net.host(1),
                                      VIP, str(DNS_PORT)], stdout=open(peers_dir / "peers.log", "ab"),
                                     stderr=subprocess.STDOUT))
        wait_for(lambda: (peers_dir / "peers.ready").exists(), 20, "the lab's SMTP/Slack peers")

    def _start_balancer(self, name: str, node: Node) -> None:
        node.run(["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"])
        if self.options.track_interface:
            self.net.add_link(name)  # eth1, the "inside" link keepalived tracks (its own eth0 it always does)
        directory = self.work / name
        (directory / "www").mkdir(parents=True, exist_ok=True)
        (directory / "www" / "index.html").write_text(f"{name}\n")
        self.others.append(node.popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d",
                                       str(directory / "www"), "8080"], stdout=subprocess.DEVNULL,
                                      stderr=open(directory / "backend.log", "ab")))
        (directory / "haproxy.cfg").write_text(HAPROXY_CFG.format(vip=VIP))
        self.start_haproxy(name)
        spool = directory / "spool"
        if self.options.notify:
            spool.mkdir(exist_ok=True)
            script_user = pwd.getpwnam("keepalived_script")
            os.chown(spool, script_user.pw_uid, script_user.pw_gid)
            toml = KAHOOKS_TOML.format(
                host=name, spool=spool, vip=VIP, hub=self.net.host(1), syslog_port=SYSLOG_PORT,
                dns_port=DNS_PORT, key=self.work / "dns.key", smtp_port=2525, slack_port=8081,
                slack_path="/services/T0LAB/B0LAB/lab")
        else:
            toml = NODE_TOML_HEAD.format(host=name, spool=spool)
        if self.options.check == "daemon":
            fifo = f'notify_fifo = "{self.state_dir(name)}/notify.fifo"\n' if self.options.notify else ""
            toml += DAEMON_TOML.format(state=self.state_dir(name), fifo=fifo, bin=self.bin,
                                       interval=self.options.interval)
        (directory / "kahooks.toml").write_text(toml)
        if self.options.check == "daemon":
            self.start_daemon(name)
        self._start_keepalived(name, node, self.keepalived_conf(name))

    def state_dir(self, name: str) -> Path:
        """Where the node's daemon writes its track files, heartbeat and status."""
        return self.work / name / "state"

    def start_daemon(self, name: str) -> None:
        """`kahooks serve` on a node, as its systemd unit would run it; returns once it has a heartbeat."""
        heartbeat = self.state_dir(name) / "heartbeat"
        started = time.time()
        self.daemons[name] = self.nodes[name].popen(
            [str(self.bin / "kahooks"), "serve", "-c", str(self.work / name / "kahooks.toml")],
            stdout=open(self.work / name / "serve.log", "ab"), stderr=subprocess.STDOUT,
            env={**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent/log"})  # its log is serve.log
        wait_for(lambda: heartbeat.exists() and heartbeat.stat().st_mtime >= started, 20,
                 f"kahooks serve on {name} to write its heartbeat")

    def kill_daemon(self, name: str) -> float:
        """kill -9 the node's `kahooks serve` (a crash systemd has not restarted yet)."""
        stamp = time.time()
        self.nodes[name].run(["pkill", "-9", "-f", "kahooks serve"])
        self.daemons[name].wait(5)
        return stamp

    def _start_keepalived(self, name: str, node: Node, config: str) -> None:
        """Write the node's keepalived.conf, have keepalived check it, and run keepalived (VRRP only)."""
        path = self.work / name / "keepalived.conf"
        path.write_text(config)
        check = node.run(["keepalived", "-t", "-f", str(path)], check=False)
        if check.returncode != 0:
            raise LabError(f"keepalived -t rejects {path}: {(check.stderr or check.stdout).strip()}")
        process = node.popen(["keepalived", "-n", "-l", "-D", "-P", "-f", str(path), "-p", "/run/keepalived.pid",
                              "-r", "/run/vrrp.pid"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.keepalived[name] = Stamped(process, self.work / name / "keepalived.log")

    def keepalived_conf(self, name: str) -> str:
        options = self.options
        line, user = CHECKS[options.check]
        script = vrrp_script("chk_service", line.format(bin=self.bin, state=self.state_dir(name)),
                             options.interval, user,
                             f"    timeout {max(1, options.interval)}\n    fall 1\n    rise 1\n")
        tracks = "    track_script {\n        chk_service\n    }\n"
        if options.track_interface:
            tracks += "    track_interface {\n        eth1\n    }\n"
        notify = f'{self.bin}/ka-notify -c {self.work / name / "kahooks.toml"}' if options.notify else None
        global_defs = GLOBAL_DEFS.format(name=name)
        if options.check == "daemon":
            # The daemon's track file, written the moment haproxy dies; notifications through its FIFO.
            script += TRACK_FILE.format(file=self.state_dir(name) / "track" / "haproxy")
            tracks += "    track_file {\n        kahooks_haproxy\n    }\n"
            if options.notify:
                global_defs = global_defs.replace("}\n", f"    notify_fifo {self.state_dir(name)}/notify.fifo\n}}\n")
                notify = None
        return global_defs + script + vrrp_instance("VI_1", 51, PRIORITIES[name], VIP, tracks, notify)

    # Acting on it --------------------------------------------------------------------------

    def start_haproxy(self, name: str) -> None:
        directory = self.work / name
        self.haproxy[name] = self.nodes[name].popen(["haproxy", "-db", "-f", str(directory / "haproxy.cfg")],
                                                    stdout=open(directory / "haproxy.log", "ab"),
                                                    stderr=subprocess.STDOUT)

    def kill_haproxy(self, name: str) -> float:
        """kill -9 haproxy on a node; returns the moment it was sent."""
        pid = self.nodes[name].run(["pidof", "haproxy"]).stdout.split()[0]  # the pid inside the node
        stamp = time.time()
        self.nodes[name].run(["kill", "-9", pid])
        self.haproxy[name].wait(5)
        return stamp

    def kill_backend(self, name: str) -> float:
        """Kill the node's web backend (the `httpd` of an Apache-style pair); haproxy stays up."""
        stamp = time.time()
        self.nodes[name].run(["pkill", "-9", "-f", "http.server"])
        return stamp

    def answer(self, timeout: float = 0.3) -> str:
        """Who answers http://VIP/ from the client node ("" if nobody)."""
        return self.client.fetch(f"http://{VIP}/", timeout=timeout)

    def start_prober(self, interval: float = 0.005) -> Stamped:
        """A client process asking http://VIP/ every `interval` s, printing who answers when it changes."""
        script = PROBER.format(url=f"http://{VIP}/", interval=interval)
        process = self.client.popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        self.others.append(process)
        return Stamped(process, self.work / "prober.log")

    def wait_answer(self, name: str, timeout: float = 20) -> float:
        return wait_for(lambda: self.answer() == name and time.time(), timeout, f"{name} to answer on {VIP}")

    def state_at(self, name: str, state: str, after: float = 0.0, instance: str = "VI_1") -> float | None:
        return self.keepalived[name].find(f"({instance}) Entering {state} STATE", after)

    def wait_state(self, name: str, state: str, after: float = 0.0, timeout: float = 20,
                   instance: str = "VI_1") -> float:
        return wait_for(lambda: self.state_at(name, state, after, instance), timeout,
                         f"{name} to enter {state} for {instance}")

    def transitions(self, after: float = 0.0) -> list[tuple[float, str, str]]:
        found = []
        for name, stamped in self.keepalived.items():
            for stamp, line in list(stamped.lines):
                if stamp >= after and "(VI_1) Entering " in line:
                    found.append((stamp, name, line.split("Entering ")[1].split()[0]))
        return sorted(found)

    def seen(self) -> list[dict]:
        from kahooks.lab.peers import read_journal

        return read_journal(self.peers_dir / "seen.jsonl") if self.options.notify else []

    # Tearing down --------------------------------------------------------------------------

    def stop(self) -> None:
        for daemon in self.daemons.values():
            if daemon.poll() is None:
                daemon.terminate()  # first, so it lingers for keepalived's STOP lines
        for stamped in self.keepalived.values():
            if stamped.process.poll() is None:
                stamped.process.send_signal(signal.SIGTERM)
        for stamped in self.keepalived.values():
            try:
                stamped.process.wait(5)
            except subprocess.TimeoutExpired:
                stamped.process.kill()
        for process in [*self.haproxy.values(), *self.others]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.haproxy.values(), *self.daemons.values(), *self.others]:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
        for server in (self.rsyslog, self.bind):
            if server is not None:
                server.stop()
        if self.net is not None:
            self.net.close()  # kills whatever is left in the namespaces (ka-notify workers too)
            self.net = None

    def __enter__(self) -> Pair:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
