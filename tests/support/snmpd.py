"""A real snmpd on loopback with kahooks snmp as its pass_persist handler (tests/admin/test_snmp.py,
tests/lab/test_snmp_wire.py)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from kahooks.lab.netns import wait_for
from tests.support.programs import program, quiet_env

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "snmp"
BASE = ".1.3.6.1.4.1.8072.9999.9999.28"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]



class Snmpd:
    """snmpd -f with its own config: community `kahooks` (read-write, so a set reaches kahooks snmp)."""

    def __init__(self, directory: Path, kahooks_config: Path, stanza: str | None = None) -> None:
        self.port = free_udp_port()
        self.address = f"127.0.0.1:{self.port}"
        conf = directory / "snmpd.conf"
        conf.write_text(stanza or f"rwcommunity kahooks 127.0.0.1\n"
                                  f"pass_persist {BASE} {program('kahooks')} snmp -c {kahooks_config}\n")
        self.log = directory / "snmpd.log"
        env = quiet_env(SNMP_PERSISTENT_DIR=str(directory / "snmp-persist"), MIBS="")
        self.process = subprocess.Popen(["snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-p", str(directory / "snmpd.pid"),
                                         f"udp:{self.address}"], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env)
        wait_for(lambda: self.query("snmpget", BASE + ".1.1").returncode == 0 or self.process.poll() is not None, 20,
                 "snmpd to answer")
        assert self.process.poll() is None, self.log.read_text(errors="replace")

    def query(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([tool, "-v2c", "-c", "kahooks", "-On", "-t", "3", "-r", "1", self.address, *args],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "MIBS": ""})

    def walk(self) -> dict[str, str]:
        """OID -> value as snmpwalk -Oqv shows it (strings without their quotes)."""
        shown = self.query("snmpwalk", "-Oq", "-Oe", BASE)
        assert shown.returncode == 0, shown.stderr
        values = {}
        for line in shown.stdout.splitlines():
            oid, _, value = line.partition(" ")
            values[oid] = value.strip('"')
        return values

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
