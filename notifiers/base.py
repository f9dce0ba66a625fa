"""The one contract every channel implements: validate settings in the constructor, send(message).

send() returns on success and raises TemporaryFailure (retry later) or
PermanentFailure (retrying cannot help); the worker does the rest. A channel
never sees argv, FIFO lines or the spool: at most its own state file in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from kahooks.notify.delivery import Message, PermanentFailure, TemporaryFailure
from kahooks.notify.templates import DEFAULT_BODY, DEFAULT_SUBJECT, MessageTemplates
from kahooks.settings.config import ChannelConfigError

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from kahooks.notify.spool import ChannelState

__all__ = ["Channel", "ChannelConfigError", "Contract", "Message", "PermanentFailure", "TemporaryFailure",
           "Undriven"]

# The ways an endpoint fails, the same for every channel (tests/notifiers/test_contract.py drives each):
FAILURES = {
    "unreachable": "nothing is there: a closed port, a command gone since the configuration was read",
    "hang": "it takes the request and never answers, past the channel's timeout",
    "later": "it says try again later: HTTP 500, SMTP 451, a command exiting non-zero",
    "never": "it says never: HTTP 404, SMTP 550, an exit code listed as permanent",
}
# What send() makes of a failure: TemporaryFailure (retried), with alert=True (people are told), or
# PermanentFailure (buried at once).
Outcome = Literal["temporary", "temporary+alert", "permanent"]


@dataclass(frozen=True)
class Undriven:
    """A failure this channel cannot be driven to (its protocol has no such answer), and why."""

    why: str


@dataclass(frozen=True)
class Contract:
    """How a channel fails, declared once: its endpoint's protocol, settings that point it at one
    (the contract test fills in "{host}", "{port}", "{url}", "{command}", "{closed_port}", "{timeout}"), and the
    outcome of each of FAILURES, or why it cannot happen."""

    endpoint: Literal["http", "smtp", "command", "syslog", "dns"]
    settings: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, Outcome | Undriven] = field(default_factory=dict)

COMMON_SETTINGS = frozenset({"type", "subject", "body", "subject_file", "body_file"})


class Channel:
    kind = ""
    # The names a channel takes (an unknown one is refused here, before configure). Their types and ranges
    # are checked once, in configure(), through number/text/secret/addresses, which word the one-line
    # errors: a typed map beside them would state every type twice, so SETTINGS stays names.
    SETTINGS: frozenset[str] = frozenset()
    CONTRACT: Contract
    DEFAULT_SUBJECT = DEFAULT_SUBJECT
    DEFAULT_BODY = DEFAULT_BODY
    # Channels that tell people (mail, Slack, syslog) take every event: kahooks' ALERTs and LVS
    # changes too. Channels that change things (DNS, rebind) act on VRRP transitions only.
    vrrp_only = False

    def __init__(self, name: str, settings: dict[str, Any], base: Path) -> None:
        self.name = name
        for key in settings:
            if key not in COMMON_SETTINGS | self.SETTINGS:
                known = ", ".join(sorted(COMMON_SETTINGS | self.SETTINGS))
                raise ChannelConfigError(key, f"unknown setting for a {self.kind} channel (known: {known})")
        self.base = base
        self.templates = MessageTemplates(settings, base, self.DEFAULT_BODY, self.DEFAULT_SUBJECT)
        self.configure(settings)

    def configure(self, settings: dict[str, Any]) -> None:
        """Read and check the type's own settings; raise ChannelConfigError(key, why)."""

    def send(self, message: Message) -> None:
        raise NotImplementedError

    # What a channel may do besides sending (the worker calls these; the defaults do nothing) ------

    def refresh(self) -> None:
        """Keep alive what this channel keeps at its endpoint (between deliveries, in its own thread)."""

    def remember_in(self, state: ChannelState) -> None:
        """Where this channel keeps what it must remember from one worker to the next."""

    def keeping_alive(self) -> bool:
        """True while the channel keeps something alive at its endpoint: the worker does not idle out."""
        return False

    # Helpers for configure() ----------------------------------------------------------

    @staticmethod
    def number(settings: dict[str, Any], key: str, default: float, minimum: float = 0.0,
               maximum: float = 3600.0) -> float:
        """A number above `minimum`, at most `maximum` (an hour, for the timeouts most channels take)."""
        from kahooks.settings.options import number_problem

        value = settings.get(key, default)
        why = number_problem(value, minimum, maximum)
        if why or value == minimum:
            raise ChannelConfigError(key, f"must be a number above {minimum:g}, at most {maximum:g}")
        return float(value)

    def secret(self, settings: dict[str, Any], key: str, required: bool = True) -> str | None:
        """`key` inline, or `key_file` naming a file only its owner may read (keeps secrets out of the config)."""
        from kahooks.settings.config import secret_from_file

        file_key = f"{key}_file"
        if key in settings and file_key in settings:
            raise ChannelConfigError(key, f"give {key} or {file_key}, not both")
        if file_key in settings:
            value = settings[file_key]
            if not isinstance(value, str) or not value:
                raise ChannelConfigError(file_key, "must be a file path")
            try:
                return secret_from_file(str(self.base / value))
            except ChannelConfigError as exc:
                raise ChannelConfigError(file_key, str(exc)) from None
        if key in settings:
            value = settings[key]
            if not isinstance(value, str) or not value:
                raise ChannelConfigError(key, "must be a non-empty string")
            return value
        if required:
            raise ChannelConfigError(key, f"is required (or {file_key})")
        return None

    @staticmethod
    def addresses(settings: dict[str, Any]) -> list[str] | None:
        """The optional `addresses` setting, normalised; None: act for the instance's VIPs."""
        import ipaddress

        if "addresses" not in settings:
            return None
        try:
            return [str(ipaddress.ip_address(address)) for address in settings["addresses"]]
        except (TypeError, ValueError):
            raise ChannelConfigError("addresses", "must be a list of IP addresses") from None

    @staticmethod
    def addresses_here(own: list[str] | None, message: Message) -> tuple[list[str], list[str]]:
        """(the addresses acted for: `own`, else the instance's VIPs without prefix; those on an
        interface of this node right now). Channels that change things act on this, not on the event."""
        import ipaddress

        from kahooks.system.reality import vips_present

        wanted = own or [str(ipaddress.ip_address(vip.split("/")[0])) for vip in message.context["vips"]]
        return wanted, vips_present(wanted)

    @staticmethod
    def text(settings: dict[str, Any], key: str, default: str | None = None) -> str:
        value = settings.get(key, default)
        if not isinstance(value, str) or not value:
            raise ChannelConfigError(key, "must be a non-empty string" if key in settings else "is required")
        return value
