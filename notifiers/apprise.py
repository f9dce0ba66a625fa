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
worker's life). A URL Apprise cannot parse is a permanent failure.

Bounds: Apprise reads whole answers into memory and waits as long as each service lets it, and
the worker may be `kahooks serve` itself. So each delivery runs Apprise in a child process
(`_apprise_send`, through kahooks.system.commands): at most `timeout` seconds for all its URLs (30 by
default; then it is stopped, and the URLs it had not done are retried), at most MEMORY bytes of
address space, and only the tail of its output kept.
"""

from __future__ import annotations

from kahooks.notifiers.base import Channel, ChannelConfigError, Contract, Message, PermanentFailure, TemporaryFailure

REMEMBERED = 1000  # message ids whose successful URLs are remembered for retries
MEMORY = 512 * 1024 * 1024  # the child's address space: Apprise and its libraries take about 60 MB
TEXT_LIMIT = 32768  # of the subject and of the body: they travel in the child's environment


class AppriseChannel(Channel):
    kind = "apprise"
    SETTINGS = frozenset({"urls", "urls_file", "timeout"})
    # Apprise tells "failed", never why: a refusal is retried like an outage. Only a URL Apprise cannot
    # use at all is permanent (a configuration error, not an endpoint's answer).
    CONTRACT = Contract("http", {"urls": ["json://{host}:{port}/hook"], "timeout": "{timeout}"},
                        failures={"unreachable": "temporary", "hang": "temporary", "later": "temporary",
                                  "never": "temporary"})

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
        self.timeout = self.number(settings, "timeout", 30.0)
        self.delivered: dict[str, set[int]] = {}  # message id -> indexes of URLs that took it

    def send(self, message: Message) -> None:
        done = self.delivered.setdefault(message.id, set())
        pending = [index for index in range(len(self.urls)) if index not in done]
        outcomes, stopped = self._notify(pending, message)
        done.update(index for index, outcome in outcomes.items() if outcome == "ok")
        if len(self.delivered) > REMEMBERED:
            self.delivered.pop(next(iter(self.delivered)))
        unusable = [index for index, outcome in outcomes.items() if outcome == "unusable"]
        if unusable:
            raise PermanentFailure(f"Apprise cannot use {self._named(unusable)}: check it")
        failed = [index for index in pending if outcomes.get(index) != "ok"]
        if failed:
            raise TemporaryFailure(f"Apprise could not notify {self._named(failed)}{stopped}")
        self.delivered.pop(message.id, None)

    def _named(self, indexes: list[int]) -> str:
        # The scheme alone: the rest of an Apprise URL is its token.
        return ", ".join(f"URL {index + 1} ({self.urls[index].partition('://')[0]}://…)" for index in indexes)

    def _notify(self, indexes: list[int], message: Message) -> tuple[dict[int, str], str]:
        """Run Apprise in a bounded child for these URLs: ({index: ok|failed|unusable}, why it stopped early)."""
        import json
        import os
        import sys

        from kahooks.errors import os_words
        from kahooks.notifiers._apprise_send import MARK, VARIABLE
        from kahooks.system import commands

        request = {"urls": self.urls, "indexes": indexes, "title": message.subject[:TEXT_LIMIT],
                   "body": message.body[:TEXT_LIMIT], "memory": MEMORY}
        try:
            finished = commands.run([sys.executable, "-P", "-m", "kahooks.notifiers._apprise_send"], self.timeout,
                                    env={**os.environ, VARIABLE: json.dumps(request)}, sweep=False)
        except OSError as exc:
            raise TemporaryFailure(f"cannot start Apprise: {os_words(exc)}") from None
        outcomes: dict[int, str] = {}
        for line in finished.output.splitlines():
            words = line.split()
            if words == [MARK, "missing"]:
                raise TemporaryFailure("the apprise library is not installed (pip install apprise)")
            if len(words) == 3 and words[0] == MARK and words[1].isdigit() and int(words[1]) in indexes:
                outcomes[int(words[1])] = words[2]
        # Never the child's output itself: Apprise's errors can carry a URL, token and all.
        if finished.timed_out:
            return outcomes, f" within {self.timeout:g} s (stopped)"
        if finished.code != 0:
            return outcomes, f" (Apprise exited {finished.code})"
        return outcomes, ""


CHANNEL = AppriseChannel
