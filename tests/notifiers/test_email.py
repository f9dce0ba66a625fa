"""The email channel against a real SMTP server (aiosmtpd): STARTTLS, SMTPS, AUTH, outages, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kahooks.events.event import Event
from tests.support.notify import worker_for, write_config
from tests.support.smtp import SmtpServer

FAST_RETRY = "flap_window = 0\nbackoff_initial = 0.05\nbackoff_max = 0.2\nmax_attempts = 1000"
USERS = {"kahooks": "s3cret"}


def channel(server: SmtpServer, cert: Path, extra: str = "", to: str = '["ops@example.test", "noc@example.test"]',
            security: str | None = None) -> str:
    auth = 'username = "kahooks"\npassword = "s3cret"\n' if server.users else ""
    return (f'[channels.mail]\ntype = "email"\nserver = "127.0.0.1:{server.port}"\n'
            f'security = "{security or server.mode}"\nfrom = "kahooks@lb-test.example.test"\nto = {to}\n'
            f'ca = "{cert}"\ntimeout = 5\n{auth}{extra}')


@pytest.fixture
def smtp(certs: dict[str, tuple[Path, Path]]) -> SmtpServer:
    server = SmtpServer(certs["long"], "starttls", USERS)
    yield server
    server.stop()


def record(tmp_path: Path, table: str) -> tuple[object, object, Event]:
    tmp_path.mkdir(exist_ok=True)
    _, spool, worker = worker_for(write_config(tmp_path, table, delivery=FAST_RETRY))
    event = Event.new("INSTANCE", "VI_1", "FAULT", 0, "test")
    spool.record(event)
    return spool, worker, event


def test_starttls_with_auth_reaches_every_recipient(tmp_path: Path, smtp: SmtpServer,
                                                    certs: dict[str, tuple[Path, Path]]) -> None:
    spool, worker, event = record(tmp_path, channel(smtp, certs["long"][0]))
    assert worker.drain(10)
    [(recipients, mail)] = smtp.messages
    assert recipients == ["ops@example.test", "noc@example.test"]
    assert mail["Subject"] == "[lb-test] VI_1 is FAULT"
    assert mail["Message-ID"] == f"<{event.id}@lb-test.kahooks>"
    assert mail["X-Kahooks-Event-Id"] == event.id
    assert "State:     unknown -> FAULT" in mail.get_payload()


def test_smtps_implicit_tls(tmp_path: Path, certs: dict[str, tuple[Path, Path]]) -> None:
    server = SmtpServer(certs["long"], "tls")
    try:
        _, worker, _ = record(tmp_path, channel(server, certs["long"][0]))
        assert worker.drain(10)
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_a_wrong_password_is_permanent(tmp_path: Path, smtp: SmtpServer,
                                       certs: dict[str, tuple[Path, Path]]) -> None:
    table = channel(smtp, certs["long"][0]).replace('password = "s3cret"', 'password = "wrong"')
    spool, worker, _ = record(tmp_path, table)
    assert worker.drain(10)
    dead = json.loads(next((spool.dead_dir / "mail").glob("*.json")).read_text())
    assert "535" in dead["last_error"] and dead["attempts"] == 0
    assert smtp.messages == []


def test_server_down_then_back_delivers_once(tmp_path: Path, smtp: SmtpServer,
                                             certs: dict[str, tuple[Path, Path]]) -> None:
    smtp.stop()
    spool, worker, event = record(tmp_path, channel(smtp, certs["long"][0]))
    assert not worker.drain(0.8)
    assert "connection refused" in spool.queued("mail")[0].last_error
    smtp.start()
    assert worker.drain(10)
    assert [mail["X-Kahooks-Event-Id"] for _, mail in smtp.messages] == [event.id]


def test_4xx_is_retried_and_5xx_for_one_recipient_is_not(tmp_path: Path, smtp: SmtpServer,
                                                          certs: dict[str, tuple[Path, Path]]) -> None:
    smtp.recorder.data_replies = ["451 4.3.0 try again later"]
    _, worker, _ = record(tmp_path / "data", channel(smtp, certs["long"][0]))
    assert worker.drain(10)
    # 451 on DATA: nobody had it, so the retry goes to all, once.
    assert [recipients for recipients, _ in smtp.messages] == [["ops@example.test", "noc@example.test"]]
    smtp.messages.clear()

    smtp.recorder.rcpt_replies = {"noc@example.test": ["450 4.2.1 mailbox busy"],
                                  "gone@example.test": ["550 5.1.1 no such user"] * 10}
    to = '["ops@example.test", "noc@example.test", "gone@example.test"]'
    spool, worker, event = record(tmp_path / "rcpt", channel(smtp, certs["long"][0], to=to))
    assert worker.drain(10)
    # noc deferred (450), ops accepted, gone refused (550): the next attempt goes to noc only;
    # gone is reported, never retried.
    assert [recipients for recipients, _ in smtp.messages] == [["ops@example.test"], ["noc@example.test"]]
    assert {mail["Message-ID"] for _, mail in smtp.messages} == {f"<{event.id}@lb-test.kahooks>"}
    assert not (spool.dead_dir / "mail").exists() or not list((spool.dead_dir / "mail").iterdir())


def test_starttls_not_offered_is_permanent(tmp_path: Path, certs: dict[str, tuple[Path, Path]]) -> None:
    plain = SmtpServer(certs["long"], "none")
    try:
        spool, worker, _ = record(tmp_path, channel(plain, certs["long"][0], security="starttls"))
        assert worker.drain(10)
        dead = json.loads(next((spool.dead_dir / "mail").glob("*.json")).read_text())
        assert "does not offer STARTTLS" in dead["last_error"]
    finally:
        plain.stop()


def test_an_untrusted_certificate_is_reported(tmp_path: Path, smtp: SmtpServer,
                                              certs: dict[str, tuple[Path, Path]]) -> None:
    table = channel(smtp, certs["short"][0])  # a different self-signed certificate as the CA
    spool, worker, _ = record(tmp_path, table)
    assert not worker.drain(0.5)
    assert "certificate not trusted" in spool.queued("mail")[0].last_error
