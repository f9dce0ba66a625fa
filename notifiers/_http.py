"""HTTP delivery shared by the slack and webhook channels: one POST, its outcome classified.

2xx is delivered. 429, 408 and 5xx are retried (Retry-After honoured, the worker
caps it); a timeout or a refused connection is retried; any other 4xx, and a
redirect (the URL is wrong, and a POST must not be silently turned into a GET),
is permanent. Built on http.client, with one deadline for the whole exchange.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING

from kahooks.errors import os_words
from kahooks.notifiers.base import ChannelConfigError, PermanentFailure, TemporaryFailure

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


BODY_LIMIT = 65536  # what is kept of an answer: Slack says "ok", a webhook a few words


def post(url: str, timeout: float, *, json_body: Any = None, data: bytes | None = None,
         headers: dict[str, str] | None = None, method: str = "POST", verify: bool | str = True,
         expect_text: str | None = None) -> str:
    """Send one request; return the response text on success, raise Temporary/PermanentFailure otherwise.

    `timeout` bounds the whole exchange (connect, TLS, sending, the status line, headers and
    body): a timer shuts the socket at the deadline, so an endpoint that trickles its answer a
    byte at a time cannot hold the channel. At most BODY_LIMIT bytes of the answer are read.
    HTTPS_PROXY/HTTP_PROXY and NO_PROXY are honoured, as curl and requests do.
    """
    import http.client
    import json
    import socket
    import ssl
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    body = json.dumps(json_body).encode() if json_body is not None else (data or b"")
    all_headers = {"User-Agent": USER_AGENT, "Connection": "close",
                   **({"Content-Type": "application/json"} if json_body is not None else {}), **(headers or {})}
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = _proxy_for(parts.scheme, host)
    if secure:
        from kahooks.errors import UsageError
        from kahooks.tls import client_context

        try:
            context = client_context(verify is False, verify if isinstance(verify, str) else None, what="ca")
        except UsageError as exc:
            raise PermanentFailure(str(exc)) from None
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            proxy[0] if proxy else host, proxy[1] if proxy else port, timeout=timeout, context=context)
        if proxy:
            connection.set_tunnel(host, port)
    else:
        connection = http.client.HTTPConnection(proxy[0] if proxy else host, proxy[1] if proxy else port,
                                                timeout=timeout)
        if proxy:
            target = url  # a plain-HTTP proxy takes the absolute URL
    expired = threading.Event()

    def abort() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, abort)
    timer.daemon = True
    timer.start()
    try:
        connection.request(method, target, body=body, headers=all_headers)
        response = connection.getresponse()
        status, location = response.status, response.getheader("Location", "?")
        retry_header = response.getheader("Retry-After")
        raw = response.read(BODY_LIMIT)
    except ssl.SSLCertVerificationError as exc:
        raise TemporaryFailure(f"TLS error: certificate not trusted: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise TemporaryFailure(f"TLS error: {exc.reason or exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            raise TemporaryFailure(f"no complete answer within {timeout:g} s") from None
        if isinstance(exc, http.client.HTTPException):
            raise TemporaryFailure(f"bad answer: {type(exc).__name__} {exc}".strip()) from None
        raise TemporaryFailure(f"cannot connect: {os_words(exc)}") from None
    finally:
        timer.cancel()
        connection.close()
    if expired.is_set():
        raise TemporaryFailure(f"no complete answer within {timeout:g} s")
    text = raw.decode("utf-8", "replace").strip()
    detail = f"HTTP {status}" + (f" {text[:200]}" if text else "")
    if 200 <= status < 300:
        if expect_text is not None and text != expect_text:
            # Slack's contract is 200 "ok"; anything else was not a delivery we can vouch for.
            raise TemporaryFailure(f"unexpected answer: {detail}")
        return text
    if status in RETRYABLE or status >= 500:
        raise TemporaryFailure(detail, retry_after(retry_header))
    if 300 <= status < 400:
        raise PermanentFailure(f"{detail}: redirected to {location}; fix the URL")
    raise PermanentFailure(detail)


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """(host, port) of the proxy the environment names for this URL, None for a direct connection."""
    from urllib.parse import urlsplit

    # proxy_bypass_environment: in CPython's urllib.request since 3.x, not in typeshed.
    from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

    proxies = getproxies_environment()
    address = proxies.get(scheme)
    if not address or proxy_bypass_environment(host, proxies):
        return None
    parts = urlsplit(address if "://" in address else f"http://{address}")
    return (parts.hostname or "", parts.port or 8080) if parts.hostname else None
