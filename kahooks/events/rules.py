"""[[rules]]: which channels an event goes to.

A rule picks its channels for the events it matches, by state and by what the event is about:
- `instances` (names or globs): VRRP instances and groups, and kahooks' alerts about them;
- `virtual_servers`, `real_servers` (HOST:PORT, [IPv6]:PORT, fwmark N, or globs over those):
  LVS events, a virtual server's quorum (VS) and its real servers (RS);
- a rule that names none of them matches every event.
A rule naming only instances is about VRRP and never matches an LVS event, and the other way round.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from kahooks.errors import UsageError
from kahooks.events import lvs
from kahooks.events.event import RULE_STATES

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kahooks.events.event import Event

KEYS = ("instances", "virtual_servers", "real_servers", "states", "channels")


class Rule:
    __slots__ = ("instances", "virtual_servers", "real_servers", "states", "channels")

    def __init__(self, instances: list[str] | None, states: list[str], channels: list[str],
                 virtual_servers: list[str] | None = None, real_servers: list[str] | None = None) -> None:
        self.instances, self.states, self.channels = instances, states, channels
        self.virtual_servers, self.real_servers = virtual_servers, real_servers

    def matches(self, event: Event) -> bool:
        if event.state not in self.states:
            return False
        names_servers = self.virtual_servers is not None or self.real_servers is not None
        if not event.is_lvs:
            if self.instances is None:
                return not names_servers
            return any(fnmatch.fnmatchcase(event.name, pattern) for pattern in self.instances)
        if not names_servers:
            return self.instances is None
        if self.virtual_servers is not None and not _any(event.virtual_server, self.virtual_servers):
            return False
        if self.real_servers is not None and (event.type != "RS" or not _any(event.name, self.real_servers)):
            return False
        return True


def _any(server: str, patterns: list[str]) -> bool:
    try:
        wanted = lvs.key(server)
    except UsageError:
        return False
    return any(fnmatch.fnmatchcase(wanted, pattern) for pattern in patterns)


def _pattern(text: str) -> str:
    """A rule's server as a glob over keys (`*` and `?` only: the brackets of [IPv6] are literal);
    UsageError when it is no server."""
    if not any(char in text for char in "*?"):
        text = lvs.key(text)
    return text.replace("[", "[[]")


def parse_rules(rules: Any, channel_names: set[str], problem: Callable[[str, str], None]) -> list[Rule]:
    parsed: list[Rule] = []
    if not isinstance(rules, list):
        problem("rules", "must be a list of [[rules]] tables")
        return parsed
    for index, rule in enumerate(rules):
        key = f"rules[{index}]"
        if not isinstance(rule, dict):
            problem(key, "must be a table")
            continue
        for extra in set(rule) - set(KEYS):
            problem(f"{key}.{extra}", f"unknown setting (known: {', '.join(KEYS)})")
        instances = rule.get("instances")
        states = rule.get("states", list(RULE_STATES))
        channels: Any = rule.get("channels")
        if instances is not None and not _string_list(instances):
            problem(f"{key}.instances", "must be a list of instance names or globs")
        servers: dict[str, list[str] | None] = {}
        for which in ("virtual_servers", "real_servers"):
            value = rule.get(which)
            servers[which] = None
            if value is None:
                continue
            if not _string_list(value) or not value:
                problem(f"{key}.{which}", "must be a non-empty list of HOST:PORT, [IPv6]:PORT or fwmark N")
                continue
            patterns = []
            for position, text in enumerate(value):
                try:
                    patterns.append(_pattern(text))
                except UsageError as exc:
                    problem(f"{key}.{which}[{position}]", str(exc))
            servers[which] = patterns
        if not _string_list(states) or any(state not in RULE_STATES for state in states):
            problem(f"{key}.states", f"must be a list of states from {', '.join(RULE_STATES)}")
        if not _string_list(channels) or not channels:
            problem(f"{key}.channels", "must be a non-empty list of channel names")
        else:
            for channel in channels:
                if channel not in channel_names:
                    problem(f"{key}.channels", f"no channel named {channel!r}")
        parsed.append(Rule(instances if _string_list(instances) else None,
                           states if _string_list(states) else [],
                           channels if _string_list(channels) else [],
                           servers["virtual_servers"], servers["real_servers"]))
    return parsed


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
