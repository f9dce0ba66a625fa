"""A real SMTP server (aiosmtpd) on loopback: STARTTLS or implicit TLS, AUTH, scripted replies."""

from __future__ import annotations

import email
import logging
import ssl
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from kahooks.lab.netns import free_port

logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd deprecation chatter


class Recorder:
    """Keeps every accepted message; `data_replies` and `rcpt_replies` script failures first."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.Message]] = []
        self.data_replies: list[str] = []
        self.rcpt_replies: dict[str, list[str]] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        scripted = self.rcpt_replies.get(address)
        if scripted:
            return scripted.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted"


class SmtpServer:
    def __init__(self, cert: tuple[Path, Path], mode: str = "starttls",
                 users: dict[str, str] | None = None) -> None:
        self.cert, self.mode, self.users = cert, mode, users or {}
        self.port = free_port()
        self.recorder = Recorder()
        self.controller: Controller | None = None
        self.start()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and \
                self.users.get(auth_data.login.decode()) == auth_data.password.decode():
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        options: dict = {"hostname": "127.0.0.1", "port": self.port, "server_hostname": "localhost"}
        if self.users:
            options.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=True)
        if self.mode == "tls":
            options["ssl_context"] = context
        elif self.mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        self.controller = Controller(self.recorder, **options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[tuple[list[str], email.message.Message]]:
        return self.recorder.messages
