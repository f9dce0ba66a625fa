"""Network namespaces on a bridge, each node optionally with its own pid and mount namespace.

A Network owns a hub namespace holding the bridge; every node is a namespace
joined to it by a veth pair created inside the hub, so the host's own network
namespace never gains an interface. Node names carry the network's tag, and
close() deletes only the namespaces this object created (and kills only the
processes inside them).
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

TAG_PATTERN = re.compile(r"^khl[a-z0-9]{1,8}$")


class LabError(Exception):
    """Something the lab needs is missing or failed; the message says what."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (servers that cannot take port 0 need one)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for(test, timeout: float, what: str, poll: float = 0.01):
    """Call `test` until it returns something true, and return that; LabError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = test()
        if found:
            return found
        time.sleep(poll)
    raise LabError(f"timed out after {timeout:g} s waiting for {what}")


def existing_namespaces() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()}


# A node's own TMPDIR, on its private /run: keepalived writes its JSON dump to $TMPDIR/keepalived.json
# (set_tmp_dir in main.c, 2.2.7 and 2.3.3), and `kahooks status`/`doctor --live` read it there. With one /tmp
# for every node, a lab test's `doctor --live` dump was read by another test's `kahooks status` (a CI run).
NODE_TMPDIR = "/run/tmp"


def chroot(root: str | Path) -> list[str]:
    """argv prefix that runs a command in another Debian root from a node: without the node's TMPDIR, a
    folder of the node's /run that the root does not have (apt's mktemp failed there)."""
    return ["env", "-u", "TMPDIR", "chroot", str(root)]


class Node:
    """One namespace: its own network stack and, with `own_pids`, its own pid and mount namespaces
    (so a process check there sees only that node's processes, and /run is private)."""

    def __init__(self, namespace: str, address: str | None, own_pids: bool) -> None:
        self.namespace = namespace
        self.address = address
        self.init: subprocess.Popen | None = None
        self.init_pid: int | None = None
        if own_pids:
            self._start_init()

    def _start_init(self) -> None:
        # A private /run keeps two nodes' keepalived and haproxy pid files and sockets apart.
        self.init = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, "unshare", "--pid", "--fork", "--mount-proc",
             "--kill-child", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/lock && mkdir -m 1777 {NODE_TMPDIR} "
             "&& exec sleep 1000000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            child = _child_running(self.init.pid, "sleep")
            if child:
                self.init_pid = child
                return
            if self.init.poll() is not None:
                raise LabError(f"cannot start the pid namespace of {self.namespace}: "
                               f"{self.init.stderr.read().decode().strip() if self.init.stderr else ''}")
            time.sleep(0.01)
        raise LabError(f"the pid namespace of {self.namespace} did not start")

    def prefix(self) -> list[str]:
        """argv prefix that runs a command inside this node."""
        if self.init_pid:
            return ["nsenter", "-t", str(self.init_pid), "-n", "-p", "-m", "--", "env", f"TMPDIR={NODE_TMPDIR}"]
        return ["ip", "netns", "exec", self.namespace]

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.prefix(), *argv], capture_output=True, text=True, timeout=timeout,
                                env=env)
        if check and result.returncode != 0:
            raise LabError(f"{self.namespace}: {' '.join(argv)} exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip()[-500:]}")
        return result

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen([*self.prefix(), *argv], **kwargs)  # type: ignore[call-overload]  # kwargs as Popen takes them

    def fetch(self, url: str, proxy: str | None = None, timeout: float = 2.0) -> str:
        """GET `url` from inside this node (through an HTTP proxy if given): the body, stripped; "" on failure."""
        import sys

        script = ("import sys, urllib.request\n"
                  "handlers = [urllib.request.ProxyHandler({'http': sys.argv[2]})] if sys.argv[2] else []\n"
                  "try:\n    print(urllib.request.build_opener(*handlers).open(sys.argv[1], timeout=float(sys.argv[3]))"
                  ".read().decode().strip())\nexcept Exception:\n    print('')")
        return self.run([sys.executable, "-c", script, url, proxy or "", str(timeout)]).stdout.strip()

    def add_address(self, address: str, device: str = "eth0") -> None:
        self.run(["ip", "addr", "add", address if "/" in address else f"{address}/32", "dev", device])

    def remove_address(self, address: str, device: str = "eth0") -> None:
        self.run(["ip", "addr", "del", address if "/" in address else f"{address}/32", "dev", device],
                 check=False)

    def addresses(self) -> set[str]:
        output = self.run(["ip", "-o", "addr", "show"]).stdout
        return {match.split("/")[0] for match in re.findall(r"inet6? (\S+)", output)}

    def stop(self) -> None:
        """Kill every process in this node (its pid namespace, or anything in its network namespace)."""
        if self.init is not None and self.init.poll() is None:
            os.killpg(self.init.pid, signal.SIGKILL)  # --kill-child takes the namespace's init, then all of it
            self.init.wait()
        pids = ip("netns", "pids", self.namespace, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


class Network:
    """A bridge in a hub namespace and the nodes attached to it. Use as a context manager."""

    def __init__(self, tag: str, subnet: str = "192.0.2.0/24") -> None:
        if not TAG_PATTERN.match(tag):
            raise LabError(f"lab tag {tag!r} must look like khl<letters/digits>, at most 11 characters")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        self.tag = tag
        self.subnet = ipaddress.ip_network(subnet)
        self.created: list[str] = []
        self.nodes: dict[str, Node] = {}
        taken = {name for name in existing_namespaces() if name.startswith(f"{tag}-")}
        if taken:
            raise LabError(f"namespaces {', '.join(sorted(taken))} already exist: another lab with tag {tag} "
                           f"is running (or crashed: `kahooks lab down --tag {tag}`)")
        self.hub = f"{tag}-hub"
        self._add_namespace(self.hub)
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "addr", "add", f"{self.host(1)}/{self.subnet.prefixlen}", "dev", "br0")
        ip("-n", self.hub, "link", "set", "br0", "up")

    def host(self, index: int) -> str:
        return str(self.subnet.network_address + index)

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self.created.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def add_node(self, name: str, index: int, own_pids: bool = True) -> Node:
        namespace = f"{self.tag}-{name}"
        self._add_namespace(namespace)
        port = f"p-{name}"[:15]
        ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        ip("-n", self.hub, "link", "set", port, "master", "br0", "up")
        address = self.host(index)
        ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        node = Node(namespace, address, own_pids)
        self.nodes[name] = node
        return node

    def add_link(self, name: str, device: str = "eth1", bridge: str = "br1") -> None:
        """A second interface for a node, on a second bridge (a backend network): something to track."""
        if ip("-n", self.hub, "link", "show", bridge, check=False).returncode != 0:
            ip("-n", self.hub, "link", "add", bridge, "type", "bridge")
            ip("-n", self.hub, "link", "set", bridge, "up")
        port = f"q-{name}"[:15]
        ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", device,
           "netns", self.nodes[name].namespace)
        ip("-n", self.hub, "link", "set", port, "master", bridge, "up")
        ip("-n", self.nodes[name].namespace, "link", "set", device, "up")

    def hub_node(self) -> Node:
        """The hub itself as a node (no pid namespace): where shared servers like BIND run."""
        return Node(self.hub, self.host(1), own_pids=False)

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        Node(self.hub, None, False).stop()
        for name in reversed(self.created):
            ip("netns", "del", name, check=False)
        self.created.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def teardown_tag(tag: str) -> list[str]:
    """Remove what a crashed lab with this tag left: only namespaces named `<tag>-...`."""
    if not TAG_PATTERN.match(tag):
        raise LabError(f"lab tag {tag!r} must look like khl<letters/digits>")
    removed = []
    for name in sorted(existing_namespaces()):
        if name.startswith(f"{tag}-"):
            Node(name, None, False).stop()
            ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


def _child_running(parent: int, comm: str) -> int | None:
    """A descendant of `parent` whose command name is `comm` (the pid namespace's init, seen from outside)."""
    try:
        children = open(f"/proc/{parent}/task/{parent}/children").read().split()
    except OSError:
        return None
    for child in children:
        try:
            if open(f"/proc/{child}/comm").read().strip() == comm:
                return int(child)
        except OSError:
            continue
        deeper = _child_running(int(child), comm)
        if deeper:
            return deeper
    return None
