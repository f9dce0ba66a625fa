"""A real BIND (named) in the foreground on a loopback port, with a TSIG key and one dynamic zone."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from kahooks.lab.netns import free_port

ZONE = "example.test"


class Bind:
    def __init__(self, directory: Path, records: str = "", key_name: str = "kahooks-test",
                 host: str = "127.0.0.1", port: int | None = None, namespace: str | None = None) -> None:
        if not shutil.which("named"):
            raise RuntimeError("named is not installed: the test command installs it (apt package bind9)")
        self.directory = directory
        self.host = host
        self.namespace = namespace
        self.port = port or free_port()
        self.key_name = key_name
        self.key_file = directory / "update.key"
        self.key_file.write_text(subprocess.run(["tsig-keygen", "-a", "hmac-sha256", key_name], check=True,
                                                capture_output=True, text=True).stdout)
        self.key_file.chmod(0o600)
        self.secret = self.key_file.read_text().split('secret "', 1)[1].split('"', 1)[0]
        (directory / f"{ZONE}.zone").write_text(
            f"$TTL 60\n@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 60\n"
            f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n{records}\n")
        self.conf = directory / "named.conf"
        self.conf.write_text(f"""
include "{self.key_file}";
controls {{ }};
options {{
    directory "{directory}";
    pid-file none;
    session-keyfile none;
    listen-on port {self.port} {{ {host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ any; }};
}};
zone "{ZONE}" {{
    type primary;
    file "{directory}/{ZONE}.zone";
    update-policy {{ grant {key_name} zonesub A AAAA TXT; }};
}};
""")
        subprocess.run(["named-checkconf", str(self.conf)], check=True)
        self.process: subprocess.Popen | None = None
        self.start()

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace] if self.namespace else []

    def start(self) -> None:
        self.log = open(self.directory / "named.log", "ab")
        self.process = subprocess.Popen(self._prefix() + ["named", "-g", "-c", str(self.conf), "-p", str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"named exited: {(self.directory / 'named.log').read_text()[-2000:]}")
            try:
                if self.query(ZONE, "SOA"):
                    return
            except (OSError, dns.exception.DNSException):
                pass
            time.sleep(0.05)
        raise RuntimeError("named did not answer within 15 s")

    def query(self, name: str, rdtype: str) -> set[str]:
        """The record set's values, straight from named (TCP, no cache); from inside its namespace if it has one."""
        fqdn = name if name.endswith(".") else f"{name}.{ZONE}." if not name.endswith(ZONE) else f"{name}."
        if self.namespace:
            result = subprocess.run([*self._prefix(), "dig", "+tcp", "+short", "+time=1", "+tries=1", "-p",
                                     str(self.port), f"@{self.host}", fqdn, rdtype], capture_output=True, text=True)
            return set(result.stdout.split("\n")) - {""} if result.returncode == 0 else set()
        response = dns.query.tcp(dns.message.make_query(fqdn, rdtype), self.host, port=self.port, timeout=2)
        wanted = dns.rdatatype.from_text(rdtype)
        return {rdata.to_text() for rrset in response.answer if rrset.rdtype == wanted for rdata in rrset}

    def update(self, *commands: str) -> None:
        """Apply `update add/delete ...` lines with nsupdate and the zone's key, as an administrator would."""
        script = f"server {self.host} {self.port}\nzone {ZONE}\n" + "".join(f"{c}\n" for c in commands) + "send\n"
        subprocess.run([*self._prefix(), "nsupdate", "-k", str(self.key_file)], input=script, text=True,
                       check=True, capture_output=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log.close()
        self.process = None

    def channel(self, name: str = "rr", extra: str = "", key: str | None = None) -> str:
        """A [channels.dns] table for this server."""
        key_line = f'key_file = "{self.key_file}"' if key is None else key
        return (f'[channels.dns]\ntype = "dns"\nserver = "{self.host}:{self.port}"\nzone = "{ZONE}"\n'
                f'name = "{name}"\nttl = 30\ntimeout = 2\n{key_line}\n{extra}\n')

