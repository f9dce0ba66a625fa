"""The one TLS client context of kahooks: checks (port, http) and channels (email, slack, webhook).

Verifying by default, against the system CAs or a `ca` file; verification off only when
asked (`--insecure`, `insecure = true`). ssl is imported when a context is made, never
at start-up of a program that does not use TLS.
"""

from __future__ import annotations

from kahooks.errors import UsageError, os_words

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl


def client_context(insecure: bool = False, ca_file: str | None = None, what: str = "--ca") -> ssl.SSLContext:
    """A verifying client context (system CAs or `ca_file`); no verification when `insecure`.

    A CA file that cannot be loaded is a UsageError naming `what` (the option or setting).
    """
    import ssl

    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"{what} {ca_file}: cannot load ({os_words(exc)})") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
