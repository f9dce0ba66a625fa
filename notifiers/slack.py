"""The slack channel: an incoming webhook, one message per transition, coloured by state.

Slack answers 200 `ok`; 429 with Retry-After when over about one message per
second (retried after that long); 5xx and network errors are retried; other
4xx (invalid_payload, channel_not_found, channel_is_archived) are permanent.
"""

from __future__ import annotations

from kahooks.notifiers._http import Http, check_url
from kahooks.notifiers.base import Channel, Contract, Message

COLOURS = {"MASTER": "#2eb886", "BACKUP": "#daa038", "FAULT": "#a30200", "STOP": "#808080",
           "DELETED": "#808080", "UP": "#2eb886", "DOWN": "#a30200"}


class SlackChannel(Channel):
    kind = "slack"
    SETTINGS = frozenset({"url", "url_file", "timeout", "channel", "username", "icon_emoji"})
    CONTRACT = Contract("http", {"url": "{url}", "timeout": "{timeout}"},
        failures={"unreachable": "temporary", "hang": "temporary", "later": "temporary", "never": "permanent"})

    def configure(self, settings: dict) -> None:
        self.url = check_url(self.secret(settings, "url") or "")
        self.timeout = self.number(settings, "timeout", 10.0)
        self.http = Http(self.timeout)
        self.extra = {}
        for key in ("channel", "username", "icon_emoji"):
            if key in settings:
                self.extra[key] = self.text(settings, key)

    def payload(self, message: Message) -> dict:
        state = message.event.state
        return {**self.extra, "text": message.subject,
                "attachments": [{"color": COLOURS.get(state, "#808080"), "fallback": message.subject,
                                 "text": f"```{message.body.rstrip()}```", "mrkdwn_in": ["text"],
                                 "footer": f"kahooks event {message.id}", "ts": int(message.event.time)}]}

    def send(self, message: Message) -> None:
        self.http.post(self.url, json_body=self.payload(message), expect_text="ok")


CHANNEL = SlackChannel
