"""The dns channel: keep a round-robin name's A/AAAA records equal to the VIPs that are live.

On every transition of an instance it reconciles each of the instance's VIPs
with reality (is the address on an interface here now?), not with the event,
so concurrent and out-of-order notify calls converge:

- VIP here: add its record (RFC 2136, TSIG) and claim it in a holder TXT record
  (`<vip>._kahooks.<name>` = this host), in one atomic update.
- VIP not here: remove its record, but only while this host is the holder (or
  nobody is) and only against the record set just read (compare-and-swap by
  prerequisites). If the other node claimed the VIP meanwhile, the update fails
  its prerequisite and nothing is removed: the VIP moved, it did not die.
- The last record of the set is never removed (a name with no address is worse
  than one with an address that is failing over).

REFUSED, NOTAUTH and TSIG errors are permanent; timeouts, refused connections
and SERVFAIL are retried. dnspython is imported here only.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import TYPE_CHECKING

from kahooks.errors import os_words
from kahooks.notifiers.base import Channel, ChannelConfigError, Contract, Message, PermanentFailure, TemporaryFailure, Undriven
from kahooks.system.netaddr import parse_hostport

if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("kahooks.dns")
ALGORITHMS = ("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1", "hmac-md5")
CONFLICT_RETRIES = 5
PERMANENT_RCODES = {"REFUSED", "NOTAUTH", "NOTZONE", "FORMERR", "NOTIMP", "BADSIG", "BADKEY", "BADTIME"}


class Conflict(Exception):
    """A prerequisite failed: the record set changed between our read and our update."""


class DnsChannel(Channel):
    kind = "dns"
    vrrp_only = True
    SETTINGS = frozenset({"server", "zone", "name", "ttl", "timeout", "key_file", "key_name", "key_secret",
                          "key_secret_file", "key_algorithm", "addresses", "keep_last", "holder_records"})
    # Timeouts, OSError and SERVFAIL are retried; REFUSED, NOTAUTH, NOTZONE and TSIG errors are permanent.
    CONTRACT = Contract("dns", {"server": "{host}:{port}", "zone": "example.test.", "name": "www",
                                "key_name": "contract", "key_secret": "c2VjcmV0", "addresses": ["127.0.0.1"],
                                "timeout": "{timeout}"},
                        failures={"unreachable": "temporary", "hang": "temporary",
                                  "later": Undriven("an rcode needs a real DNS server (tests/notifiers/test_dns.py "
                                                    "runs bind9)"),
                                  "never": Undriven("an rcode needs a real DNS server (tests/notifiers/test_dns.py "
                                                    "runs bind9 to REFUSED or NOTAUTH)")})

    def configure(self, settings: dict) -> None:
        import dns.name
        import dns.tsigkeyring

        server = self.text(settings, "server")
        try:
            self.server, self.port = parse_hostport(server, 53)
            ipaddress.ip_address(self.server)
        except ValueError:
            raise ChannelConfigError("server", "must be an IP address with an optional port, "
                                               "as in 192.0.2.53 or [2001:db8::53]:5353") from None
        try:
            self.zone = dns.name.from_text(self.text(settings, "zone"))
            self.fqdn = dns.name.from_text(self.text(settings, "name"), origin=self.zone)
        except Exception as exc:  # dnspython's name errors have no common public base
            raise ChannelConfigError("name", f"not a valid DNS name: {exc}") from None
        if not self.fqdn.is_subdomain(self.zone):
            raise ChannelConfigError("name", f"{self.fqdn} is not inside zone {self.zone}")
        self.ttl = int(self.number(settings, "ttl", 60, minimum=0, maximum=2147483647))
        self.timeout = self.number(settings, "timeout", 5.0)
        key_name, algorithm, secret = self._key(settings)
        try:
            self.keyring = dns.tsigkeyring.from_text({key_name: secret})
        except Exception as exc:
            raise ChannelConfigError("key_secret", f"not a base64 TSIG secret: {exc}") from None
        self.key_name = dns.name.from_text(key_name)
        self.algorithm = dns.name.from_text(algorithm)
        self.own_addresses = self.addresses(settings)
        self.keep_last = settings.get("keep_last", True) is not False
        self.holder_records = settings.get("holder_records", True) is not False

    def _key(self, settings: dict) -> tuple[str, str, str]:
        if "key_file" in settings:
            if "key_name" in settings or "key_secret" in settings or "key_secret_file" in settings:
                raise ChannelConfigError("key_file", "give key_file, or key_name with key_secret, not both")
            return parse_key_file(str(self.base / self.text(settings, "key_file")))
        algorithm = settings.get("key_algorithm", "hmac-sha256")
        if algorithm not in ALGORITHMS:
            raise ChannelConfigError("key_algorithm", f"must be one of {', '.join(ALGORITHMS)}")
        return self.text(settings, "key_name"), algorithm, self.secret(settings, "key_secret") or ""

    # Reconciling ----------------------------------------------------------------------

    def send(self, message: Message) -> None:
        addresses, here = self.addresses_here(self.own_addresses, message)
        if not addresses:
            raise PermanentFailure(f"instance {message.context['name']} has no vips in the config, and the "
                                   f"channel has no addresses: nothing to publish")
        for address in addresses:
            if address in here:
                self.claim(address, message.context["host"])
            else:
                self.release(address, message.context["host"])

    def claim(self, address: str, host: str) -> None:
        update = self._update()
        update.add(self.fqdn, self.ttl, _rdtype(address), address)
        if self.holder_records:
            update.replace(self.holder_name(address), self.ttl, "TXT", _quoted(host))
        self._exchange(update)
        log.info("%s: %s has %s (held by %s)", self.name, self.fqdn, address, host)

    def release(self, address: str, host: str) -> None:
        import dns.rdataset

        rdtype = _rdtype(address)
        for _ in range(CONFLICT_RETRIES):
            current = self.read(self.fqdn, rdtype)
            holder = self.read(self.holder_name(address), "TXT") if self.holder_records else set()
            if holder and holder != {_quoted(host)}:
                log.info("%s: %s is held by %s now; leaving it", self.name, address, " ".join(holder))
                return
            if address not in current:
                if holder:
                    self._try(lambda update: (update.present(self.holder_name(address), _txt(host)),
                                              update.delete(self.holder_name(address))))
                return
            if self.keep_last and current == {address}:
                log.warning("%s: %s is the last address of %s; kept", self.name, address, self.fqdn)
                return
            # RFC 2136 3.2.1: a value-dependent prerequisite carries TTL 0, or the server says FORMERR.
            expected = dns.rdataset.from_text("IN", rdtype, 0, *sorted(current))

            def edit(update: Any) -> None:
                update.present(self.fqdn, expected)  # compare-and-swap on the whole set
                if self.holder_records:
                    if holder:
                        update.present(self.holder_name(address), _txt(host))
                        update.delete(self.holder_name(address))
                    else:
                        update.absent(self.holder_name(address))
                update.delete(self.fqdn, rdtype, address)

            if self._try(edit):
                log.info("%s: removed %s from %s", self.name, address, self.fqdn)
                return
        raise TemporaryFailure(f"{self.fqdn} kept changing under us; {CONFLICT_RETRIES} tries")

    def holder_name(self, address: str) -> Any:
        import dns.name

        label = address.replace(".", "-").replace(":", "-")
        return dns.name.Name((label.encode(), b"_kahooks")).concatenate(self.fqdn)

    # DNS messages ---------------------------------------------------------------------

    def read(self, name: Any, rdtype: str) -> set[str]:
        """The record set's values as text, straight from the server being updated (no cache)."""
        import dns.message
        import dns.rcode

        query = dns.message.make_query(name, rdtype)
        query.use_tsig(self.keyring, self.key_name, algorithm=self.algorithm)
        response = self._send(query)
        rcode = dns.rcode.to_text(response.rcode())
        if rcode == "NXDOMAIN":
            return set()
        if rcode != "NOERROR":
            self._fail(f"query for {name} {rdtype}", rcode)
        return {rdata.to_text() for rrset in response.answer if rrset.name == name
                for rdata in rrset if rrset.rdtype == _type_code(rdtype)}

    def _update(self) -> Any:
        import dns.update

        return dns.update.UpdateMessage(self.zone, keyring=self.keyring, keyname=self.key_name,
                                        keyalgorithm=self.algorithm)

    def _try(self, edit: Any) -> bool:
        """Send an update built by `edit`; False when one of its prerequisites no longer holds."""
        update = self._update()
        edit(update)
        try:
            self._exchange(update)
        except Conflict:
            return False
        return True

    def _exchange(self, update: Any) -> None:
        import dns.rcode

        rcode = dns.rcode.to_text(self._send(update).rcode())
        if rcode in ("NXRRSET", "YXRRSET", "NXDOMAIN", "YXDOMAIN"):
            raise Conflict(rcode)
        if rcode != "NOERROR":
            self._fail(f"update of {self.fqdn}", rcode)

    def _fail(self, what: str, rcode: str) -> None:
        reason = f"{what}: {self.server} answered {rcode}"
        if rcode in PERMANENT_RCODES:
            hint = {"REFUSED": " (key not allowed by the zone's update-policy?)",
                    "NOTAUTH": f" (does it serve zone {self.zone}? is the key right?)"}.get(rcode, "")
            raise PermanentFailure(reason + hint)
        raise TemporaryFailure(reason)

    def _send(self, message: Any) -> Any:
        import dns.exception
        import dns.query
        import dns.tsig

        where = f"{self.server} port {self.port}"
        try:
            return dns.query.tcp(message, self.server, timeout=self.timeout, port=self.port)
        except dns.tsig.PeerBadKey:
            raise PermanentFailure(f"{where}: TSIG key {self.key_name} unknown to the server") from None
        except dns.tsig.PeerBadSignature:
            raise PermanentFailure(f"{where}: TSIG signature rejected (wrong secret for "
                                   f"{self.key_name})") from None
        except dns.tsig.PeerError as exc:
            raise PermanentFailure(f"{where}: TSIG error {type(exc).__name__}") from None
        except dns.exception.Timeout:
            raise TemporaryFailure(f"{where}: no answer within {self.timeout:g} s") from None
        except (OSError, EOFError) as exc:
            closed = isinstance(exc, EOFError) and not str(exc)
            raise TemporaryFailure(f"{where}: {'connection closed' if closed else os_words(exc)}") from None
        except dns.exception.DNSException as exc:
            raise PermanentFailure(f"{where}: {exc}") from None


def parse_key_file(path: str) -> tuple[str, str, str]:
    """(name, algorithm, secret) from a BIND key file, as `tsig-keygen -a hmac-sha256 NAME` writes it."""
    from kahooks.settings.config import secret_from_file

    try:
        text = secret_from_file(path)
    except ChannelConfigError as exc:
        raise ChannelConfigError("key_file", str(exc)) from None
    name = re.search(r'key\s+"?([^"\s{]+)"?\s*\{', text)
    algorithm = re.search(r"algorithm\s+\"?([\w.-]+)\"?\s*;", text)
    secret = re.search(r'secret\s+"([^"]+)"\s*;', text)
    if not (name and algorithm and secret):
        raise ChannelConfigError("key_file", f"{path}: not a BIND key file (key \"NAME\" {{ algorithm ...; "
                                             f"secret \"...\"; }};)")
    if algorithm.group(1).lower() not in ALGORITHMS:
        raise ChannelConfigError("key_file", f"{path}: unsupported algorithm {algorithm.group(1)}")
    return name.group(1), algorithm.group(1).lower(), secret.group(1)


def _rdtype(address: str) -> str:
    return "AAAA" if ":" in address else "A"


def _type_code(rdtype: str) -> int:
    import dns.rdatatype

    return dns.rdatatype.from_text(rdtype)


def _quoted(host: str) -> str:
    return '"' + host.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _txt(host: str) -> Any:
    import dns.rdataset

    return dns.rdataset.from_text("IN", "TXT", 0, _quoted(host))


CHANNEL = DnsChannel
