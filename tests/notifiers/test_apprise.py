"""The apprise channel with Apprise's own json://, form:// and mailto:// against real local receivers."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.settings.config import ConfigError
from tests.support.notify import worker_for, write_config
from tests.support.smtp import SmtpServer
from tests.support.webhooks import WebhookServer

pytest.importorskip("apprise")  # an optional dependency: kahooks[apprise]; ./run test installs it
FAST_RETRY = "flap_window = 0\nbackoff_initial = 0.05\nbackoff_max = 0.5\nmax_attempts = 1000"


@pytest.fixture
def receivers() -> tuple[WebhookServer, WebhookServer]:
    first, second = WebhookServer("/hook/json"), WebhookServer("/hook/form")
    yield first, second
    first.stop()
    second.stop()


def table(urls: list[str]) -> str:
    return '[channels.team]\ntype = "apprise"\nurls = [' + ", ".join(json.dumps(url) for url in urls) + "]\n"


def record(tmp_path: Path, channels: str) -> tuple[object, object, Event]:
    _, spool, worker = worker_for(write_config(tmp_path, channels, delivery=FAST_RETRY))
    event = Event.new("INSTANCE", "VI_1", "FAULT", 0, "test")
    spool.record(event)
    return spool, worker, event


def test_json_and_form_targets_each_get_the_message(tmp_path: Path, receivers: tuple[WebhookServer, WebhookServer]) -> None:
    as_json, as_form = receivers
    _, worker, _ = record(tmp_path, table([f"json://127.0.0.1:{as_json.port}/hook/json",
                                           f"form://127.0.0.1:{as_form.port}/hook/form"]))
    assert worker.drain(15)
    [posted] = as_json.received
    payload = posted.json()
    assert payload["title"] == "[lb-test] VI_1 is FAULT" and "VI_1" in payload["message"]
    [form] = as_form.received
    fields = urllib.parse.parse_qs(form.body.decode())
    assert fields["title"] == ["[lb-test] VI_1 is FAULT"]


def test_a_failing_target_is_retried_and_the_others_are_not_sent_twice(
        tmp_path: Path, receivers: tuple[WebhookServer, WebhookServer]) -> None:
    healthy, flaky = receivers
    flaky.replies = [(500, "down", {}), (503, "still down", {})]
    spool, worker, _ = record(tmp_path, table([f"json://127.0.0.1:{healthy.port}/hook/json",
                                               f"json://127.0.0.1:{flaky.port}/hook/form"]))
    assert worker.drain(20)
    assert len(flaky.received) == 1  # third time lucky: the two 5xx were retried
    assert len(healthy.received) == 1  # it took the message the first time; the retries skip it


def test_an_unreachable_target_waits_in_the_spool_then_is_delivered(
        tmp_path: Path, receivers: tuple[WebhookServer, WebhookServer]) -> None:
    target, _ = receivers
    target.stop()
    spool, worker, _ = record(tmp_path, table([f"json://127.0.0.1:{target.port}/hook/json"]))
    assert not worker.drain(1)
    assert "Apprise could not notify URL 1 (json://…)" in spool.queued("team")[0].last_error
    target.start()
    assert worker.drain(15)
    assert len(target.received) == 1


def test_mailto_reaches_a_real_smtp_server(tmp_path: Path, certs: dict[str, tuple[Path, Path]]) -> None:
    server = SmtpServer(certs["long"], mode="plain")
    try:
        _, worker, _ = record(tmp_path, table([f"mailto://127.0.0.1:{server.port}?from=kahooks@example.test"
                                               "&to=ops@example.test&mode=insecure"]))
        assert worker.drain(15)
        [(recipients, mail)] = server.messages
        assert recipients == ["ops@example.test"] and mail["Subject"] == "[lb-test] VI_1 is FAULT"
    finally:
        server.stop()


def test_urls_come_from_a_private_file_and_are_never_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "apprise.urls"
    secret.write_text("# the team's chat\ntgram://123456:SECRETTOKEN/987\n")
    secret.chmod(0o640)
    worker_for(write_config(tmp_path, f'[channels.team]\ntype = "apprise"\nurls_file = "{secret}"\n'))
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="world-readable"):
        worker_for(write_config(tmp_path, f'[channels.team]\ntype = "apprise"\nurls_file = "{secret}"\n'))
    with pytest.raises(ConfigError) as raised:
        worker_for(write_config(tmp_path, '[channels.team]\ntype = "apprise"\nurls = ["SECRETTOKEN"]\n'))
    assert "SECRETTOKEN" not in str(raised.value) and "not an Apprise URL" in str(raised.value)
