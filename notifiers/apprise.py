"""The apprise channel: Teams, Telegram, PagerDuty, Opsgenie, Discord, Matrix, ntfy, Gotify and a hundred
more, through the Apprise library's URLs (`tgram://…`, `msteams://…`, `pagerduty://…`).

    [channels.team]
    type = "apprise"
    urls = ["tgram://BOT_TOKEN/CHAT_ID", "msteams://TOKEN_A/TOKEN_B/TOKEN_C"]   # or urls_file

Apprise (`pip install apprise`, not in Debian 12) is imported by the delivery worker only, when
it first sends: a notify handler never pays its ~140 ms. The URLs carry tokens: keep them in
`urls_file` (one URL a line, # comments; readable by its owner and group only).

Retries: Apprise answers only true or false for each URL, so kahooks cannot tell a wrong token
from an outage. Every false is retried with kahooks' backoff and ends in the dead-letter
directory after max_attempts, like any other temporary failure; `ka-notify queue` shows which
URL failed. A URL that already took this message is not sent it again on a retry (within one
worker's life). A URL Apprise cannot parse is a permanent failure at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kahooks.notifiers.base import Channel, ChannelConfigError, Message, PermanentFailure, TemporaryFailure

if TYPE_CHECKING:
    from typing import Any

REMEMBERED = 1000  # message ids whose successful URLs are remembered for retries


class AppriseChannel(Channel):
    kind = "apprise"
    SETTINGS = frozenset({"urls", "urls_file"})

    def configure(self, settings: dict) -> None:
        if ("urls" in settings) == ("urls_file" in settings):
            raise ChannelConfigError("urls", "give urls (a list of Apprise URLs) or urls_file, one of them")
        if "urls" in settings:
            urls = settings["urls"]
            if not isinstance(urls, list) or not urls or not all(isinstance(url, str) and url for url in urls):
                raise ChannelConfigError("urls", "must be a non-empty list of Apprise URLs")
        else:
            text = self.secret(settings, "urls") or ""
            urls = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
            if not urls:
                raise ChannelConfigError("urls_file", "holds no URL")
        for number, url in enumerate(urls, 1):
            scheme, separator, rest = url.partition("://")
            if not separator or not scheme.isalnum() or not rest:
                # Never echo any of it: a URL carries a token, and a mistyped one may be nothing else.
                raise ChannelConfigError("urls", f"entry {number} is not an Apprise URL (SCHEME://...)")
        self.urls: list[str] = urls
        self.delivered: dict[str, set[int]] = {}  # message id -> indexes of URLs that took it

    def send(self, message: Message) -> None:
        try:
            import apprise
        except ImportError:
            raise TemporaryFailure("the apprise library is not installed (pip install apprise)") from None
        done = self.delivered.setdefault(message.id, set())
        failed = []
        for index, url in enumerate(self.urls):
            if index in done:
                continue
            sender: Any = apprise.Apprise()
            scheme = url.partition("://")[0]
            if not sender.add(url):
                raise PermanentFailure(f"Apprise cannot use URL {index + 1} ({scheme}://…): check it")
            if sender.notify(title=message.subject, body=message.body):
                done.add(index)
            else:
                failed.append(f"URL {index + 1} ({scheme}://…)")
        if len(self.delivered) > REMEMBERED:
            self.delivered.pop(next(iter(self.delivered)))
        if failed:
            raise TemporaryFailure(f"Apprise could not notify {', '.join(failed)}")
        self.delivered.pop(message.id, None)


CHANNEL = AppriseChannel
