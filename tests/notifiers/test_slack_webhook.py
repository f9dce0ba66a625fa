"""The slack and webhook channels against a local server speaking Slack's webhook contract."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.settings.config import ConfigError
from tests.support.notify import worker_for, write_config
from tests.support.webhooks import WebhookServer

FAST_RETRY = "flap_window = 0\nbackoff_initial = 0.05\nbackoff_max = 1.5\nmax_attempts = 1000"


@pytest.fixture
def slack() -> WebhookServer:
    server = WebhookServer()
    yield server
    server.stop()


def slack_channel(server: WebhookServer, extra: str = "") -> str:
    return f'[channels.chat]\ntype = "slack"\nurl = "{server.url}"\ntimeout = 2\n{extra}'


def setup(tmp_path: Path, table: str, state: str = "FAULT") -> tuple[object, object, Event]:
    _, spool, worker = worker_for(write_config(tmp_path, table, delivery=FAST_RETRY))
    event = Event.new("INSTANCE", "VI_1", state, 0, "test")
    spool.record(event)
    return spool, worker, event


def dead_reason(spool: object, channel: str) -> str:
    return json.loads(next((spool.dead_dir / channel).glob("*.json")).read_text())["last_error"]


def test_a_fault_is_posted_in_red(tmp_path: Path, slack: WebhookServer) -> None:
    _, worker, event = setup(tmp_path, slack_channel(slack, 'username = "keepalived"'))
    assert worker.drain(10)
    [request] = slack.received
    payload = request.json()
    assert payload["text"] == "[lb-test] VI_1 is FAULT" and payload["username"] == "keepalived"
    [attachment] = payload["attachments"]
    assert attachment["color"] == "#a30200" and event.id in attachment["footer"]
    assert "Priority:  0" in attachment["text"]


def test_429_waits_for_retry_after(tmp_path: Path, slack: WebhookServer) -> None:
    slack.replies = [(429, "rate_limited", {"Retry-After": "1"})]
    spool, worker, _ = setup(tmp_path, slack_channel(slack))
    started = time.monotonic()
    assert worker.drain(10)
    assert time.monotonic() - started >= 0.95  # not before the server said so
    assert len(slack.received) == 1


def test_500_and_an_outage_are_retried_until_delivered(tmp_path: Path, slack: WebhookServer) -> None:
    slack.replies = [(500, "internal_error", {})]
    slack.stop()
    spool, worker, event = setup(tmp_path, slack_channel(slack))
    assert not worker.drain(0.5)
    assert "cannot connect" in spool.queued("chat")[0].last_error
    slack.start()
    assert worker.drain(10)
    assert len(slack.received) == 1 and event.id in slack.received[0].json()["attachments"][0]["footer"]


@pytest.mark.parametrize(("status", "text"), [(404, "channel_not_found"), (400, "invalid_payload"),
                                               (410, "channel_is_archived")])
def test_other_4xx_are_permanent(tmp_path: Path, slack: WebhookServer, status: int, text: str) -> None:
    slack.replies = [(status, text, {})]
    spool, worker, _ = setup(tmp_path, slack_channel(slack))
    assert worker.drain(10)
    assert dead_reason(spool, "chat") == f"permanent: HTTP {status} {text}"


def test_the_url_can_live_in_a_private_file(tmp_path: Path, slack: WebhookServer) -> None:
    secret = tmp_path / "slack.url"
    secret.write_text(slack.url + "\n")
    secret.chmod(0o600)
    _, worker, _ = setup(tmp_path, f'[channels.chat]\ntype = "slack"\nurl_file = "{secret}"\n')
    assert worker.drain(10) and len(slack.received) == 1
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="channels.chat.url_file: .*world-readable"):
        worker_for(tmp_path / "kahooks.toml")


def test_webhook_default_body_and_idempotency_key(tmp_path: Path, slack: WebhookServer) -> None:
    table = f'[channels.hook]\ntype = "webhook"\nurl = "{slack.url}"\ntoken = "t0k"\n'
    _, worker, event = setup(tmp_path, table, state="MASTER")
    assert worker.drain(10)
    [request] = slack.received
    body = request.json()
    assert (body["name"], body["state"], body["host"], body["vips"]) == ("VI_1", "MASTER", "lb-test", ["192.0.2.10"])
    assert body["id"] == event.id and body["subject"] == "[lb-test] VI_1 is MASTER"
    assert request.headers["Idempotency-Key"] == event.id and request.headers["Authorization"] == "Bearer t0k"


def test_webhook_templated_payload(tmp_path: Path, slack: WebhookServer) -> None:
    template = '{"topic": "keepalived", "title": {{ subject|tojson }}, "priority": {{ 5 if state == "FAULT" else 3 }}}'
    table = (f'[channels.hook]\ntype = "webhook"\nurl = "{slack.url}"\nmethod = "PUT"\n'
             f"payload = '{template}'\n")
    _, worker, _ = setup(tmp_path, table)
    assert worker.drain(10)
    [request] = slack.received
    assert request.method == "PUT"
    assert request.json() == {"topic": "keepalived", "title": "[lb-test] VI_1 is FAULT", "priority": 5}


def test_webhook_payload_that_is_not_json_is_a_config_error(tmp_path: Path, slack: WebhookServer) -> None:
    table = f'[channels.hook]\ntype = "webhook"\nurl = "{slack.url}"\npayload = \'{{"title": {{{{ subject }}}}}}\'\n'
    with pytest.raises(ConfigError, match="channels.hook.payload: does not render to JSON"):
        worker_for(write_config(tmp_path, table))


def test_a_redirect_is_permanent(tmp_path: Path, slack: WebhookServer) -> None:
    slack.replies = [(301, "", {"Location": "https://elsewhere.invalid/"})]
    spool, worker, _ = setup(tmp_path, f'[channels.hook]\ntype = "webhook"\nurl = "{slack.url}"\n')
    assert worker.drain(10)
    assert "redirected to https://elsewhere.invalid/" in dead_reason(spool, "hook")
