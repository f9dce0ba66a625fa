"""kahooks.toml: loading, validating with key paths and line numbers, and rule matching.

Every problem is collected, not just the first, and reported as
`FILE:LINE: key.path: what is wrong`. Channel tables are validated by the
channel classes themselves (passed in by the caller, so the core never imports
notifiers); message templates are compiled and rendered against a sample event,
so an undefined variable is a config error, not an empty string at 3 a.m.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path

from kahooks.errors import KahooksError
from kahooks.event import RULE_STATES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

DEFAULT_PATH = "/etc/kahooks/kahooks.toml"
DEFAULT_SPOOL = "/var/spool/kahooks"
DELIVERY_DEFAULTS = {
    "max_attempts": 12,        # about an hour of retries with a 300 s backoff cap
    "max_age": 86400.0,        # seconds an undelivered message is kept before the dead-letter directory
    "backoff_initial": 1.0,
    "backoff_max": 300.0,
    "flap_window": 10.0,       # transitions closer than this are summarised; 0 turns it off
    "worker_idle_exit": 60.0,  # a worker started by the hook exits after this long with nothing to do
}
# (lowest, highest, whole) for each: a year of max_age, a day of backoff, an hour of flap window.
DELIVERY_RANGES = {"max_attempts": (1, 1000, True), "max_age": (0, 366 * 86400, False),
                   "backoff_initial": (0, 86400, False), "backoff_max": (0, 86400, False),
                   "flap_window": (0, 3600, False), "worker_idle_exit": (0, 86400, False)}


class Problem:
    __slots__ = ("key", "message", "line")

    def __init__(self, key: str, message: str, line: int | None = None) -> None:
        self.key, self.message, self.line = key, message, line


class ConfigError(KahooksError):
    """An invalid configuration: one line per problem, each with its key path (and line)."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}:{problem.line}: {problem.key}: {problem.message}" if problem.line
                else f"{self.path}: {problem.key}: {problem.message}" for problem in self.problems]


class ChannelConfigError(KahooksError):
    """Raised by a channel constructor: `key` is the option within the channel's table."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Rule:
    __slots__ = ("instances", "states", "channels")

    def __init__(self, instances: list[str], states: list[str], channels: list[str]) -> None:
        self.instances, self.states, self.channels = instances, states, channels

    def matches(self, name: str, state: str) -> bool:
        return state in self.states and any(fnmatch.fnmatchcase(name, pattern) for pattern in self.instances)


class Config:
    """A validated configuration. `channels` maps names to built channel objects."""

    def __init__(self, path: str, host: str, spool_dir: str, delivery: dict[str, float],
                 instances: dict[str, dict[str, Any]], channels: dict[str, Any], rules: list[Rule],
                 sections: dict[str, Any] | None = None) -> None:
        self.path = path
        self.host = host
        self.spool_dir = spool_dir
        self.delivery = delivery
        self.instances = instances
        self.channels = channels
        self.rules = rules
        # Tables validated by their own parsers (the daemon's [serve] and [checks]), by name.
        self.sections = sections or {}

    def channels_for(self, name: str, state: str) -> list[str]:
        """Channel names the rules pick for this instance and state, in rule order, each once."""
        picked: list[str] = []
        for rule in self.rules:
            if rule.matches(name, state):
                picked.extend(channel for channel in rule.channels if channel not in picked)
        return picked

    def vips(self, name: str) -> list[str]:
        return list(self.instances.get(name, {}).get("vips", []))


def read_toml(path: str) -> dict[str, Any]:
    import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(path, [Problem("file", "does not exist")]) from None
    except PermissionError:
        raise ConfigError(path, [Problem("file", "cannot be read (permission denied)")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [Problem("syntax", str(exc))]) from None


def spool_dir_of(path: str) -> str:
    """The spool directory a config names, or the default when it cannot be read (events are never dropped)."""
    try:
        value = read_toml(path).get("spool_dir", DEFAULT_SPOOL)
        return value if isinstance(value, str) and value else DEFAULT_SPOOL
    except ConfigError:
        return DEFAULT_SPOOL


# Tables the daemon owns: ka-notify accepts them unread; `kahooks serve` and `validate` parse them.
DAEMON_SECTIONS = ("serve", "checks")


def load(path: str, channel_types: Mapping[str, Callable[..., Any]],
         sections: Mapping[str, Callable[..., Any]] | None = None) -> Config:
    """Read and validate `path`; raise ConfigError listing every problem.

    `sections` maps a top-level table name to a parser called as
    parser(value, problem, data) (value None when the table is absent); what it
    returns lands in Config.sections. Without one, the daemon's tables are accepted unread.
    """
    data = read_toml(path)
    text = Path(path).read_text(errors="replace")
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(key, message, locate(text, key)))

    known = {"host", "spool_dir", "delivery", "instances", "channels", "rules", *DAEMON_SECTIONS,
             *(sections or {})}
    for key in data:
        if key not in known:
            problem(key, f"unknown setting (known: {', '.join(sorted(known))})")
    host = data.get("host", os.uname().nodename)
    if not isinstance(host, str) or not host:
        problem("host", "must be a non-empty string")
    spool_dir = data.get("spool_dir", DEFAULT_SPOOL)
    if not isinstance(spool_dir, str) or not spool_dir.startswith("/"):
        problem("spool_dir", "must be an absolute path")
    delivery = _delivery(data.get("delivery", {}), problem)
    instances = _instances(data.get("instances", {}), problem)
    channels = _channels(data.get("channels", {}), channel_types, problem, Path(path).parent)
    rules = _rules(data.get("rules", []), set(data.get("channels", {}) or {}), problem)
    parsed = {name: parser(data.get(name), problem, data) for name, parser in (sections or {}).items()}
    if problems:
        raise ConfigError(path, problems)
    return Config(path, host, spool_dir, delivery, instances, channels, rules, parsed)


def _delivery(table: Any, problem: Callable[[str, str], None]) -> dict[str, float]:
    values = dict(DELIVERY_DEFAULTS)
    if not isinstance(table, dict):
        problem("delivery", "must be a table")
        return values
    from kahooks.options import number_problem

    for key, value in table.items():
        if key not in DELIVERY_DEFAULTS:
            problem(f"delivery.{key}", f"unknown setting (known: {', '.join(DELIVERY_DEFAULTS)})")
            continue
        low, high, whole = DELIVERY_RANGES[key]
        why = number_problem(value, low, high, whole)
        if why:
            problem(f"delivery.{key}", why)
        else:
            values[key] = value
    return values


def _instances(table: Any, problem: Callable[[str, str], None]) -> dict[str, dict[str, Any]]:
    import ipaddress

    if not isinstance(table, dict):
        problem("instances", "must be a table of [instances.NAME]")
        return {}
    for name, settings in table.items():
        if not isinstance(settings, dict):
            problem(f"instances.{name}", "must be a table")
            continue
        for key, value in settings.items():
            if key != "vips":
                problem(f"instances.{name}.{key}", "unknown setting (known: vips)")
            elif not isinstance(value, list):
                problem(f"instances.{name}.vips", "must be a list of IP addresses")
            else:
                for index, vip in enumerate(value):
                    try:  # an address, or address/prefix as keepalived's virtual_ipaddress takes it
                        ipaddress.ip_interface(vip if isinstance(vip, str) else "")
                    except ValueError:
                        problem(f"instances.{name}.vips[{index}]",
                                f"{vip!r} is not an IP address (or ADDRESS/PREFIX with a valid prefix)")
    return table


def _channels(table: Any, channel_types: Mapping[str, Callable[..., Any]],
              problem: Callable[[str, str], None], base: Path) -> dict[str, Any]:
    built: dict[str, Any] = {}
    if not isinstance(table, dict):
        problem("channels", "must be a table of [channels.NAME]")
        return built
    import re

    for name, settings in table.items():
        key = f"channels.{name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            # The name is a directory of the spool (queue/NAME): no slashes, no dot names.
            problem(key, "a channel name may hold letters, digits, '_', '.' and '-' (64 at most)")
            continue
        if not isinstance(settings, dict):
            problem(key, "must be a table")
            continue
        kind: Any = settings.get("type")
        if not isinstance(kind, str) or kind not in channel_types:
            problem(f"{key}.type", f"{kind!r} is not a channel type (known: {', '.join(sorted(channel_types))})")
            continue
        try:
            built[name] = channel_types[kind](name, settings, base)
        except ChannelConfigError as exc:
            problem(f"{key}.{exc.key}" if exc.key else key, str(exc))
    return built


def _rules(rules: Any, channel_names: set[str], problem: Callable[[str, str], None]) -> list[Rule]:
    parsed: list[Rule] = []
    if not isinstance(rules, list):
        problem("rules", "must be a list of [[rules]] tables")
        return parsed
    for index, rule in enumerate(rules):
        key = f"rules[{index}]"
        if not isinstance(rule, dict):
            problem(key, "must be a table")
            continue
        for extra in set(rule) - {"instances", "states", "channels"}:
            problem(f"{key}.{extra}", "unknown setting (known: instances, states, channels)")
        instances = rule.get("instances", ["*"])
        states = rule.get("states", list(RULE_STATES))
        channels: Any = rule.get("channels")
        if not _string_list(instances):
            problem(f"{key}.instances", "must be a list of instance names or globs")
        if not _string_list(states) or any(state not in RULE_STATES for state in states):
            problem(f"{key}.states", f"must be a list of states from {', '.join(RULE_STATES)}")
        if not _string_list(channels) or not channels:
            problem(f"{key}.channels", "must be a non-empty list of channel names")
        else:
            for channel in channels:
                if channel not in channel_names:
                    problem(f"{key}.channels", f"no channel named {channel!r}")
        parsed.append(Rule(instances if _string_list(instances) else [],
                           states if _string_list(states) else [],
                           channels if _string_list(channels) else []))
    return parsed


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


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
    """A secret from a file that only its owner (and group) may read; never echoes the secret."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ChannelConfigError("", f"secret file {path}: {exc.strerror}") from None
    if info.st_mode & stat.S_IROTH:
        raise ChannelConfigError("", f"secret file {path} is world-readable: chmod o-r {path}")
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ChannelConfigError("", f"secret file {path}: {exc.strerror}") from None
