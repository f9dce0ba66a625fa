"""The webhook channel: a JSON (or any) POST for Mattermost, ntfy, Teams workflows and the like.

The request body is a jinja2 template over the same variables as a message,
plus `subject` and `body`; use `|tojson` for strings. Without a template the
body is a JSON object with every field of the transition (kahooks.events.transition). Each request carries
the event id (X-Kahooks-Event-Id, Idempotency-Key) so a receiver can drop the
duplicates that at-least-once delivery can produce.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from kahooks.notifiers import _tls
from kahooks.notifiers._http import Http, check_url
from kahooks.notifiers.base import Channel, ChannelConfigError, Contract, Message
from kahooks.notify.templates import sample_context

if TYPE_CHECKING:
    from typing import Any


class WebhookChannel(Channel):
    kind = "webhook"
    SETTINGS = frozenset({"url", "url_file", "method", "headers", "token", "token_file", "payload",
                          "content_type", "timeout", "ca", "insecure"})
    CONTRACT = Contract("http", {"url": "{url}", "timeout": "{timeout}"},
        failures={"unreachable": "temporary", "hang": "temporary", "later": "temporary", "never": "permanent"})

    def configure(self, settings: dict) -> None:
        self.url = check_url(self.secret(settings, "url") or "")
        self.timeout = self.number(settings, "timeout", 10.0)
        self.method = settings.get("method", "POST")
        if self.method not in ("POST", "PUT", "PATCH"):
            raise ChannelConfigError("method", "must be POST, PUT or PATCH")
        headers = settings.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ChannelConfigError("headers", "must be a table of strings")
        self.content_type = self.text(settings, "content_type", "application/json")
        self.headers = {"Content-Type": self.content_type, **headers}
        token = self.secret(settings, "token", required=False)
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.verify = _tls.verify(self, settings)
        self.http = Http(self.timeout, self.verify)
        self.payload_template = None
        if "payload" in settings:
            self.payload_template = self._compile(self.text(settings, "payload"))

    def _compile(self, source: str) -> Any:
        import jinja2

        from kahooks.notify.templates import environment

        try:
            template = environment().from_string(source)
            sample = template.render(**sample_context(False), subject="s", body="b")
        except jinja2.TemplateError as exc:
            raise ChannelConfigError("payload", f"template error: {exc}") from None
        if "json" in self.content_type:
            try:
                json.loads(sample)
            except ValueError as exc:
                raise ChannelConfigError("payload", f"does not render to JSON ({exc}); quote strings with |tojson") \
                    from None
        return template

    def render(self, message: Message) -> bytes:
        if self.payload_template is None:
            return json.dumps({"subject": message.subject, "body": message.body,
                               **message.transition.fields()}).encode()
        return self.payload_template.render(**message.context, subject=message.subject,
                                            body=message.body).encode()

    def send(self, message: Message) -> None:
        headers = {**self.headers, "X-Kahooks-Event-Id": message.id, "Idempotency-Key": message.id}
        self.http.post(self.url, data=self.render(message), headers=headers, method=self.method)


CHANNEL = WebhookChannel
