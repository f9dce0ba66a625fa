"""Reading kahooks.toml as a file: parsing it, finding the line a key is on, and reading secret files.

Apart from validation (kahooks.settings.config): these know TOML text and files, not what the settings mean.
"""

from __future__ import annotations

import os
import stat

from kahooks.errors import ChannelConfigError, ConfigError, Problem, os_words
from kahooks.files import safefs

TYPE_CHECKING = False  # typing costs ka-notify's handler start-up; only mypy needs it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_TOML = 4 * 1024 * 1024  # a kahooks.toml or drop-in is kilobytes; this much is a mistake, not a config
MAX_SECRET = 64 * 1024


def read_toml(path: str) -> dict[str, Any]:
    """The TOML at `path`, read through safefs (no planted link, no FIFO waited on, capped)."""
    import tomllib

    from kahooks.files import safefs

    try:
        # Non-blocking and regular files only: a FIFO put in the config's place must not hang a reload.
        return tomllib.loads(safefs.read_bytes(path, MAX_TOML).decode("utf-8"))
    except FileNotFoundError:
        raise config_error(path, "file", "does not exist") from None
    except PermissionError:
        raise config_error(path, "file", "cannot be read (permission denied)") from None
    except safefs.UnsafeFile as exc:
        raise config_error(path, "file", str(exc).removeprefix(f"{path} ").removeprefix(f"{path}: ")) from None
    except UnicodeDecodeError as exc:
        raise config_error(path, "syntax", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise config_error(path, "syntax", str(exc)) from None
    except OSError as exc:
        raise config_error(path, "file", f"cannot be read ({os_words(exc)})") from None


def config_error(path: str, key: str, message: str) -> ConfigError:
    return ConfigError(path, [Problem(key, message)])


def locate(text: str, key: str) -> int | None:
    """The line a dotted key path is set on, found in the TOML text (None when unsure).

    Good enough for an error message: finds each table header in turn, then the
    key's first line after it; `rules[2]` is the third [[rules]] header.
    """
    import re

    tokens = re.findall(r"\[\d+\]|[^.\[\]]+", key)
    lines = text.splitlines()
    table: list[str] = []
    start, index, matched = 0, 0, False
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if following.startswith("["):
            header = f"[[{'.'.join([*table, token])}]]"
            headers = [number for number, line in enumerate(lines) if line.strip() == header]
            wanted = int(following[1:-1])
            if wanted < len(headers):
                start, matched = headers[wanted], True
                table.append(token)
                index += 2
                continue
        header = f"[{'.'.join([*table, token])}]"
        found = _find(lines, start, lambda line: line.strip() == header)
        last_name = all(later.startswith("[") for later in tokens[index + 1:])
        if found is None and last_name:  # only the last name is a `key = value` line (vips in vips[0])
            # Within this table only: a key the table lacks must not be blamed on another table's line.
            found = _find(lines, start, lambda line: line.split("=")[0].strip().strip('"') == token,
                          stop_at_header=matched)
        if found is not None:
            start, matched = found, True
        table.append(token)  # a part of a dotted header such as [instances.VI_1] has no line of its own
        index += 1
    return start + 1 if matched else None


def _find(lines: list[str], start: int, test: Callable[[str], bool], stop_at_header: bool = False) -> int | None:
    for index in range(start, len(lines)):
        if stop_at_header and index > start and lines[index].lstrip().startswith("["):
            return None
        if test(lines[index]):
            return index
    return None


def secret_from_file(path: str) -> str:
    """A secret from a regular file that only its owner (and group) may read, through safefs; never echoes it."""
    try:
        fd = safefs.open_regular(path)
        try:
            if os.fstat(fd).st_mode & stat.S_IROTH:
                raise ChannelConfigError("", f"secret file {path} is world-readable: chmod o-r {path}")
            return safefs.read_fd(fd, MAX_SECRET, path).decode("utf-8", errors="replace").strip()
        finally:
            os.close(fd)
    except safefs.UnsafeFile as exc:
        raise ChannelConfigError("", f"secret file {exc}") from None
    except OSError as exc:
        raise ChannelConfigError("", f"secret file {path}: {os_words(exc)}") from None
