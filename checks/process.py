"""ka-check-process: is a named process running? (replaces `killall -0 haproxy`, `pidof httpd`).

Matching is by name as killall sees it, optionally narrowed by a command-line
regex, an effective user, or a pidfile. Zombies never count: a crashed daemon
whose parent has not reaped it is not running.

A probe repeated in the same process (the daemon's check thread) first confirms what the last one
found, from those processes' own /proc entries: while each of them still runs and still matches, the
answer is the same as a look at every process would give (that look finds them too), for a few reads
instead of one per process on the machine. The daemon repeats a healthy, watched probe only as a safety
net (a pidfd reports each death at once), 400 of them were 15 whole-/proc looks a second, and a death
heard during one waited for the interpreter lock behind it. A whole look is still taken at least
every FULL_LOOK s, so that the pids and count shown keep up with processes started since.
"""

from __future__ import annotations

import os
import time

from kahooks.checks.base import Check, pattern
from kahooks.errors import UsageError, os_words
from kahooks.output.result import CheckResult, healthy, unhealthy
from kahooks.settings.options import Option, positive_int
from kahooks.system import procfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kahooks.deadline import Deadline
    from kahooks.settings.patterns import Pattern

FULL_LOOK = 300.0  # seconds: the longest a repeated probe goes on confirming instead of looking at every process


def user_id(raw: str) -> int:
    """A user name or numeric uid, as a uid."""
    if raw.isdigit():
        return int(raw)
    import pwd

    try:
        return pwd.getpwnam(raw).pw_uid
    except KeyError:
        raise ValueError("no such user") from None


class ProcessCheck(Check):
    kind = "process"
    EXAMPLES = (
        ("vrrp_script chk_haproxy {\n    script \"{bin}/ka-check-process haproxy\"\n"
         "    interval 1\n    timeout 2\n    fall 2\n    rise 2\n}", "in keepalived.conf, instead of killall -0 haproxy"),
        ("ka-check-process --pidfile /run/haproxy.pid haproxy", "the process the pidfile names, and it is haproxy"),
        ("ka-check-process --cmdline 'slapd.*ldap:///' --user openldap slapd", "narrowed by command line and user"),
    )
    watches_processes = True
    STARTUP_IMPORTS = frozenset({"kahooks.system.procfs"})
    OPTIONS = (
        Option("NAME", help="process name as killall sees it (optional with --pidfile or --cmdline)"),
        Option("--cmdline", convert=pattern, metavar="REGEX",
               help="the process's command line (argv joined by spaces, its first 4 KiB) must match"),
        Option("--pidfile", metavar="PATH",
               help="the pid in this file must be alive (and be NAME, when given)"),
        Option("--user", convert=user_id, metavar="USER", help="effective user name or uid"),
        Option("--min-count", convert=positive_int, default=1, metavar="N",
               help="at least N matching processes"),
    )

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.name: str | None = values.get("name")
        self.cmdline: Pattern | None = values.get("cmdline")
        self.pidfile: str | None = values.get("pidfile")
        self.user: int | None = values.get("user")
        self.min_count: int = values["min_count"]
        self.proc = values.get("proc_root", "/proc")
        # The pids the last probe found alive: the daemon watches them (pidfd) to hear of a death at once.
        self.last_pids: list[int] = []
        self.zombies: list[int] = []  # zombies named NAME the last scan saw
        # What the last whole look found healthy (pid -> its start, so a reused pid is not taken for it), and when.
        self.confirmable: dict[int, int] = {}
        self.looked_at = 0.0
        if not (self.name or self.cmdline or self.pidfile):
            raise UsageError("give a process NAME, --cmdline or --pidfile")
        if self.name is not None and (not self.name or "/" in self.name):
            raise UsageError(f"NAME {self.name!r}: give the program name, not a path")
        if self.pidfile and self.min_count > 1:
            raise UsageError("--min-count cannot be used with --pidfile (a pidfile names one process)")

    def pids(self) -> list[int]:
        return self.last_pids

    def watched_files(self) -> tuple[str, ...]:
        return (self.pidfile,) if self.pidfile else ()

    def describe(self) -> str:
        if self.name:
            return self.name
        if self.pidfile:
            return f"pid from {self.pidfile}"
        assert self.cmdline is not None
        return f"process matching /{self.cmdline.pattern}/"

    def matches(self, info: procfs.ProcInfo, deadline: Deadline) -> bool:
        if self.name is not None and not procfs.name_matches(self.name, info, self.proc):
            return False
        if self.cmdline is not None:
            # Any user's command line: time-bounded (kahooks.settings.patterns), a crafted one fails the probe.
            argv = procfs.read_cmdline(info.pid, self.proc)
            if not self.cmdline.search(" ".join(argv), deadline, f"pid {info.pid}'s command line"):
                return False
        if self.user is not None and procfs.effective_uid(info.pid, self.proc) != self.user:
            return False
        return True

    def find(self, deadline: Deadline) -> dict[int, int]:
        """Live (non-zombie) matching processes, excluding this checker itself: pid -> its start time.

        The deadline is asked between processes and bounds each --cmdline match: thousands of
        processes with long command lines make a slow probe, never one that outlives its --timeout.
        """
        own = os.getpid()
        found: dict[int, int] = {}
        self.zombies = []
        for info in procfs.iter_processes(self.proc, comm=self.name):
            deadline.require(f"looking through processes (at pid {info.pid})")
            if info.zombie:
                if self.name is not None and procfs.name_matches(self.name, info, self.proc):
                    self.zombies.append(info.pid)  # for the failure's note, without a second scan
            elif info.pid != own and self.matches(info, deadline):
                found[info.pid] = info.start
        return found

    def confirmed(self, deadline: Deadline) -> list[int] | None:
        """The last healthy look's pids when every one still runs and matches (a few reads); None: look again."""
        if not self.confirmable or time.monotonic() - self.looked_at > FULL_LOOK:
            return None
        for pid, start in self.confirmable.items():
            deadline.require(f"confirming pid {pid}")
            info = procfs.read_stat(pid, self.proc)
            if info is None or info.zombie or info.start != start or not self.matches(info, deadline):
                return None
        return list(self.confirmable)

    def probe(self, deadline: Deadline) -> CheckResult:
        self.last_pids = []
        if self.pidfile:
            return self._probe_pidfile(deadline)
        label = self.describe()
        pids = self.confirmed(deadline)
        if pids is not None:
            self.last_pids = pids
            return healthy(f"{label} running ({_pid_list(pids)})", count=len(pids))
        found = self.find(deadline)
        pids = self.last_pids = list(found)
        self.confirmable = {}
        if len(pids) >= self.min_count:
            self.confirmable, self.looked_at = found, time.monotonic()
            return healthy(f"{label} running ({_pid_list(pids)})", count=len(pids))
        if not pids:
            return unhealthy(f"{label} not running{self._zombie_note()}", count=0)
        return unhealthy(f"only {len(pids)} {label} running, need {self.min_count} ({_pid_list(pids)})",
                         count=len(pids))

    def _probe_pidfile(self, deadline: Deadline) -> CheckResult:
        assert self.pidfile is not None
        try:
            with open(self.pidfile, "rb") as handle:
                text = handle.read(64).split(b"\n")[0].strip()
        except FileNotFoundError:
            return unhealthy(f"pidfile {self.pidfile} does not exist", count=0)
        except OSError as exc:
            return unhealthy(f"cannot read pidfile {self.pidfile}: {os_words(exc)}", count=0)
        if not text.isdigit() or int(text) <= 0:
            return unhealthy(f"pidfile {self.pidfile} holds no pid ({text[:20]!r})", count=0)
        pid = int(text)
        info = procfs.read_stat(pid, self.proc)
        if info is None:
            return unhealthy(f"pid {pid} from {self.pidfile} is not running", count=0)
        if info.zombie:
            return unhealthy(f"pid {pid} from {self.pidfile} is a zombie ({info.comm})", count=0)
        if not self.matches(info, deadline):
            # A live pid that is not the expected program: the daemon died and its pid was reused.
            return unhealthy(f"pid {pid} from {self.pidfile} is {info.comm!r}, not {self.describe_match()}",
                             count=0)
        self.last_pids = [pid]
        return healthy(f"{self.name or info.comm} running (pid {pid} from {self.pidfile})", count=1)

    def describe_match(self) -> str:
        parts = []
        if self.name:
            parts.append(repr(self.name))
        if self.cmdline is not None:
            parts.append(f"matching /{self.cmdline.pattern}/")
        if self.user is not None:
            parts.append(f"run by uid {self.user}")
        return " ".join(parts) or "the expected process"

    def _zombie_note(self) -> str:
        """Say so when the only matches are zombies: a crashed, unreaped daemon confuses people."""
        return f" (zombie: {_pid_list(self.zombies)})" if self.zombies else ""


def _pid_list(pids: list[int]) -> str:
    shown = ", ".join(str(pid) for pid in pids[:5])
    more = f" and {len(pids) - 5} more" if len(pids) > 5 else ""
    return f"pid{'s' if len(pids) > 1 else ''} {shown}{more}"


CHECK = ProcessCheck
