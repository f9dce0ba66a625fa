"""The rebind channel: make a service listen on a VIP that just arrived, and prove it does.

When one of the instance's VIPs is on an interface here (reality, not the
event: notify calls race), and something does not already LISTEN on VIP:port
for every configured port, the command runs (`squid -k reconfigure`,
`systemctl reload-or-restart haproxy`, ...) with a timeout; then the socket
table is polled until every VIP:port (or a wildcard covering it) is listening.
A reload's exit status proves nothing (haproxy and nginx report success when
the new bind failed), so only the listening socket counts. A failure is
retried and raised as an ALERT for the rules to send to people.

The command's processes are stopped only when it overruns its timeout: a
service it started without detaching must stay up.

When the VIP has left, nothing runs unless `release_command` is set: squid
reconfigured with `http_port VIP:3128` and no VIP would die on a FATAL bind.
"""

from __future__ import annotations

import logging
import socket
import time

from kahooks.notifiers.base import Channel, ChannelConfigError, Contract, Message, TemporaryFailure
from kahooks.notifiers.exec import run_command, split_command
from kahooks.system.reality import vips_present

log = logging.getLogger("kahooks.rebind")
POLL = 0.05


class RebindChannel(Channel):
    kind = "rebind"
    vrrp_only = True
    SETTINGS = frozenset({"command", "release_command", "ports", "timeout", "verify_timeout", "addresses"})
    # A service that did not rebind is retried and told to people (alert); every exit code is retried;
    # a command that timed out is retried without an alert (kahooks.notifiers.exec.run_command).
    CONTRACT = Contract("command", {"command": "{command}", "ports": ["{closed_port}"], "addresses": ["127.0.0.1"],
                                    "timeout": "{timeout}", "verify_timeout": 0.5},
                        failures={"unreachable": "permanent", "hang": "temporary", "later": "temporary+alert",
                                  "never": "temporary+alert"})

    def configure(self, settings: dict) -> None:
        self.command = split_command(settings.get("command"), "command")
        self.release_command = (split_command(settings["release_command"], "release_command")
                                if "release_command" in settings else None)
        ports = settings.get("ports")
        if not isinstance(ports, list) or not ports or \
                not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports):
            raise ChannelConfigError("ports", "is required: the ports the service must listen on at the VIP, "
                                              "as in [3128]")
        self.ports: list[int] = ports
        self.timeout = self.number(settings, "timeout", 30.0)
        self.verify_timeout = self.number(settings, "verify_timeout", 10.0)
        self.own_addresses = self.addresses(settings)

    def send(self, message: Message) -> None:
        vips, here = self.addresses_here(self.own_addresses, message)
        name = message.context["name"]
        if not here:
            if self.release_command:
                code, output = run_command(self.release_command, self.timeout, None, sweep=False)
                if code != 0:
                    raise TemporaryFailure(f"{self.release_command[0]} exited {code}: {output}")
                log.info("%s: %s left; ran %s", self.name, ", ".join(vips), " ".join(self.release_command))
            else:
                log.info("%s: %s has no VIP here; nothing to rebind", self.name, name)
            return
        missing = self.not_listening(here)
        if not missing:
            log.info("%s: already listening on %s", self.name, _join(self.wanted(here)))
            return
        started = time.monotonic()
        code, output = run_command(self.command, self.timeout, None, sweep=False)
        if code != 0:
            raise TemporaryFailure(f"`{' '.join(self.command)}` exited {code}" + (f": {output}" if output else ""),
                                   alert=True)
        deadline = started + self.verify_timeout
        while True:
            here = vips_present(vips)  # the VIP may have left again meanwhile: then there is nothing to prove
            missing = self.not_listening(here)
            if not missing:
                break
            if time.monotonic() >= deadline:
                raise TemporaryFailure(f"nothing listens on {_join(missing)} {self.verify_timeout:g} s after "
                                       f"`{' '.join(self.command)}`", alert=True)
            time.sleep(POLL)
        log.info("%s: listening on %s %.2f s after `%s`", self.name, _join(self.wanted(here)) or "(VIP left)",
                 time.monotonic() - started, " ".join(self.command))

    def wanted(self, vips: list[str]) -> list[tuple[str, int]]:
        return [(vip, port) for vip in vips for port in self.ports]

    def not_listening(self, vips: list[str]) -> list[tuple[str, int]]:
        from kahooks.system.procfs import find_listener

        return [(vip, port) for vip, port in self.wanted(vips)
                if find_listener(socket.AF_INET6 if ":" in vip else socket.AF_INET, vip, port) is None]


def _join(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"[{vip}]:{port}" if ":" in vip else f"{vip}:{port}" for vip, port in pairs)


CHANNEL = RebindChannel
