"""HTTP delivery shared by the slack and webhook channels: one POST, its outcome classified.

2xx is delivered. 429, 408 and 5xx are retried (Retry-After honoured, the worker
caps it); a timeout or a refused connection is retried; any other 4xx, and a
redirect (the URL is wrong, and a POST must not be silently turned into a GET),
is permanent. requests is imported here only: never on a check's path.
"""

from __future__ import annotations

import email.utils
import time

from kahooks.notifiers.base import ChannelConfigError, PermanentFailure, TemporaryFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RETRYABLE = {408, 425, 429}
USER_AGENT = "kahooks (keepalived notify)"


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


def post(url: str, timeout: float, *, json_body: Any = None, data: bytes | None = None,
         headers: dict[str, str] | None = None, method: str = "POST", verify: bool | str = True,
         expect_text: str | None = None) -> str:
    """Send one request; return the response text on success, raise Temporary/PermanentFailure otherwise."""
    import requests

    all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    try:
        response = requests.request(method, url, json=json_body, data=data, headers=all_headers,
                                    timeout=timeout, allow_redirects=False, verify=verify)
    except requests.exceptions.SSLError as exc:
        raise TemporaryFailure(f"TLS error: {_short(exc)}") from None
    except requests.exceptions.Timeout:
        raise TemporaryFailure(f"no answer within {timeout:g} s") from None
    except requests.exceptions.ConnectionError as exc:
        raise TemporaryFailure(f"cannot connect: {_short(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise PermanentFailure(f"bad request: {_short(exc)}") from None
    status = response.status_code
    text = response.text.strip()
    detail = f"HTTP {status}" + (f" {text[:200]}" if text else "")
    if 200 <= status < 300:
        if expect_text is not None and text != expect_text:
            # Slack's contract is 200 "ok"; anything else was not a delivery we can vouch for.
            raise TemporaryFailure(f"unexpected answer: {detail}")
        return text
    if status in RETRYABLE or status >= 500:
        raise TemporaryFailure(detail, retry_after(response.headers.get("Retry-After")))
    if 300 <= status < 400:
        raise PermanentFailure(f"{detail}: redirected to {response.headers.get('Location', '?')}; fix the URL")
    raise PermanentFailure(detail)


def _short(exc: Exception) -> str:
    """The innermost reason of a requests/urllib3 error, without its repr noise."""
    reason: Any = exc
    while getattr(reason, "args", None) and isinstance(reason.args[0], Exception):
        reason = reason.args[0]
    inner = getattr(reason, "reason", None)
    if isinstance(inner, Exception):
        reason = inner
    text = str(reason)
    return text.split(": ", 1)[-1] if "object at 0x" in text else text
