"""ka-notify: keepalived's notify handler. It records the transition durably, makes sure a
delivery worker runs, and returns; it never waits for a mail server.

Its description, examples and exit status (for --help and the man page) are in kahooks.hooks.manual.
"""

from __future__ import annotations

import os
import sys

from kahooks import __version__
from kahooks.errors import ConfigError, KahooksError, UsageError, os_words
from kahooks.events.event import Event
from kahooks.settings.defaults import DEFAULT_PATH
from kahooks.settings.options import HelpRequested, Option, parse_argv, positive_float

# keepalived waits for this program at every transition: what its argv path imports is kept to
# STARTUP_IMPORTS (tests/hooks/test_notify_startup.py). typing is for mypy alone.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kahooks.notify.spool import Spool
    from kahooks.settings.config import Config

PROG = "ka-notify"
# What a fresh interpreter may hold after `ka-notify TYPE NAME STATE PRIORITY` once the configuration
# passed (validated_spool): kahooks' own modules, and standard ones (with what each imports itself).
# Not tomllib, jinja2, logging, typing nor a channel: the configuration is known good by its stamp.
STARTUP_IMPORTS = frozenset({
    "kahooks", "kahooks.hooks", "kahooks.hooks.notify_cli", "kahooks.settings.defaults", "kahooks.errors",
    "kahooks.settings.options", "kahooks.events.event", "kahooks.notify.spool", "kahooks.notify.spooldir",
    "kahooks.files.atomicfile",
    "kahooks.files.safefs", "kahooks.settings.fragments", "kahooks.settings.tomlfile",
    "__future__", "_json", "errno", "stat", "fcntl", "time",
})
WORKER_LOG_LIMIT = 1 << 20  # then it becomes worker.log.1, replacing the one before
OPTIONS = (
    Option("-c", "--config", default=DEFAULT_PATH, metavar="FILE", help="configuration file"),
    Option("--spool", metavar="DIR", help="spool directory (default: the config's spool_dir)"),
    Option("--instance", metavar="NAME", help="for notify_master & co.: the instance (no argv from keepalived)"),
    Option("--group", metavar="NAME", help="for notify_master & co. on a sync group"),
    Option("--virtual-server", metavar="HOST:PORT",
           help="for quorum_up/quorum_down (alone) and notify_up/notify_down (with --real-server)"),
    Option("--real-server", metavar="HOST:PORT", help="for a real_server's notify_up/notify_down"),
    Option("--state", metavar="STATE", help="MASTER, BACKUP, FAULT or STOP; UP or DOWN for servers"),
    Option("--priority", metavar="N", default="0", help="with --instance/--group"),
    Option("--dry-run", switch=True, help="with send: show what each channel would send, send nothing"),
    Option("--foreground", switch=True, help="with worker: run until stopped, log to stderr too"),
    Option("--idle-exit", convert=positive_float, metavar="SECONDS", help="with worker: exit when idle this long"),
    Option("--channel", metavar="NAME", help="with retry-dead and purge: only this channel's dead letters"),
    Option("--older-than", metavar="AGE", help="with purge: dead letters older than this (90s, 15m, 12h, 7d, 2w)"),
    Option("-v", "--verbose", switch=True, help="tracebacks and debug logging"),
    Option("--log-format", convert=lambda raw: _log_format(raw), default="text", metavar="FORMAT",
           help="the worker's and FIFO reader's logs: text, or json (one object a line)"),
    Option("WORDS", repeat=True, help="TYPE NAME STATE PRIORITY from keepalived, or fifo PATH, send, worker"),
)


_verbose = False  # -v, once argv is parsed (never read from raw argv)


def _log_format(raw: str) -> str:
    if raw not in ("text", "json"):
        raise ValueError("must be text or json")
    return raw


def main() -> None:
    argv = sys.argv[1:]
    try:
        code = dispatch(argv)
    except HelpRequested as text:
        print(text)
        if not str(text).startswith(f"{PROG} (kahooks) "):  # -V prints its line alone
            from kahooks.hooks.manual import help_sections, notify_program

            print(help_sections(notify_program()))
        code = 0
    except UsageError as exc:
        _complain(f"{PROG}: {exc}")
        code = 2
    except ConfigError as exc:
        for line in exc.lines():
            _complain(f"{PROG}: {line}")
        code = 1
    except KahooksError as exc:
        _complain(f"{PROG}: {exc}")
        code = 1
    except KeyboardInterrupt:
        code = 1
    except Exception as exc:
        if _verbose:
            import traceback

            traceback.print_exc()
        _complain(f"{PROG}: internal error: {type(exc).__name__}: {exc}")
        code = 1
    sys.exit(code)


def _complain(line: str) -> None:
    """stderr for a person; syslog for keepalived's runs, whose output is discarded. Secrets hidden:
    an error can quote a channel's URL or the command line."""
    from kahooks.output import redact

    line = redact.in_argv(line, sys.argv[1:])
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass
    from kahooks.output import localsyslog

    localsyslog.send(PROG, line.removeprefix(f"{PROG}: "), localsyslog.SEVERITY_WARNING)


def dispatch(argv: Sequence[str]) -> int:
    global _verbose
    try:
        values = parse_argv(OPTIONS, argv, PROG)
    except UsageError as exc:
        _verbose = bool((getattr(exc, "partial", None) or {}).get("verbose"))
        raise
    _verbose = bool(values["verbose"])
    words = values["words"]
    command = words[0] if words else ""
    if command == "fifo":
        if len(words) != 2:
            raise UsageError("fifo takes the FIFO's path (keepalived appends it)")
        return run_fifo(values, words[1])
    if command == "worker":
        return run_worker(values)
    if command in ("queue", "retry-dead", "purge"):
        if len(words) != 1:
            raise UsageError(f"{command} takes no words")
        return run_spool_tool(command, values)
    if command == "send":
        event = event_from_flags(values, source="manual")
        if event is None:
            raise UsageError("send needs --instance NAME (or --group NAME, or --virtual-server) and --state STATE")
        return run_send(values, event)
    if not words and not (values["instance"] or values["group"] or values["state"] or values["virtual_server"]
                          or values["real_server"]):
        raise UsageError("expected TYPE NAME STATE PRIORITY (as keepalived's notify passes them), "
                         "or --instance NAME --state STATE")
    # Stamped inside Spool.record, under the spool's record lock (event_from_flags never returns
    # None here: a name or a state was given, and it raises for what is missing).
    def make_event() -> Event:
        event = Event.from_argv(words) if words else event_from_flags(values, source="flags")
        assert event is not None
        return event

    make_event()  # a usage error is said before anything touches the disk (no spool made for it)
    spool = validated_spool(values)
    if spool is not None:  # the configuration passed as it is now: record, wake a worker, nothing else
        record_in(spool, spool.path, make_event)
        ensure_worker(spool, values)
        return 0
    return record(values, make_event)


def event_from_flags(values: dict, source: str) -> Event | None:
    if values["virtual_server"] or values["real_server"]:
        return server_event_from_flags(values, source)
    if values["instance"] and values["group"]:
        raise UsageError("give --instance or --group, not both")
    name = values["instance"] or values["group"]
    if not name:
        if values["state"]:
            raise UsageError("--state needs --instance or --group")
        return None
    if not values["state"]:
        raise UsageError("--instance/--group needs --state")
    return Event.new("GROUP" if values["group"] else "INSTANCE", name, values["state"], values["priority"], source)


def server_event_from_flags(values: dict, source: str) -> Event:
    """keepalived runs notify_up/notify_down and quorum_up/quorum_down with no arguments: the flags name the servers."""
    if values["instance"] or values["group"]:
        raise UsageError("give --instance/--group or --virtual-server/--real-server, not both")
    if not values["virtual_server"]:
        raise UsageError("--real-server needs --virtual-server (the pool it belongs to)")
    if not values["state"]:
        raise UsageError("--virtual-server needs --state UP or DOWN")
    if values["real_server"]:
        return Event.lvs("RS", values["real_server"], values["virtual_server"], values["state"], source)
    return Event.lvs("VS", values["virtual_server"], values["virtual_server"], values["state"], source)


def spool_for(values: dict) -> Spool:
    from kahooks.notify.spool import Spool
    from kahooks.settings.config import spool_dir_of

    return Spool(values["spool"] or spool_dir_of(values["config"])).ensure()


def validated_spool(values: dict) -> Spool | None:
    """The spool to record in when the configuration, as it is on disk now, already passed
    check_config there; None otherwise (then `record` parses and validates it in full).

    Parsing TOML and building the channels costs several times the fsynced write. The stamp
    check_config leaves (state/config-ok) names the file and its drop-ins by identity, and the
    spool_dir the full parse found: a spool holding a stamp equal to the configuration's
    identity and to its own path is that configuration's spool. Where that spool is comes from
    a guess (guess_spool_dir) that the stamp confirms, so a wrong guess costs time, never an event.
    """
    from kahooks.notify.spool import BadEntry, Spool, SpoolError
    from kahooks.settings import fragments

    path = values["config"]
    expected = f"{path} {__version__} {fragments.identity(path)} "
    root = values["spool"] or guess_spool_dir(path)
    if root is None:
        return None
    spool = Spool(root)
    try:
        stamp = spool.read(("state",), "config-ok").decode(errors="replace")
    except (OSError, BadEntry, SpoolError):
        return None
    if stamp == expected + root or (values["spool"] and stamp.startswith(expected)):
        return spool
    return None


def guess_spool_dir(path: str) -> str | None:
    """Where the configuration's spool_dir most likely is, without a TOML parser: the last
    `spool_dir = "..."` among the top-level keys of the file and its drop-ins, else the default.

    Only a guess for validated_spool (the stamp confirms it). Linear, over capped reads through
    safefs; None when a file cannot be read (the full path then says why)."""
    from kahooks.files import safefs
    from kahooks.settings import fragments
    from kahooks.settings.defaults import DEFAULT_SPOOL
    from kahooks.settings.tomlfile import MAX_TOML

    found = DEFAULT_SPOOL
    try:
        for name in fragments.files(path):
            text = safefs.read_bytes(name, MAX_TOML).decode("utf-8", errors="replace")
            found = top_level_spool_dir(text) or found
    except (OSError, KahooksError):
        return None
    return found


_MULTI_LINE = ('"' * 3, "'" * 3)


def top_level_spool_dir(text: str) -> str | None:
    """The value of a one-line `spool_dir = "PATH"` (or 'PATH') before the first table; None when absent
    or written otherwise (escapes; after a multi-line string, whose lines are not keys)."""
    found = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            break  # top-level keys come before the first table
        if _MULTI_LINE[0] in stripped or _MULTI_LINE[1] in stripped:
            return None
        key, equals, value = stripped.partition("=")
        if not equals or key.strip() != "spool_dir":
            continue
        value = value.strip()
        quote = value[:1]
        end = value.find(quote, 1) if quote in ("'", '"') else -1
        if end > 0 and "\\" not in value[1:end]:
            found = value[1:end]
    return found


def load_config(path: str) -> Config:
    from kahooks.notifiers import load_config as load_with_channels

    return load_with_channels(path)


def record(values: dict, make_event: Callable[[], Event]) -> int:
    """The handler proper: durable first, then check the configuration, then wake a worker.

    The event is stamped and written under the spool's recording lock, so its id (which
    starts with the time) orders it correctly against handlers racing this one.
    """
    from kahooks.settings.config import spool_dir_of

    root = values["spool"] or spool_dir_of(values["config"])
    spool = record_in(None, root, make_event)
    check_config(spool, values["config"])  # raises ConfigError after the event is safe: nothing is lost
    ensure_worker(spool, values)
    return 0


def record_in(spool: Spool | None, root: str, make_event: Callable[[], Event]) -> Spool:
    """Stamp the event and write it durably in `spool` (made at `root` when None), under the recording lock."""
    from kahooks.notify.spool import Spool, SpoolError

    try:
        if spool is None:
            spool = Spool(root).ensure()
        spool.record(make_event)  # stamped under the record lock, which record() takes
    except OSError as exc:
        raise KahooksError(f"cannot record the event in {root}: {os_words(exc)}"
                           f"{' (' + exc.filename + ')' if exc.filename else ''}; the transition is NOT recorded") \
            from None
    except SpoolError as exc:
        raise KahooksError(f"cannot record the event: {exc}; the transition is NOT recorded") from None
    return spool


def check_config(spool: Spool, path: str) -> None:
    """Validate the configuration, unless this very file already passed.

    Full validation imports jinja2 and compiles every template (about 80 ms);
    the handler only pays that after the file changed. The worker validates in
    full whenever it starts.
    """
    from kahooks.settings import fragments

    # The main file and every conf.d drop-in: editing, adding or removing any of them revalidates.
    # The stamp ends with the spool_dir the file names: validated_spool finds the spool by it.
    expected = f"{path} {__version__} {fragments.identity(path)} "
    from kahooks.notify.spool import BadEntry

    try:
        if spool.read(("state",), "config-ok").decode(errors="replace").startswith(expected):
            return
    except (OSError, BadEntry):
        pass
    config = load_config(path)
    spool.write_atomic(("state",), "config-ok", expected + config.spool_dir)


def ensure_worker(spool: Spool, values: dict) -> bool:
    """Start a detached worker unless one holds the spool's lock; True when one was started."""
    probe = spool.take_worker_lock()
    if probe is None:
        return False
    os.close(probe)  # releases the probe lock at once: the worker takes it for itself
    # -P: the working directory is not put on sys.path, so a kahooks/ folder there is never imported.
    argv = [sys.executable, "-P", "-m", "kahooks.hooks.notify_cli", "worker", "--config", values["config"],
            "--spool", spool.path]
    if values["verbose"]:
        argv.append("--verbose")
    if values["log_format"] != "text":
        argv += ["--log-format", values["log_format"]]
    from kahooks.notify.spool import SpoolError

    # Its stderr is a log in the spool: where there is no syslog, delivery failures are still seen.
    # open_log never blocks nor reuses an inode linked in from elsewhere (kahooks.files.safefs.open_owned).
    try:
        log_fd = spool.open_log("worker.log", WORKER_LOG_LIMIT)
    except (OSError, SpoolError):
        log_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        # A new session: keepalived kills a STOP handler's process group after 1 s; the worker must live on.
        os.posix_spawn(sys.executable, argv, os.environ, setsid=True,
                       file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                     (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                                     (os.POSIX_SPAWN_DUP2, log_fd, 2)])
    finally:
        os.close(log_fd)
    return True


def run_spool_tool(command: str, values: dict) -> int:
    """queue, retry-dead, purge: the operator's view of the spool and what to do with what is stuck."""
    import time

    from kahooks.notify import spooltools

    if command == "purge" and not values["older_than"]:
        raise UsageError("purge needs --older-than AGE (only dead letters are purged)")
    older_than = spooltools.age_seconds(values["older_than"]) if values["older_than"] else None
    spool = spool_for(values)
    if not spool.root.is_dir():
        raise KahooksError(f"no spool at {spool.root}")
    if command == "queue":
        now = time.time()
        waiting = spooltools.letters(spool, "queue", values["channel"])
        dead = spooltools.letters(spool, "dead", values["channel"])
        incoming = len(spool.incoming())
        print(f"{spool.root}: {incoming} recorded, not yet fanned out; {len(waiting)} queued; {len(dead)} dead")
        for title, found in (("queued", waiting), ("dead", dead)):
            if found:
                print(f"{title}:")
                for letter in found:
                    print(f"  {spooltools.describe(letter, now)}")
        return 0
    if command == "retry-dead":
        config = load_config(values["config"])
        moved, kept = spooltools.retry_dead(spool, set(config.channels), values["channel"])
        for line in kept:
            print(f"kept: {line}")
        print(f"{moved} dead letter{'s' if moved != 1 else ''} queued again")
        if moved:
            ensure_worker(spool, values)
        return 0 if not kept else 1
    removed = spooltools.purge_dead(spool, older_than or 0.0, values["channel"])
    print(f"{removed} dead letter{'s' if removed != 1 else ''} older than {values['older_than']} removed")
    return 0


def run_worker(values: dict) -> int:
    import signal
    import threading

    from kahooks.notify.delivery import Worker
    from kahooks.output import logs
    from kahooks.settings import fragments
    from kahooks.system.signals import set_on_signals

    log = logs.setup("ka-notify", values["verbose"], to_stderr=values["foreground"], log_format=values["log_format"])
    path = values["config"]
    config = load_config(path)
    seen = fragments.identity(path)
    spool = spool_for(values)
    stop = threading.Event()
    set_on_signals(stop, (signal.SIGTERM, signal.SIGINT))
    # --idle-exit always wins; otherwise a foreground worker runs until stopped.
    idle_exit = values["idle_exit"] or (None if values["foreground"] else config.delivery["worker_idle_exit"])
    while True:
        lock = spool.take_worker_lock()
        if lock is None:
            return 0  # another worker has it
        log.info("worker %d delivering from %s", os.getpid(), spool.root)
        try:
            Worker(config, spool).run(stop, idle_exit, lambda: fragments.identity(path) != seen)
        finally:
            os.close(lock)
        if not stop.is_set() and fragments.identity(path) != seen:
            # The operator changed kahooks.toml (a channel fixed, say): deliver with it from now on.
            seen = fragments.identity(path)
            try:
                config = load_config(path)
                log.info("worker %d: %s changed; delivering with the new configuration", os.getpid(), path)
            except ConfigError as exc:
                for line in exc.lines():
                    log.error("worker %d: %s; keeping the previous configuration", os.getpid(), line)
            continue
        # Released the lock, then look once more: a handler that saw the lock held just before
        # we let go did not start a worker, so its event is ours to deliver.
        if stop.is_set() or spool.idle():
            log.info("worker %d stopping (%s)", os.getpid(), "signal" if stop.is_set() else "idle")
            return 0


def run_fifo(values: dict, path: str) -> int:
    import signal
    import stat
    import threading

    from kahooks.notify.fifo import Recorder, record_fifo
    from kahooks.output import logs
    from kahooks.system.signals import set_on_signals

    log = logs.setup("ka-notify", values["verbose"], to_stderr=values["verbose"], log_format=values["log_format"])
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            raise UsageError(f"{path} is not a FIFO")
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    spool = spool_for(values)
    try:
        load_config(values["config"])
    except ConfigError as exc:  # keep recording: the worker delivers once the file is fixed
        for line in exc.lines():
            log.error("%s", line)
    stop = threading.Event()
    set_on_signals(stop, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))

    count = record_fifo(path, Recorder(spool, lambda: ensure_worker(spool, values)), stop)
    log.info("fifo: read %d lines from %s", count, path)
    return 0


def run_send(values: dict, event: Event) -> int:
    config = load_config(values["config"])
    channels = config.channels_for(event)
    if not values["dry_run"]:
        spool = spool_for(values)
        spool.record(event)
        ensure_worker(spool, values)
        print(f"recorded {event.name} {event.state} as event {event.id} for: {', '.join(channels) or 'no channel'}")
        return 0
    from kahooks.notify.delivery import acts_on, compose
    from kahooks.notify.spool import Delivery, previous_state

    previous = previous_state(spool_for(values).instance_states(), event) if values["spool"] else None
    if not channels:
        print(f"no rule picks a channel for {event.type} {event.name} {event.state}")
    for name in channels:
        channel = config.channels[name]
        if not acts_on(channel, event):
            print(f"--- {name} ({channel.kind}) would send nothing: it acts on VRRP transitions only\n")
            continue
        message = compose(config, channel, [Delivery(None, event, name, previous)])
        print(f"--- {name} ({channel.kind}) would send:\nSubject: {message.subject}\n\n{message.body.rstrip()}\n")
    return 0


if __name__ == "__main__":
    main()
