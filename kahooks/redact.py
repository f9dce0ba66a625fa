"""Keeping secrets out of what kahooks prints, logs and writes to world-readable files.

A check's command line can carry credentials: `--header 'Authorization: Bearer …'`,
a password in a URL (`https://user:pw@host/`). What goes to status.json, syslog
and the screen passes through here first.
"""

from __future__ import annotations

HIDDEN = "***"
SECRET_HEADER_WORDS = ("auth", "token", "key", "cookie", "secret", "pass", "session")


def url(text: str) -> str:
    """The URL with any password in it replaced by ***; other text unchanged."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{HIDDEN}@{host}{slash}{tail}"


def header(text: str) -> str:
    """'Name: value' with the value hidden when the name says it is a credential."""
    name, colon, _ = text.partition(":")
    if colon and any(word in name.lower() for word in SECRET_HEADER_WORDS):
        return f"{name}: {HIDDEN}"
    return text


def words(argv: list[str]) -> list[str]:
    """A command line with header values and URL passwords hidden."""
    shown: list[str] = []
    after_header = False
    for word in argv:
        if after_header:
            shown.append(header(word))
        elif word.startswith("--header="):
            shown.append("--header=" + header(word.removeprefix("--header=")))
        else:
            shown.append(text(word))
        after_header = word == "--header"
    return shown


def text(line: str) -> str:
    """Every URL in a line of text with its password hidden."""
    if "@" not in line or "://" not in line:
        return line
    return " ".join(url(part) for part in line.split(" "))
