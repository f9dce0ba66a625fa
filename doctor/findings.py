"""What `kahooks doctor` reports about one node's configuration: each finding has a stable code.

Severity: `error` (keepalived will not do what the file says: a check it stops running, a VIP
that never moves), `warning` (it works until the day it matters), `hint` (worth knowing).
Codes are stable: scripts and other tools may match on them.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import stat
from dataclasses import dataclass

from kahooks.doctor.model import Node, Script
from kahooks.files import safefs

SEVERITIES = ("error", "warning", "hint")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    file: str
    line: int
    message: str
    fix: str

    def as_json(self) -> dict:
        return {"code": self.code, "severity": self.severity, "file": self.file, "line": self.line,
                "message": self.message, "fix": self.fix}


def finding(code: str, severity: str, where: object, message: str, fix: str) -> Finding:
    return Finding(code, severity, getattr(where, "file", ""), getattr(where, "line", 0), message, fix)


def check_numbers(node: Node) -> list[Finding]:
    """Numbers keepalived rejects or reads otherwise than written (garbage after the digits, out of its
    range): each finding says what keepalived does with it, which is what the doctor models."""
    return [finding("bad-number", "error", where, why, "a number in keepalived's range (keepalived.conf(5))")
            for where, why in node.bad_numbers]


def check_surprises(node: Node) -> list[Finding]:
    """Where keepalived itself does what no operator would want: each with the keepalived source that does it."""
    return [finding(item.code, "warning", item.where,
                    f"{item.message} (keepalived {node.rules} {item.source})", item.fix)
            for item in node.surprises]


# Script security ------------------------------------------------------------------------------

def script_user(node: Node) -> tuple[str, str]:
    """The user keepalived runs scripts as by default, and why."""
    configured = node.globals.first("script_user") if node.globals is not None else None
    if configured is not None and configured.args:
        return configured.args[0], "script_user"
    try:
        pwd.getpwnam("keepalived_script")
        return "keepalived_script", "the keepalived_script user exists"
    except KeyError:
        return "root", "no script_user and no keepalived_script user"


def script_words(command: str) -> list[str] | None:
    """A `script` string's words as keepalived splits it (quotes removed, then blanks); None when a
    quote is left open."""
    try:
        return shlex.split(command)
    except ValueError:
        return None


def program_of(command: str) -> str | None:
    """The executable a `script` string runs (its first word; blanks alone split a broken quote)."""
    words = script_words(command)
    words = command.split() if words is None else words
    return words[0] if words else None


def unsafe_components(path: str) -> list[str]:
    """Components of `path` (and of a script's interpreter) keepalived calls unsafe for a root script."""
    unsafe = []
    current = os.path.abspath(path)
    seen = set()
    while current not in seen:
        seen.add(current)
        try:
            info = os.stat(current)
        except OSError:
            break
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if info.st_uid != 0 or (writable and not sticky_dir):
            unsafe.append(f"{current} (owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)})")
        current = os.path.dirname(current)
    return unsafe


def interpreter_of(path: str) -> str | None:
    """The program named on a script's #! line, which keepalived checks like the script itself."""
    first = _head(path, 256).split(b"\n", 1)[0]
    words = first[2:].decode(errors="replace").split() if first.startswith(b"#!") else []
    return words[0] if words and words[0].startswith("/") else None


def _head(path: str, size: int) -> bytes:
    """The first bytes of a script, through safefs: a FIFO or a device named as a script is never waited on."""
    try:
        fd = safefs.open_regular(path)
    except (OSError, safefs.UnsafeFile):
        return b""
    try:
        return os.read(fd, size)
    except OSError:
        return b""
    finally:
        os.close(fd)


def can_execute(path: str, user: str) -> bool:
    try:
        entry = pwd.getpwnam(user)
        info = os.stat(path)
    except (KeyError, OSError):
        return False
    if entry.pw_uid == 0:
        return bool(info.st_mode & 0o111)
    if info.st_uid == entry.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == entry.pw_gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def check_scripts(node: Node, on_this_host: bool) -> list[Finding]:
    found: list[Finding] = []
    security = node.global_has("enable_script_security")
    default_user, why_user = script_user(node)
    configured = node.globals.first("script_user") if node.globals is not None else None
    if configured is not None and configured.args and on_this_host:
        try:
            pwd.getpwnam(configured.args[0])
        except KeyError:
            found.append(finding("script-user-missing", "error", configured,
                                 f"script_user {configured.args[0]} is not a user here: keepalived cannot run "
                                 f"scripts as that user", f"create it (useradd --system {configured.args[0]}) "
                                 f"or name an existing unprivileged user"))
    runs_as_root = [script for script in node.scripts.values() if (script.user or default_user) == "root"]
    if node.scripts and not security and runs_as_root:
        found.append(finding("script-security-off", "warning", node.globals or runs_as_root[0].where,
                             f"scripts run as root ({why_user}) without enable_script_security: a script or a "
                             f"directory writable by another user is root's to lose",
                             "add `enable_script_security` and `script_user keepalived_script` to global_defs"))
    for script in node.scripts.values():
        found.extend(_script_findings(node, script, security, script.user or default_user, on_this_host))
    return found


def _script_findings(node: Node, script: Script, security: bool, user: str, on_this_host: bool) -> list[Finding]:
    found: list[Finding] = []
    where = script.where.first("script") or script.where
    program = program_of(script.command)
    if on_this_host and program:
        if not program.startswith("/"):
            found.append(finding("script-relative-path", "warning", where,
                                 f"{script.name}: `{program}` is not an absolute path: keepalived searches PATH, "
                                 f"and refuses it under script security if it cannot resolve it",
                                 f"use the full path (`command -v {program}` tells it)"))
        elif not os.path.exists(program):
            found.append(finding("script-missing", "error", where,
                                 f"{script.name}: {program} does not exist: keepalived drops the script and the "
                                 f"instance is no longer protected by it", "install it or correct the path"))
        else:
            if not can_execute(program, user):
                found.append(finding("script-not-executable", "error", where,
                                     f"{script.name}: {user} cannot execute {program}: keepalived drops the script",
                                     f"chmod 755 {program} (and make every directory above it searchable)"))
            if security and user == "root":
                unsafe = unsafe_components(program)
                interpreter = interpreter_of(program)
                if interpreter and not unsafe:
                    unsafe = [f"its interpreter's {item}" for item in unsafe_components(interpreter)]
                if unsafe:
                    found.append(finding("script-unsafe-path", "error", where,
                                         f"{script.name}: runs as root and {unsafe[0]} is not root-owned or is "
                                         f"writable: keepalived refuses it ('Unsafe permissions') and silently "
                                         f"stops tracking it", "chown root: and chmod go-w every component, or "
                                         "run it as an unprivileged user"))
    own = own_timeout(script.command)
    stops_in_time = own is not None and own < script.interval
    if not stops_in_time and (script.timeout is None or script.effective_timeout >= script.interval):
        found.append(finding("script-timeout", "warning", script.where,
                             f"{script.name}: timeout {script.effective_timeout:g} s is not below interval "
                             f"{script.interval:g} s: keepalived 2.2 starts the next run while a hung one is still "
                             f"running, and runs pile up",
                             f"interval {max(2, int(script.interval))} with timeout {max(1, int(script.interval) - 1)}, "
                             f"or a kahooks check (it stops itself after -t, 0.8 s by default)"))
    limit = min(script.effective_timeout, own) if own is not None else script.effective_timeout
    worst = script.interval * script.fall + limit
    found.append(finding("script-detection-time", "hint", script.where,
                         f"{script.name}: a failure is acted on after up to {worst:g} s "
                         f"(interval {script.interval:g} x fall {script.fall} + a hung run's {limit:g} s)",
                         "kahooks serve writes a track_file within milliseconds of a failure"))
    found.extend(_weak_check(script, where))
    return found


def own_timeout(command: str) -> float | None:
    """A kahooks check's own time limit (-t/--timeout, else its default), read by the check's own
    options (kahooks.settings.options) from the words keepalived passes it; None for other programs, and for
    a command line the check would refuse (it then fails at once, and keepalived's timeout is the bound)."""
    from kahooks.checks import PROGRAM_PREFIX, load_check_class
    from kahooks.checks.base import COMMON_OPTIONS
    from kahooks.errors import UsageError
    from kahooks.settings.options import HelpRequested, parse_argv

    words = script_words(command)
    program = os.path.basename(words[0]) if words else ""
    if not words or not program.startswith(PROGRAM_PREFIX):
        return None
    try:
        options = COMMON_OPTIONS + load_check_class(program.removeprefix(PROGRAM_PREFIX)).OPTIONS
        return float(parse_argv(options, words[1:], program)["timeout"])
    except (KeyError, UsageError, HelpRequested):
        return None


def replacement(program: str, words: list[str]) -> str:
    """The kahooks check that does what `words` meant to, with its target filled in where it can be."""
    targets = [word for word in words[1:] if not word.startswith("-") and not word.isdigit()]
    if program in ("killall", "pidof"):
        return (f'script "/usr/local/bin/ka-check-process {targets[-1] if targets else "NAME"}": the full name, '
                f"no zombies, optionally --pidfile")
    url = next((word for word in targets if "://" in word), "URL")
    return f'script "/usr/local/bin/ka-check-http {url}": its own time limit, fails on HTTP errors, exits 0 or 1'


def _weak_check(script: Script, where: object) -> list[Finding]:
    program = os.path.basename(program_of(script.command) or "")
    words = script.command.split()
    found = []
    if program == "killall" or program == "pidof":
        found.append(finding(f"weak-check-{program}", "warning", where,
                             f"{script.name}: `{script.command}` matches process names cut to 15 characters and "
                             f"counts a zombie as alive", replacement(program, words)))
    elif program == "curl":
        fails_on_http_errors = any(word in ("--fail", "--fail-with-body") or
                                   (word.startswith("-") and not word.startswith("--") and "f" in word) for word in words[1:])
        if not fails_on_http_errors:
            found.append(finding("weak-check-curl", "warning", where,
                                 f"{script.name}: curl without -f exits 0 on an HTTP 500: the check cannot fail "
                                 f"on a broken service", replacement(program, words)))
        if not any(word in ("-m", "--max-time") or word.startswith("--max-time=") for word in words[1:]):
            found.append(finding("weak-check-curl-time", "warning", where,
                                 f"{script.name}: curl without --max-time can hang past keepalived's timeout",
                                 replacement(program, words)))
    path = program_of(script.command)
    if path and path.startswith("/") and os.path.isfile(path):
        found.extend(_echoes_its_code(script, path, where))
    return found


def _echoes_its_code(script: Script, path: str, where: object) -> list[Finding]:
    """A shell script whose last command prints a number instead of exiting with it."""
    head = _head(path, 65536)
    if not head.startswith(b"#!") or b"sh" not in head.split(b"\n", 1)[0]:
        return []
    lines = [line.strip() for line in head.decode(errors="replace").splitlines()
             if line.strip() and not line.strip().startswith("#")]
    if lines and re.fullmatch(r"echo\s+[\"']?-?\d+[\"']?|echo\s+\$\?", lines[-1]):
        return [finding("script-echoes-code", "error", where,
                        f"{script.name}: {path} ends with `{lines[-1]}`: keepalived reads the exit status, which "
                        f"is echo's 0, so the check never fails", "end with `exit N`, or use /usr/local/bin/ka-check-process")]
    return []


def _ignored_fix(why: str, name: str) -> str:
    if "sync group" in why:
        return "weight 0 (FAULT), or `sync_group_tracking_weight` in the sync group"
    if "address owner" in why:
        return "weight 0 (FAULT): the owner's priority stays 255 whatever the weights"
    return f"define {name}, or remove the line"


# Track files, notifications, preemption -------------------------------------------------------

def check_tracking_and_notify(node: Node, on_this_host: bool) -> list[Finding]:
    found: list[Finding] = []
    for track in node.files.values():
        if not track.init_file:
            found.append(finding("track-file-no-init", "warning", track.where,
                                 f"track_file {track.name}: no init_file: until its writer starts, a missing "
                                 f"{track.path or 'file'} reads as 0, healthy", "add `init_file 1` (failed until "
                                 "the first real result; kahooks serve writes 0 when healthy)"))
    for instance in node.instances:
        for item in instance.tracked:
            if item.dropped:
                found.append(finding("tracked-item-ignored", "error", item.where,
                                     f"{instance.name}: keepalived ignores {item.kind} {item.name}: {item.dropped}",
                                     _ignored_fix(item.dropped, item.name)))
            elif item.kind == "file" and item.weight > 0 and not item.reverse:
                found.append(finding("track-file-weight-positive", "warning", item.where,
                                     f"{instance.name}: track_file {item.name} with weight {item.weight}: a failed "
                                     f"check (1) raises the priority by {item.weight}",
                                     f"weight 0 (FAULT on failure) or a negative weight such as -{item.weight}"))
        if instance.where.has("nopreempt") and instance.state == "MASTER":
            found.append(finding("nopreempt-with-master", "warning", instance.where.first("nopreempt"),
                                 f"{instance.name}: nopreempt does nothing with state MASTER (keepalived clears it)",
                                 "state BACKUP on every node that should not preempt"))
        if instance.where.has("preempt_delay") and instance.preempt_delay == 0:
            found.append(finding("preempt-delay-no-effect", "warning", instance.where.first("preempt_delay"),
                                 f"{instance.name}: preempt_delay has no effect with state MASTER or nopreempt",
                                 "state BACKUP without nopreempt, or drop preempt_delay"))
        for keyword, statement in instance.notify.items():
            program = program_of(" ".join(statement.args))
            if on_this_host and program and program.startswith("/") and not os.path.exists(program):
                found.append(finding("notify-missing", "error", statement,
                                     f"{instance.name}: {keyword} {program} does not exist: transitions go unnoticed",
                                     "install it or correct the path"))
            elif on_this_host and program and program.startswith("/") and not os.access(program, os.X_OK):
                found.append(finding("notify-not-executable", "error", statement,
                                     f"{instance.name}: {keyword} {program} is not executable",
                                     f"chmod 755 {program}"))
    fifo = node.globals.first("notify_fifo") if node.globals is not None else None
    if fifo is not None and fifo.args and not node.global_has("notify_fifo_script"):
        found.append(finding("notify-fifo-reader", "hint", fifo,
                             f"notify_fifo {fifo.args[0]}: keepalived drops lines nobody reads; nothing in this "
                             f"file reads it", f"run kahooks serve with notify_fifo = \"{fifo.args[0]}\" in "
                             f"kahooks.toml, or add `notify_fifo_script`"))
    return found
