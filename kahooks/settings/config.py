"""kahooks.toml: loading, validating with key paths and line numbers, and rule matching.

Every problem is collected, not just the first, and reported as
`FILE:LINE: key.path: what is wrong`. Channel tables are validated by the
channel classes themselves (passed in by the caller, so the core never imports
notifiers); message templates are compiled and rendered against a sample event,
so an undefined variable is a config error, not an empty string at 3 a.m.
"""

from __future__ import annotations

import os
from pathlib import Path

from kahooks.errors import ChannelConfigError, ConfigError, Problem
from kahooks.events.rules import Rule, parse_rules

# Declared in kahooks.settings.defaults (ka-notify's fast path reads them without this module); re-exported here.
from kahooks.settings.defaults import DEFAULT_PATH, DEFAULT_SPOOL, DELIVERY_DEFAULTS, DELIVERY_RANGES
from kahooks.settings.tomlfile import read_toml, secret_from_file

__all__ = ["DEFAULT_PATH", "DEFAULT_SPOOL", "DELIVERY_DEFAULTS", "DELIVERY_RANGES", "ChannelConfigError", "Config",
           "ConfigError", "Problem", "Rule", "load", "read_settings", "read_toml",
           "secret_from_file", "spool_dir_of"]

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from kahooks.events.event import Event



class Config:
    """A validated configuration. `channels` maps names to built channel objects."""

    def __init__(self, path: str, host: str, spool_dir: str, delivery: dict[str, float],
                 instances: dict[str, dict[str, Any]], channels: dict[str, Any], rules: list[Rule],
                 sections: dict[str, Any] | None = None, files: list[str] | None = None) -> None:
        self.path = path
        self.host = host
        self.spool_dir = spool_dir
        self.delivery = delivery
        self.instances = instances
        self.channels = channels
        self.rules = rules
        # Tables validated by their own parsers (the daemon's [serve] and [checks]), by name.
        self.sections = sections or {}
        self.files = files or [path]  # the main file, then each conf.d drop-in read

    def channels_for(self, event: Event) -> list[str]:
        """Channel names the rules pick for this event, in rule order, each once."""
        picked: list[str] = []
        for rule in self.rules:
            if rule.matches(event):
                picked.extend(channel for channel in rule.channels if channel not in picked)
        return picked

    def vips(self, name: str) -> list[str]:
        return list(self.instances.get(name, {}).get("vips", []))


def read_settings(path: str) -> dict[str, Any]:
    """The settings of `path` merged with its conf.d/*.toml drop-ins, unvalidated."""
    from kahooks.settings import fragments

    return fragments.read(path).data


def spool_dir_of(path: str) -> str:
    """The spool directory a config names, or the default when it cannot be read (events are never dropped)."""
    try:
        value = read_settings(path).get("spool_dir", DEFAULT_SPOOL)
        return value if isinstance(value, str) and value else DEFAULT_SPOOL
    except ConfigError:
        return DEFAULT_SPOOL


# Tables the daemon owns: ka-notify accepts them unread; `kahooks serve` and `validate` parse them.
DAEMON_SECTIONS = ("serve", "checks", "wire")


def load(path: str, channel_types: Mapping[str, Callable[..., Any]],
         sections: Mapping[str, Callable[..., Any]] | None = None) -> Config:
    """Read and validate `path`; raise ConfigError listing every problem.

    `sections` maps a top-level table name to a parser called as
    parser(value, problem, data) (value None when the table is absent); what it
    returns lands in Config.sections. Without one, the daemon's tables are accepted unread.
    """
    from kahooks.settings import fragments

    merged = fragments.read(path)
    data = merged.data
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        where, line = merged.where(key)
        problems.append(Problem(key, message, line, where if where != path else None))

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
    rules = parse_rules(data.get("rules", []), set(data.get("channels", {}) or {}), problem)
    parsed = {name: parser(data.get(name), problem, data) for name, parser in (sections or {}).items()}
    if problems:
        raise ConfigError(path, problems)
    return Config(path, host, spool_dir, delivery, instances, channels, rules, parsed, merged.files)


def _delivery(table: Any, problem: Callable[[str, str], None]) -> dict[str, float]:
    values = dict(DELIVERY_DEFAULTS)
    if not isinstance(table, dict):
        problem("delivery", "must be a table")
        return values
    from kahooks.settings.options import number_problem

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


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
