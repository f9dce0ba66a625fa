"""The daemon's tables in kahooks.toml: `[serve]` and one `[checks.NAME]` per tracked check.

A check is written as the very command line a `vrrp_script` would run, so moving
a check from keepalived into the daemon is a copy and paste:

    [checks.haproxy]
    run = "ka-check-process haproxy --pidfile /run/haproxy.pid"
    interval = 1        # seconds, fractions allowed
    fall = 1            # failures in a row before the track file says failed
    rise = 2            # successes in a row before it says healthy again

The words are parsed with the same Option declarations as the ka-check-* programs
and the check object is built here, so every mistake is a config problem with
its key path and line, found before the daemon (or a reload) starts anything.
"""

from __future__ import annotations

import functools
import os
import re
from typing import TYPE_CHECKING

from kahooks.errors import UsageError
from kahooks.output import redact
from kahooks.settings.options import number_problem

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kahooks.checks.base import Check

    Complain = Callable[[str, str], None]

DEFAULT_STATE_DIR = "/run/kahooks"
CHECK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
DEFAULT_KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
CHECK_KEYS = ("run", "interval", "rise", "fall", "track_file", "ok_value", "fail_value")


class ServeSettings:
    """[serve]: where the daemon writes, what it watches, what it serves."""

    def __init__(self, state_dir: str = DEFAULT_STATE_DIR, maintenance_file: str | None = None,
                 notify_fifo: str | None = None, deliver: bool = True, metrics_listen: tuple[str, int] | None = None,
                 metrics_textfile: str | None = None, heartbeat_interval: float = 1.0) -> None:
        self.state_dir = state_dir
        self.maintenance_file = maintenance_file
        self.notify_fifo = notify_fifo
        self.deliver = deliver
        self.metrics_listen = metrics_listen
        self.metrics_textfile = metrics_textfile
        self.heartbeat_interval = heartbeat_interval

    @property
    def heartbeat_file(self) -> str:
        return os.path.join(self.state_dir, "heartbeat")

    @property
    def status_file(self) -> str:
        return os.path.join(self.state_dir, "status.json")


class CheckSpec:
    """One [checks.NAME] table, validated, with its Check object built."""

    def __init__(self, name: str, kind: str, words: list[str], check: Check, interval: float, rise: int,
                 fall: int, track_file: str, ok_value: int, fail_value: int) -> None:
        self.name = name
        self.kind = kind
        self.words = words
        self.check = check
        self.interval = interval
        self.rise = rise
        self.fall = fall
        self.track_file = track_file
        self.ok_value = ok_value
        self.fail_value = fail_value

    @functools.cached_property
    def shown(self) -> dict[str, Any]:
        """What status.json shows of this table, built once: the command line redacted as words, then as a
        line (a header's name and its value may be two words)."""
        return {"kind": redact.text(self.kind), "run": redact.text(" ".join(redact.words(self.words))),
                "interval": self.interval, "rise": self.rise, "fall": self.fall,
                "track_file": redact.text(self.track_file)}

    @property
    def maintenance_file(self) -> str | None:
        return getattr(self.check, "maintenance_file", None)

    def identity(self) -> tuple:
        """Equal for two specs that would behave the same: a reload keeps such a check running, state and all."""
        return (self.kind, tuple(self.words), self.interval, self.rise, self.fall, self.track_file,
                self.ok_value, self.fail_value)


def parse_serve(table: Any, problem: Complain, data: dict[str, Any]) -> ServeSettings:
    """[serve] -> ServeSettings (defaults when the table is absent)."""
    settings = ServeSettings()
    _fill(settings, "serve", table, problem, {
        "state_dir": _absolute_path, "maintenance_file": _absolute_path, "notify_fifo": _absolute_path,
        "deliver": _switch, "metrics_listen": _listen, "metrics_textfile": _textfile,
        "heartbeat_interval": _heartbeat_interval})
    if settings.notify_fifo and not settings.deliver:
        problem("serve.notify_fifo", "needs deliver = true: the daemon records what it reads and must deliver it")
    return settings


def _fill(settings: object, section: str, table: Any, problem: Complain, fields: dict[str, Callable[[Any], Any]]) -> None:
    """The keys of a [section] table, each read by its field's reader onto `settings` (which keeps its default
    for a key absent or wrong); one problem per unknown key or value a reader refuses (ValueError)."""
    if table is None:
        return
    if not isinstance(table, dict):
        problem(section, "must be a table")
        return
    for key, value in table.items():
        read = fields.get(key)
        if read is None:
            problem(f"{section}.{key}", f"unknown setting (known: {', '.join(fields)})")
            continue
        try:
            setattr(settings, key, read(value))
        except ValueError as exc:
            problem(f"{section}.{key}", str(exc))


def _absolute_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


def _switch(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _textfile(value: Any) -> str:
    if not _absolute_path(value).endswith(".prom"):
        raise ValueError("must end in .prom (node-exporter's textfile collector reads only those)")
    return value


def _listen(value: Any) -> tuple[str, int]:
    listen = _listen_address(value)
    if listen is None:
        raise ValueError("must be 'HOST:PORT', e.g. '127.0.0.1:9477'")
    return listen


def _heartbeat_interval(value: Any) -> float:
    if number_problem(value, 0.1, 60):
        raise ValueError("must be a number of seconds from 0.1 to 60")
    return float(value)


def _listen_address(value: Any) -> tuple[str, int] | None:
    if not isinstance(value, str):
        return None
    from kahooks.system import netaddr

    try:
        return netaddr.parse_hostport(value)
    except ValueError:
        return None


def parse_checks(table: Any, problem: Complain, data: dict[str, Any]) -> dict[str, CheckSpec]:
    """[checks.NAME] tables -> {name: CheckSpec}; every problem is reported, none raises."""
    specs: dict[str, CheckSpec] = {}
    if table is None:
        return specs
    if not isinstance(table, dict):
        problem("checks", "must be a table of [checks.NAME]")
        return specs
    serve: dict[str, Any] = data["serve"] if isinstance(data.get("serve"), dict) else {}
    state_dir: str = serve["state_dir"] if isinstance(serve.get("state_dir"), str) else DEFAULT_STATE_DIR
    track_files: dict[str, str] = {}
    for name, settings in table.items():
        key = f"checks.{name}"
        if not CHECK_NAME.match(name):
            problem(key, "a check name may hold letters, digits, '_', '.' and '-' (it names the track file)")
            continue
        if not isinstance(settings, dict):
            problem(key, "must be a table")
            continue
        spec = _check(name, settings, state_dir, lambda sub, message: problem(f"{key}.{sub}", message))
        if spec is None:
            continue
        if spec.track_file in track_files:
            problem(f"{key}.track_file", f"{spec.track_file} is already written by check {track_files[spec.track_file]!r}")
            continue
        track_files[spec.track_file] = name
        specs[name] = spec
    return specs


def _check(name: str, settings: dict[str, Any], state_dir: str, problem: Complain) -> CheckSpec | None:
    for key in settings:
        if key not in CHECK_KEYS:
            problem(key, f"unknown setting (known: {', '.join(CHECK_KEYS)})")
    interval = _number(settings, "interval", 1.0, 0.05, 3600, problem)
    rise = _whole(settings, "rise", 1, problem)
    fall = _whole(settings, "fall", 1, problem)
    ok_value = _value(settings, "ok_value", 0, problem)
    fail_value = _value(settings, "fail_value", 1, problem)
    track_file = settings.get("track_file", os.path.join(state_dir, "track", name))
    if not isinstance(track_file, str) or not track_file.startswith("/"):
        problem("track_file", "must be an absolute path")
        return None
    if ok_value == fail_value:
        problem("fail_value", "must differ from ok_value, or keepalived could never tell them apart")
        return None
    built = build_check(settings.get("run"), problem)
    if built is None or interval is None or rise is None or fall is None or ok_value is None or fail_value is None:
        return None
    kind, words, check = built
    return CheckSpec(name, kind, words, check, interval, rise, fall, track_file, ok_value, fail_value)


def daemon_programs() -> dict[str, str]:
    """ka-check-KIND -> KIND for every kind the daemon can run in-process (all but its own guard)."""
    from kahooks.checks import PROGRAM_PREFIX, kinds, load_check_class

    return {f"{PROGRAM_PREFIX}{kind}": kind for kind in kinds() if load_check_class(kind).in_daemon}


class ProgramOnly(UsageError):
    """An option of the programs that means nothing in the daemon, given in a `run` line."""


def _refusing_program_only(words: list[str]) -> Callable[[dict[str, Any]], None]:
    """A `parsed` hook for checks.build that refuses a common option the daemon would ignore, saying
    which (as written in `words`) and why. It looks at what was parsed, so a value that looks like an
    option (`--contains -c`, `ka-check-exec sh -c ...`) is not taken for one."""
    from kahooks.checks.base import COMMON_OPTIONS, PROGRAM_ONLY

    def refuse(values: dict[str, Any]) -> None:
        for option in COMMON_OPTIONS:
            names = [name for name in option.names if name in PROGRAM_ONLY]
            if names and values.get(option.dest) not in (None, False):
                written = next((word for word in words if word.split("=")[0] in names), names[0])
                raise ProgramOnly(f"{written}: {PROGRAM_ONLY[names[0]]}")
    return refuse


def build_check(run: Any, problem: Complain) -> tuple[str, list[str], Check] | None:
    """`run` (a command line or a list of words) -> (kind, words, Check), through the programs' own parser."""
    import shlex

    from kahooks.checks import build
    from kahooks.checks.base import PROGRAM_ONLY
    from kahooks.settings.options import HelpRequested

    if isinstance(run, str):
        try:
            words = shlex.split(run)
        except ValueError as exc:
            problem("run", f"cannot split into words: {exc}")
            return None
    elif isinstance(run, list) and all(isinstance(word, str) for word in run):
        words = list(run)
    else:
        problem("run", "must be the check's command line, e.g. \"ka-check-process haproxy\"")
        return None
    programs = daemon_programs()
    if not words or os.path.basename(words[0]) not in programs:
        problem("run", f"must start with one of {', '.join(programs)}")
        return None
    program = os.path.basename(words[0])
    kind = programs[program]
    try:
        return kind, words[1:], build(kind, words[1:], program, _refusing_program_only(words[1:]))[1]
    except HelpRequested:
        asked = next((word for word in words[1:] if word in PROGRAM_ONLY), "--help")
        problem("run", f"{asked}: {PROGRAM_ONLY[asked]}")
    except ProgramOnly as exc:
        problem("run", str(exc))
    # An error may quote a word of the command line whole (`--header 'X-Api-Key v'`, malformed so that no
    # line-wise redaction sees a header in it): hidden as redact.words hides it in that command line.
    except UsageError as exc:
        problem("run", redact.in_argv(f"{program}: {exc}", words))
    except Exception as exc:  # a check's constructor may trip on anything the user wrote; say what
        problem("run", redact.in_argv(f"{program}: {type(exc).__name__}: {exc}", words))
    return None


def _number(settings: dict, key: str, default: float, low: float, high: float, problem: Complain) -> float | None:
    value = settings.get(key, default)
    if number_problem(value, low, high):
        problem(key, f"must be a number of seconds from {low:g} to {high:g}")
        return None
    return float(value)


def _whole(settings: dict, key: str, default: int, problem: Complain) -> int | None:
    value = settings.get(key, default)
    if number_problem(value, 1, 1000, whole=True):
        problem(key, "must be a whole number from 1 to 1000")
        return None
    return value


def _value(settings: dict, key: str, default: int, problem: Complain) -> int | None:
    value = settings.get(key, default)
    # keepalived reads the file with strtol and multiplies by the track_file's weight (-254..254).
    if number_problem(value, -1000000, 1000000, whole=True):
        problem(key, "must be a whole number (keepalived multiplies it by the track_file's weight)")
        return None
    return value


class WireSettings:
    """[wire]: the passive VRRP observer (daemon/wire.py), on wherever keepalived.conf names VRRP instances."""

    def __init__(self, enabled: bool = True, keepalived_conf: str = DEFAULT_KEEPALIVED_CONF) -> None:
        self.enabled = enabled
        self.keepalived_conf = keepalived_conf

    def identity(self) -> tuple:
        return (self.enabled, self.keepalived_conf)


def parse_wire(table: Any, problem: Complain, data: dict[str, Any]) -> WireSettings:
    """[wire] -> WireSettings (on, reading /etc/keepalived/keepalived.conf, when the table is absent)."""
    settings = WireSettings()
    _fill(settings, "wire", table, problem, {"enabled": _switch, "keepalived_conf": _absolute_path})
    return settings


SECTIONS = {"serve": parse_serve, "checks": parse_checks, "wire": parse_wire}
