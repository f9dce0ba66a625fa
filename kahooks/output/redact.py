"""Keeping secrets out of what kahooks prints, logs and reports: the one helper, used on every way out.

A check's command line and a channel's settings can carry credentials: a password or a token in a
URL (`https://user:pw@host/`, `https://TOKEN@host/`, `?access_token=…`, `&sig=…`), a header
(`--header 'Authorization: Bearer …'`, `X-Api-Key: …`, `Cookie: …`), a webhook whose path is the
secret (`https://hooks.slack.com/services/T…/B…/…`, a ping URL ending in a UUID). `text` hides them in
any line; `words` in a command line; `origin` reduces a URL to scheme://host[:port]/… where even its
path may be the secret (a redirect's target).

The ways out that go through here (each has a test in tests/faults):
- a check's line and usage error (hooks/check_cli.py: `text`, `in_argv`);
- every log record, text and json (kahooks/output/logs.py formatters);
- everything the daemon reports: status.json, `kahooks status`, /metrics (daemon/snapshot.py `redacted`,
  the check's `run` through `words` in daemon/reporting.py);
- `[checks.NAME] run` errors quoting the command line (daemon/settings.py: `in_argv`);
- `kahooks validate|serve|status` configuration and start-up errors (admin/kahooks_cli.py);
- ka-notify's complaints, on stderr and to syslog (hooks/notify_cli.py `_complain`), and its spool
  listing (kahooks/notify/spooltools.py `describe`, dead letters written before this rule included);
- a dead letter's `last_error` in the spool (kahooks/notify/spool.py `bury`) and the ALERT event a failing
  channel raises for the other channels (kahooks/notify/delivery.py `raise_alert`);
- an HTTP channel's error: the answer's text (`text`), a redirect's target (`origin`) and an
  Alertmanager member (`url`) (notifiers/_http.py, notifiers/alertmanager.py).

What stays is what an operator needs to tell things apart and to find the setting: scheme, host,
port, user name, path (but its long random segments), parameter and header names.

No `re` at import, and none on a line with nothing to hide: a check's start-up never pays for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

HIDDEN = "***"
# A name (query parameter, header, option, key=value, JSON key) is a credential's when, lower-cased
# with '-' and '_' removed, it contains one of these...
SECRET_WORDS = ("token", "secret", "passw", "pwd", "auth", "cookie", "session", "credential", "apikey",
                "accesskey", "privatekey", "signature", "bearer")
# ...or ends with one of these (api_key, X-Api-Key, subscription-key, Azure's sig).
SECRET_ENDINGS = ("key", "sig")
# A line without "://" nor any of these (lower-cased) has nothing to hide: returned as it is, no `re`.
HINTS = ("token", "secret", "pass", "pwd", "auth", "cookie", "session", "credential", "key", "sig", "bearer")
# Hosts whose whole path is the credential: only scheme and host are shown.
WEBHOOK_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "outlook.office.com",
                 "outlook.office365.com", "api.telegram.org", "hooks.zapier.com", "maker.ifttt.com",
                 "hc-ping.com", "hchk.io")
WEBHOOK_DOMAINS = (".webhook.office.com", ".logic.azure.com")
AUTH_SCHEMES = ("basic", "bearer", "digest", "token", "negotiate", "ntlm", "hoba", "mutual", "aws4-hmac-sha256")
# A path segment this long with letters and digits mixed is taken for a random token (a webhook's
# key, a healthchecks.io UUID): hidden. A readable name rarely carries 3 digits in 20 characters.
RANDOM_SEGMENT = 20


def is_secret_name(name: str) -> bool:
    """Does a parameter, header or option of this name hold a credential?"""
    plain = name.lower().lstrip("-").replace("-", "").replace("_", "").replace(".", "")
    return bool(plain) and (any(word in plain for word in SECRET_WORDS) or plain.endswith(SECRET_ENDINGS))


def url(text: str) -> str:
    """One URL with its credentials hidden: password (or a user name standing alone: a token),
    a webhook host's path, long random path segments, secret query and fragment parameters."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    cut = min((index for index in (rest.find(mark) for mark in "/?#") if index >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{HIDDEN}@{hostport}" if colon else f"{HIDDEN}@{hostport}"
    path, query_mark, query = _split_path(tail)
    host = hostport.rpartition(":")[0] if hostport.count(":") == 1 else hostport
    host = host.lower().strip("[]")
    if path.strip("/") and (host in WEBHOOK_HOSTS or host.endswith(WEBHOOK_DOMAINS)):
        path = f"/{HIDDEN}"
    else:
        path = "/".join(HIDDEN if _looks_random(segment) else segment for segment in path.split("/"))
    return f"{scheme}://{authority}{path}{query_mark}{_params(query)}"


def origin(text: str) -> str:
    """scheme://host[:port]/ of a URL, the rest shown as …: a webhook's path and query are its secret.
    '?' for anything that is no URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "?"
    if not parts.scheme or not host:
        return "?"
    host = f"[{host}]" if ":" in host else host
    rest = "…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}/{rest}"


def _split_path(tail: str) -> tuple[str, str, str]:
    """'/p?q#f' -> ('/p', '?', 'q#f'); the query and fragment are both name=value lists."""
    cut = min((index for index in (tail.find("?"), tail.find("#")) if index >= 0), default=-1)
    if cut < 0:
        return tail, "", ""
    return tail[:cut], tail[cut], tail[cut + 1:]


def _params(query: str) -> str:
    """name=value pairs (split on & ; #) with secret values hidden; other text kept as it is."""
    out, start = [], 0
    for index, char in enumerate(query + "&"):
        if char in "&;#":
            name, equals, _ = query[start:index].partition("=")
            out.append(f"{name}={HIDDEN}" if equals and is_secret_name(name) else query[start:index])
            out.append(char)
            start = index + 1
    return "".join(out)[:-1]


def _looks_random(segment: str) -> bool:
    if len(segment) < RANDOM_SEGMENT or "." in segment:
        return False
    digits = sum(char.isdigit() for char in segment)
    letters = sum(char.isalpha() for char in segment)
    return digits >= 3 and letters >= 3 and all(char.isalnum() or char in "-_:~=+%" for char in segment)


def header(text: str) -> str:
    """'Name: value' with the whole value hidden when the name says it is a credential; a malformed
    'Name value' of a secret name is hidden all the same."""
    name, colon, _ = text.partition(":")
    if not colon:
        first, space, _ = text.strip().partition(" ")
        return f"{first} {HIDDEN}" if space and is_secret_name(first) else text
    return f"{name}: {HIDDEN}" if is_secret_name(name) else text


HEADER_OPTIONS = ("--header", "-H")
USER_OPTIONS = ("--user", "-u")


def words(argv: Sequence[str]) -> list[str]:
    """A command line with its secrets hidden: header values, the value of an option named for a
    secret (--password X, --api-key=X), a curl-style `-u user:password`, and URLs."""
    shown: list[str] = []
    previous = ""
    # A secret header's value given as words of its own after its name (`-H X-Api-Key: VALUE`): 1 hides the
    # value's first word, 2 the credential after a scheme (`Authorization: Bearer TOKEN`).
    hide = 0
    for word in argv:
        name, equals, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if hide:
            shown.append(HIDDEN)
            hide = 2 if hide == 1 and word.lower() in AUTH_SCHEMES else 0
        elif previous in HEADER_OPTIONS and word.endswith(":") and " " not in word and is_secret_name(word[:-1]):
            shown.append(word)
            hide = 1
        elif previous in HEADER_OPTIONS:
            shown.append(header(word))
        elif previous in USER_OPTIONS and ":" in word:
            shown.append(word.partition(":")[0] + ":" + HIDDEN)
        elif previous.startswith("-") and "=" not in previous and is_secret_name(previous):
            shown.append(HIDDEN)
        elif equals and name in HEADER_OPTIONS:
            shown.append(f"{name}={header(value)}")
        elif equals and is_secret_name(name):
            shown.append(f"{name}={HIDDEN}")
        else:
            shown.append(text(word))
        previous = word if word.startswith("-") else ""
    return shown


def text(line: str) -> str:
    """A line of any text with the credentials in it hidden (URLs, name=value, headers, JSON pairs)."""
    lower = line.lower()
    if "://" not in line and not any(hint in lower for hint in HINTS):
        return line  # the usual case: no `re`
    patterns = _patterns()
    line = patterns["url"].sub(_url_match, line)
    line = patterns["authorization"].sub(lambda m: f"{m[1]}{m[2] or ''}{HIDDEN}", line)
    line = patterns["cookie"].sub(lambda m: f"{m[1]}{HIDDEN}", line)
    line = patterns["pair"].sub(lambda m: f"{m[1]}{m[2]}{m[3]}{HIDDEN}{m[3]}" if is_secret_name(m[1].strip("'\""))
                                else m[0], line)
    line = patterns["assign"].sub(lambda m: f"{m[1]}={HIDDEN}" if is_secret_name(m[1])
                                  and m[2].lower() not in AUTH_SCHEMES else m[0], line)
    return patterns["header"].sub(_header_match, line)


def in_argv(message: str, argv: Sequence[str]) -> str:
    """A message about a command line (a usage error quoting a word of it) with what `words` hides
    in that command line hidden here too, wherever it is quoted whole, then `text`."""
    import re

    for word, shown in sorted(zip(argv, words(argv)), key=lambda pair: -len(pair[0])):
        if word == shown or not word:
            continue
        for form in {word, repr(word)[1:-1]}:
            message = re.sub(rf"(?<![^\s'\"=:]){re.escape(form)}(?![^\s'\",:])", lambda _m: shown, message)
    return text(message)


_compiled: dict[str, Any] = {}


def _patterns() -> dict[str, Any]:
    if not _compiled:
        import re

        schemes = "|".join(AUTH_SCHEMES)
        _compiled.update(
            # A URL ends at white space or a quote; trailing punctuation of the sentence is not its own.
            url=re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+"),
            authorization=re.compile(rf"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?!(?:{schemes})\s+\*\*\*|\*\*\*)"
                                     rf"((?:{schemes})\s+)?[^\s'\",]+"),
            cookie=re.compile(r"(?i)\b((?:set-)?cookie\s*:\s*)(?!\*\*\*)(?:[^\s'\";]+;\s*)*[^\s'\";]+"),
            # 'name': 'value' and "name": "value" (a Python repr, JSON).
            pair=re.compile(r"""(['"][\w.-]+['"])(\s*:\s*)(['"])(?!\*\*\*)(?:(?!\3).)*\3"""),
            # name=value: a query parameter, a --password=..., KEY=value of an environment.
            assign=re.compile(r"""(?<![\w.-])([\w.-]+)=(?!['"]?\*\*\*)("[^"]*"|'[^']*'|[^\s&;,'"#]+)"""),
            # X-Api-Key: value, PRIVATE-TOKEN: value: a header name has a dash.
            header=re.compile(r"(?i)(?<![\w./@-])([a-z][a-z0-9]*(?:-[a-z0-9]+)+\s*:\s*)(?!\*\*\*)([^\s'\",]+)"),
        )
    return _compiled


def _header_match(match: Any) -> str:
    name, value = match[1], match[2]
    if not is_secret_name(name.partition(":")[0]) or value.isdigit() or value.lower() in AUTH_SCHEMES:
        return match[0]  # a host:port, or an Authorization scheme (its credential is hidden already)
    return f"{name}{HIDDEN}"


def _url_match(match: Any) -> str:
    found = match[0]
    kept = found.rstrip(".,;:)]}")
    return url(kept) + found[len(kept):]
