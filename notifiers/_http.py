"""HTTP delivery shared by the slack, webhook and alertmanager channels: one request, its outcome classified.

2xx is delivered. 429, 408, 407 (a proxy's) and 5xx are retried (Retry-After honoured, the worker
caps it); a timeout or a refused connection is retried; any other 4xx, and a
redirect (the URL is wrong, and a POST must not be silently turned into a GET),
is permanent. The transport is requests (`_session`, imported when a channel first
sends): one session per channel, one deadline over each whole exchange, the answer
capped, proxies from HTTPS_PROXY/HTTP_PROXY/NO_PROXY. No failure names the URL: a
webhook's path, a token in its query and a password in it are all secrets.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING

from kahooks.notifiers.base import ChannelConfigError, PermanentFailure, TemporaryFailure
from kahooks.output import redact

if TYPE_CHECKING:
    from typing import Any

# 407 is the proxy's own refusal, not the endpoint's: as over HTTPS (a refused tunnel), it is retried.
RETRYABLE = {407, 408, 425, 429}


def check_url(url: str, key: str = "url") -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChannelConfigError(key, "must be an http:// or https:// URL")
    return url


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Http:
    """One channel's HTTP client: a requests session made on first use and kept (connections stay
    alive between deliveries); each request bounded by `timeout` seconds in all (see _session)."""

    def __init__(self, timeout: float, verify: bool | str = True) -> None:
        self.timeout = timeout
        self.verify = verify
        self._session: Any = None

    def post(self, url: str, *, json_body: Any = None, data: bytes | None = None,
             headers: dict[str, str] | None = None, method: str = "POST", expect_text: str | None = None) -> str:
        """Send one request; return the response text on success, raise Temporary/PermanentFailure otherwise."""
        import json

        from kahooks.notifiers import _session  # requests: only once a channel sends

        if self._session is None:
            self._session = _session.session(self.verify)
        body = json.dumps(json_body).encode() if json_body is not None else (data or b"")
        all_headers = {**({"Content-Type": "application/json"} if json_body is not None else {}), **(headers or {})}
        status, answer_headers, raw = _session.exchange(self._session, method, url, self.timeout, body, all_headers,
                                                          self.verify is not False)
        return outcome(status, answer_headers.get("Retry-After"), answer_headers.get("Location"), raw, expect_text)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def post(url: str, timeout: float, *, json_body: Any = None, data: bytes | None = None,
         headers: dict[str, str] | None = None, method: str = "POST", verify: bool | str = True,
         expect_text: str | None = None) -> str:
    """One request on a session of its own (a channel keeps an `Http` instead)."""
    client = Http(timeout, verify)
    try:
        return client.post(url, json_body=json_body, data=data, headers=headers, method=method,
                           expect_text=expect_text)
    finally:
        client.close()


def outcome(status: int, retry_header: str | None, location: str | None, raw: bytes,
            expect_text: str | None) -> str:
    """The answer's text if it is a delivery; otherwise the Temporary/PermanentFailure it is."""
    text = raw.decode("utf-8", "replace").strip()
    detail = f"HTTP {status}" + (f" {redact.text(text[:200])}" if text else "")
    if 200 <= status < 300:
        if expect_text is not None and text != expect_text:
            # Slack's contract is 200 "ok"; anything else was not a delivery we can vouch for.
            raise TemporaryFailure(f"unexpected answer: {detail}")
        return text
    if status in RETRYABLE or status >= 500:
        raise TemporaryFailure(detail, retry_after(retry_header))
    if 300 <= status < 400:
        raise PermanentFailure(f"{detail}: redirected to {redact.origin(location or '?')}; fix the URL")
    raise PermanentFailure(detail)
