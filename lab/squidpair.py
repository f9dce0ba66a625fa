"""Seed 004 in the lab: two squid proxies, two VIPs (each node MASTER of one), round-robin DNS over both.

squid listens on the specific VIPs (`http_port VIP1:3128`, `http_port VIP2:3128`,
no ip_nonlocal_bind) and on the node's own address, so a node listens only on the
VIPs it had when squid last (re)started. The track script is `ka-check-exec -- squid -k check` (run as root: it
signals squid), and ka-notify (root) runs the rebind channel, which reconfigures
squid when a VIP arrives and proves it listens, and the dns channel, which keeps
proxy.example.test's A records on the live VIPs. A backend web server runs in the hub.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kahooks.lab.configs import GLOBAL_DEFS, NODE_TOML_HEAD, vrrp_instance, vrrp_script
from kahooks.lab.netns import LabError, Node, wait_for
from kahooks.lab.pair import DNS_PORT, Pair, PairOptions

VIPS = {"VI_1": "192.0.2.101", "VI_2": "192.0.2.102"}
MASTER_OF = {"lb1": "VI_1", "lb2": "VI_2"}
BACKEND_PORT = 8000


class SquidPair(Pair):
    BALANCERS = tuple(MASTER_OF)

    def __init__(self, work: Path, bin_dir: Path, tag: str = "khlsquid") -> None:
        super().__init__(work, bin_dir, PairOptions(tag=tag, notify=False))
        if not shutil.which("squid") and not os.path.exists("/usr/sbin/squid"):
            raise LabError("squid is not installed (./run installs it: apt-get install squid)")
        self.squid: dict[str, subprocess.Popen] = {}

    def _start_hub(self) -> None:
        from kahooks.lab.bind import Bind

        (self.work / "bind").mkdir(exist_ok=True)
        records = "".join(f"proxy IN A {vip}\n" for vip in VIPS.values())
        self.bind = Bind(self.work / "bind", records=records, host=self.net.host(1), port=DNS_PORT,
                         namespace=self.hub.namespace)
        (self.work / "www").mkdir(exist_ok=True)
        (self.work / "www" / "index.html").write_text("backend\n")
        self.others.append(self.hub.popen([sys.executable, "-m", "http.server", "-b", self.net.host(1), "-d",
                                           str(self.work / "www"), str(BACKEND_PORT)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _start_balancer(self, name: str, node: Node) -> None:
        directory = self.work / name
        directory.mkdir(exist_ok=True)
        os.chmod(directory, 0o777)  # squid drops to the proxy user for its logs
        # The node's own address keeps squid alive without a VIP: with only VIP ports, squid started
        # (or reconfigured) on a node holding no VIP dies with "FATAL: Unable to open HTTP Socket".
        (directory / "squid.conf").write_text(squid_conf(directory, [str(node.address), *VIPS.values()]))
        self.start_squid(name)
        (directory / "spool").mkdir(exist_ok=True)
        (directory / "kahooks.toml").write_text(KAHOOKS_TOML.format(
            host=name, spool=directory / "spool", squid_conf=directory / "squid.conf", hub=self.net.host(1),
            dns_port=DNS_PORT, key=self.bind.key_file, **{k.lower(): v for k, v in VIPS.items()}))
        # As root: `squid -k check` signals squid, and the rebind channel reconfigures it.
        config = GLOBAL_DEFS.format(name=name) + vrrp_script(
            "chk_squid_service", f"{self.bin}/ka-check-exec --timeout 2 -- /usr/sbin/squid -k check -f "
                                 f"{directory / 'squid.conf'}", 3, "root")
        for instance, vip in VIPS.items():
            priority = 150 if MASTER_OF[name] == instance else 100
            config += vrrp_instance(instance, 50 + int(instance[-1]), priority, vip,
                                    "    track_script {\n        chk_squid_service\n    }\n",
                                    f"{self.bin}/ka-notify -c {directory / 'kahooks.toml'}", notify_user="root")
        self._start_keepalived(name, node, config)

    def start_squid(self, name: str) -> None:
        directory = self.work / name
        self.squid[name] = self.nodes[name].popen(["squid", "-N", "-f", str(directory / "squid.conf")],
                                                  stdout=open(directory / "squid.out", "ab"),
                                                  stderr=subprocess.STDOUT)
        self.others.append(self.squid[name])

    def kill_squid(self, name: str) -> None:
        self.nodes[name].run(["pkill", "-9", "-x", "squid"], check=False)
        self.squid[name].wait(5)

    def fetch_through(self, vip: str, timeout: float = 2.0) -> str:
        return self.client.fetch(f"http://{self.net.host(1)}:{BACKEND_PORT}/index.html", proxy=f"http://{vip}:3128",
                                 timeout=timeout)

    def wait_fetch(self, vip: str, timeout: float = 20) -> float:
        return wait_for(lambda: self.fetch_through(vip, 1.0) == "backend" and time.time(), timeout,
                        f"a request through {vip}:3128")


def squid_conf(directory: Path, addresses: list[str]) -> str:
    """A forward proxy on ADDRESS:3128 for each address, state and logs in `directory`, no cache."""
    ports = "".join(f"http_port {address}:3128\n" for address in addresses)
    return ports + SQUID_SETTINGS.format(dir=directory)


SQUID_SETTINGS = """\
http_access allow all
cache deny all
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log none
cache_store_log none
coredump_dir {dir}
cache_effective_user proxy
pinger_enable off
shutdown_lifetime 0 seconds
"""

KAHOOKS_TOML = NODE_TOML_HEAD + """
[instances.VI_1]
vips = ["{vi_1}"]

[instances.VI_2]
vips = ["{vi_2}"]

[channels.squid]
type = "rebind"
command = ["/usr/sbin/squid", "-k", "reconfigure", "-f", "{squid_conf}"]
ports = [3128]
verify_timeout = 15

[channels.dns]
type = "dns"
server = "{hub}:{dns_port}"
zone = "example.test"
name = "proxy"
ttl = 30
key_file = "{key}"

[[rules]]
channels = ["squid", "dns"]
"""
