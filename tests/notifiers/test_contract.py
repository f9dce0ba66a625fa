"""One contract, every channel: each registered channel type (kahooks.notifiers.kinds) meets each way an
endpoint fails (notifiers/base.py FAILURES) through a real peer on loopback, and send() classifies it as
the channel's CONTRACT declares. A failure a channel cannot meet is declared there (Undriven), with why."""

from __future__ import annotations

import contextlib
import stat
from typing import TYPE_CHECKING, Any

import pytest

from kahooks.events.event import Event
from kahooks.events.transition import Transition
from kahooks.notifiers import channel_class, kinds
from kahooks.notifiers.base import FAILURES, Contract, Message, PermanentFailure, TemporaryFailure, Undriven
from tests.support.netservers import RawPeer, free_port, make_certificate
from tests.support.smtp import SmtpServer
from tests.support.webhooks import WebhookServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# What the peer answers for "later" and "never", by protocol.
HTTP_ANSWERS = {"later": (500, "try later"), "never": (404, "no such hook")}
SMTP_ANSWERS = {"later": "451 4.3.0 try later", "never": "550 5.7.1 never"}
EXIT_CODES = {"later": 1, "never": 3}
# A hang is cut at its timeout: short. An answer must come within it even on a loaded machine: generous.
HANG_TIMEOUT, ANSWER_TIMEOUT = 0.5, 10.0


def driven() -> list[tuple[str, str]]:
    """(type, failure) for every failure a channel declares an outcome of (a channel without a CONTRACT
    has none here, and fails the test below)."""
    return [(kind, failure) for kind in kinds() for failure, outcome in contract_of(kind).failures.items()
            if not isinstance(outcome, Undriven)]


def contract_of(kind: str) -> Contract:
    return getattr(channel_class(kind), "CONTRACT", None) or Contract("http")


def test_every_channel_declares_every_failure() -> None:
    for kind in kinds():
        assert hasattr(channel_class(kind), "CONTRACT"), f"{kind}: no CONTRACT (notifiers/base.py Contract)"
        contract = contract_of(kind)
        assert set(contract.failures) == set(FAILURES), kind
        for outcome in contract.failures.values():
            assert isinstance(outcome, Undriven) and outcome.why or \
                outcome in ("temporary", "temporary+alert", "permanent"), (kind, outcome)


def silent(connection: Any, stopping: Any) -> None:
    stopping.wait(10)  # takes the request, never answers (closed with the peer)


@contextlib.contextmanager
def peer(endpoint: str, failure: str, directory: Path) -> Iterator[dict[str, Any]]:
    """A real endpoint failing as `failure` says; yields the values of the contract's placeholders."""
    if failure == "unreachable" and endpoint != "command":
        port = free_port()  # nothing listens there
        yield {"host": "127.0.0.1", "port": port, "url": f"http://127.0.0.1:{port}/hook"}
    elif failure == "hang" and endpoint != "command":
        raw = RawPeer(silent, timeout=None)
        try:
            yield {"host": "127.0.0.1", "port": raw.port, "url": f"http://127.0.0.1:{raw.port}/hook"}
        finally:
            raw.close()
    elif endpoint == "http":
        server = WebhookServer("/hook", any_path=True)
        server.replies = [(*HTTP_ANSWERS[failure], {})] * 5
        try:
            yield {"host": "127.0.0.1", "port": server.port, "url": server.url}
        finally:
            server.stop()
    elif endpoint == "smtp":
        smtp = SmtpServer(make_certificate(directory, 1), mode="none")
        smtp.recorder.data_replies = [SMTP_ANSWERS[failure]] * 5
        try:
            yield {"host": "127.0.0.1", "port": smtp.port}
        finally:
            smtp.stop()
    elif endpoint == "command":
        script = directory / "endpoint"
        body = {"unreachable": "exit 0", "hang": "exec sleep 30"}.get(failure) or f"exit {EXIT_CODES[failure]}"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(stat.S_IRWXU)
        yield {"command": [str(script)], "closed_port": free_port(), "gone": script}
    else:
        raise AssertionError(f"no {failure} peer for a {endpoint} endpoint")


def fill(value: Any, values: dict[str, Any]) -> Any:
    """The contract's settings with "{name}" placeholders replaced (a whole "{name}" keeps its type)."""
    if isinstance(value, dict):
        return {key: fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, values) for item in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in values:
        return values[value[1:-1]]
    return value.format(**values) if isinstance(value, str) and "{" in value else value


def master_message() -> Message:
    event = Event.new("INSTANCE", "VI_1", "MASTER", 100, source="contract")
    transition = Transition.of("lb-test", ["127.0.0.1"], [event], "BACKUP")
    return Message("VI_1 is MASTER", "body", transition, [event])


@pytest.mark.parametrize("kind, failure", driven(), ids=[f"{kind}-{failure}" for kind, failure in driven()])
def test_a_failing_endpoint_is_classified_as_the_channel_declares(kind: str, failure: str, tmp_path: Path) -> None:
    cls = channel_class(kind)
    expected = cls.CONTRACT.failures[failure]
    with peer(cls.CONTRACT.endpoint, failure, tmp_path) as values:
        values["timeout"] = HANG_TIMEOUT if failure == "hang" else ANSWER_TIMEOUT
        channel = cls("contract", fill(cls.CONTRACT.settings, values), tmp_path)
        if failure == "unreachable" and "gone" in values:
            values["gone"].unlink()  # the command was there when the configuration was read
        with pytest.raises((TemporaryFailure, PermanentFailure)) as raised:
            channel.send(master_message())
    outcome = "permanent" if isinstance(raised.value, PermanentFailure) else \
        "temporary+alert" if raised.value.alert else "temporary"
    assert outcome == expected, f"{kind}: {failure} ({FAILURES[failure]}) gave {outcome}: {raised.value}"
