"""The email channel: SMTP with STARTTLS, implicit TLS (SMTPS) or plain, optional AUTH.

4xx replies and network errors are retried; 5xx replies (535 bad password,
550 no such user) are permanent. The Message-ID comes from the event id, so a
retry after a lost reply is recognisably the same message. Recipients refused
with 4xx are retried on their own; the ones that accepted are not mailed again.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from typing import TYPE_CHECKING

from kahooks.errors import os_words
from kahooks.notifiers import _tls
from kahooks.notifiers.base import Channel, ChannelConfigError, Contract, Message, PermanentFailure, TemporaryFailure
from kahooks.system.netaddr import format_hostport, parse_hostport

if TYPE_CHECKING:
    from email.message import EmailMessage

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class EmailChannel(Channel):
    kind = "email"
    SETTINGS = frozenset({"server", "security", "username", "password", "password_file", "from", "to",
                          "timeout", "ca", "insecure"})
    # 4xx and network errors are retried, 5xx are permanent.
    CONTRACT = Contract("smtp", {"server": "{host}:{port}", "security": "none", "from": "lb@example.test",
                                 "to": ["ops@example.test"], "timeout": "{timeout}"},
                        failures={"unreachable": "temporary", "hang": "temporary", "later": "temporary",
                                  "never": "permanent"})

    def configure(self, settings: dict) -> None:
        self.security = settings.get("security", "starttls")
        if self.security not in DEFAULT_PORTS:
            raise ChannelConfigError("security", "must be starttls, tls or none")
        try:
            self.host, self.port = parse_hostport(self.text(settings, "server"), DEFAULT_PORTS[self.security])
        except ValueError as exc:
            raise ChannelConfigError("server", str(exc)) from None
        self.sender = self.text(settings, "from")
        recipients = settings.get("to")
        if isinstance(recipients, str):
            recipients = [recipients]
        if not isinstance(recipients, list) or not recipients or \
                not all(isinstance(r, str) and "@" in r for r in recipients):
            raise ChannelConfigError("to", "must be an address or a list of addresses")
        self.recipients = recipients
        self.username = settings.get("username")
        if self.username is not None and (not isinstance(self.username, str) or not self.username):
            raise ChannelConfigError("username", "must be a non-empty string")
        self.password = self.secret(settings, "password", required=self.username is not None)
        if self.password and not self.username:
            raise ChannelConfigError("password", "needs username")
        if self.username and self.security == "none":
            raise ChannelConfigError("security", "AUTH without TLS would send the password in clear: "
                                                 "use starttls or tls")
        self.timeout = self.number(settings, "timeout", 30.0)
        self.insecure, self.ca = _tls.insecure_and_ca(_tls.verify(self, settings))
        # Recipients that answered 4xx, per event id: the next attempt goes to them only.
        self.pending_recipients: dict[str, list[str]] = {}

    def tls_context(self) -> ssl.SSLContext:
        from kahooks.system.tls import client_context

        return client_context(self.insecure, self.ca, what="ca")

    def compose(self, message: Message) -> EmailMessage:
        from email.message import EmailMessage
        from email.utils import formatdate

        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(message.event.time, localtime=True)
        mail["Message-ID"] = f"<{message.id}@{message.context['host']}.kahooks>"
        mail["X-Kahooks-Event-Id"] = message.id
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.body)
        return mail

    def send(self, message: Message) -> None:
        recipients = self.pending_recipients.get(message.id, self.recipients)
        server = format_hostport(self.host, self.port)
        try:
            refused = self._deliver(self.compose(message), recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
        except smtplib.SMTPNotSupportedError:
            raise PermanentFailure(f"{server} does not offer STARTTLS (set security = \"tls\" or \"none\")") from None
        except smtplib.SMTPResponseException as exc:
            reason = f"{server} said {exc.smtp_code} {_text(exc.smtp_error)}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(reason) from None
            raise TemporaryFailure(reason) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS failure
            raise TemporaryFailure(f"{server}: {_describe(exc)}") from None
        self._settle(message.id, refused)

    def _deliver(self, mail: EmailMessage, recipients: list[str]) -> dict:
        if self.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                    context=self.tls_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.security == "starttls":
                client.starttls(context=self.tls_context())
            if self.username:
                client.login(self.username, self.password or "")
            return client.send_message(mail, from_addr=self.sender, to_addrs=recipients)

    def _settle(self, event_id: str, refused: dict) -> None:
        """Accepted recipients are done; 4xx ones are retried alone; 5xx ones are reported, not retried."""
        self.pending_recipients.pop(event_id, None)
        temporary = [r for r, (code, _) in refused.items() if 400 <= code < 500]
        permanent = {r: f"{code} {_text(text)}" for r, (code, text) in refused.items() if code >= 500}
        if temporary:
            self.pending_recipients[event_id] = temporary
            raise TemporaryFailure("recipients deferred: " + ", ".join(
                f"{r} ({refused[r][0]} {_text(refused[r][1])})" for r in temporary))
        if permanent:
            why = ", ".join(f"{r} ({reason})" for r, reason in permanent.items())
            if len(permanent) == len(self.recipients):
                raise PermanentFailure(f"every recipient refused: {why}")
            import logging

            logging.getLogger("kahooks.email").error("%s: refused recipients, not retried: %s", self.name, why)


def _text(raw: bytes | str) -> str:
    return (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    return os_words(exc)


CHANNEL = EmailChannel
