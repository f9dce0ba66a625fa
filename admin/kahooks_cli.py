"""`kahooks`: the operator's command: serve, status, validate, init, doctor, drain, and the keepalived lab."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kahooks import __version__
from kahooks.errors import KahooksError, counted, os_words
from kahooks.settings.config import DEFAULT_PATH, ConfigError


class _Documented(click.Group):
    """The group whose --help ends with the manual's description, examples and exit status."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from kahooks.hooks.manual import help_sections, kahooks_program

        formatter.write(help_sections(kahooks_program()) + "\n")


@click.group(cls=_Documented, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="kahooks", message="%(prog)s (kahooks) %(version)s")
def cli() -> None:
    """Checks, notify handlers and a daemon for keepalived."""


def _report_config_error(path: str, exc: ConfigError) -> None:
    for line in exc.lines():
        click.echo(_redacted(line), err=True)
    click.echo(f"{path}: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}", err=True)


def _redacted(line: str) -> str:
    """An error line with its secrets hidden: a configuration error can quote a channel's URL."""
    from kahooks.output import redact

    return redact.text(line)


def _state_dir(path: str) -> str:
    """Where the daemon of kahooks.toml `path` writes (status and snmp need no more of it). A bad file is
    reported and exits 1."""
    try:
        return state_dir_of(path)
    except ConfigError as exc:
        _report_config_error(path, exc)
        sys.exit(1)


def state_dir_of(path: str) -> str:
    """Where the daemon of kahooks.toml `path` writes; ConfigError for a bad file. No channel is built, so
    no secret file must be readable."""
    from kahooks.daemon.settings import DEFAULT_STATE_DIR
    from kahooks.settings.config import read_settings

    data = read_settings(path)
    serve: dict = data["serve"] if isinstance(data.get("serve"), dict) else {}
    return str(serve.get("state_dir") or DEFAULT_STATE_DIR)


@cli.command()
@click.option("-c", "--config", "path", default=DEFAULT_PATH, show_default=True, help="configuration file")
def validate(path: str) -> None:
    """Check a configuration file; report every problem with its key path and line."""
    from kahooks.daemon.service import load_config

    try:
        loaded = load_config(path)
    except ConfigError as exc:
        _report_config_error(path, exc)
        sys.exit(1)
    checks = loaded.sections["checks"]
    drop_ins = "".join(f" + {name}" for name in loaded.files[1:])
    click.echo(f"{path}{drop_ins}: OK ({counted(len(loaded.channels), 'channel')}, {counted(len(loaded.rules), 'rule')}, "
               f"{counted(len(checks), 'check')}, spool {loaded.spool_dir})")


@cli.command()
@click.option("-c", "--config", "path", default=DEFAULT_PATH, show_default=True, help="configuration file")
@click.option("-v", "--verbose", is_flag=True, help="debug logging and tracebacks")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object a line (time, level, logger, message) for log shippers")
def serve(path: str, verbose: bool, log_format: str) -> None:
    """Run the checks in-process, write keepalived track files, read the notify FIFO and deliver.

    One per node, under systemd (contrib/systemd/kahooks.service). SIGHUP reloads
    the configuration (an invalid one is refused and the running one kept);
    SIGTERM stops, keeping undelivered notifications in the spool.
    """
    from kahooks.daemon.service import Daemon
    from kahooks.output import logs

    logs.setup("kahooks-serve", verbose, to_stderr=True, log_format=log_format)
    try:
        code = Daemon(path).run()
    except ConfigError as exc:
        _report_config_error(path, exc)
        sys.exit(1)
    except KahooksError as exc:  # refused to start (state_dir or spool unwritable): say why, exit 1
        click.echo(_redacted(f"kahooks serve: {exc}"), err=True)
        sys.exit(1)
    except Exception as exc:  # one line for an operator; -v shows the traceback
        if verbose:
            raise
        click.echo(_redacted(f"kahooks serve: {type(exc).__name__}: {exc}"), err=True)
        sys.exit(1)
    sys.exit(code)


@cli.command()
@click.option("-c", "--config", "path", default=DEFAULT_PATH, show_default=True, help="configuration file")
@click.option("--json", "as_json", is_flag=True, help="the daemon's status.json, with the spool depth")
@click.option("--max-age", default=3.0, show_default=True, help="a heartbeat older than this means not running")
def status(path: str, as_json: bool, max_age: float) -> None:
    """What `kahooks serve` is doing: each check's state and why, last transitions, spool depth.

    Exit status 0 while the daemon runs and every check is healthy, 1 otherwise.
    """
    import json

    from kahooks.daemon import status as daemon_status
    from kahooks.notify.spool import Spool

    state_dir = _state_dir(path)
    from kahooks.notify.spool import SpoolError

    try:
        current = daemon_status.read(state_dir)
    except daemon_status.StatusUnreadable as exc:
        click.echo(_redacted(f"kahooks status: {exc}"), err=True)
        sys.exit(1)
    if current is None:
        click.echo(f"kahooks serve is not running: no status in {state_dir}", err=True)
        sys.exit(1)
    spool_dir = current.get("spool_dir")
    try:
        spool = Spool(spool_dir).depth() if spool_dir and Path(spool_dir).is_dir() else None
    except (OSError, SpoolError) as exc:  # not root: the spool is keepalived_script's
        click.echo(f"kahooks status: spool {spool_dir} not shown: {os_words(exc)}", err=True)
        spool = None
    alive = daemon_status.daemon_alive(current, max_age)
    keepalived = _keepalived_view()
    if as_json:
        click.echo(json.dumps({**current, "spool": spool, "alive": alive[0], "keepalived": keepalived}, indent=1,
                              sort_keys=True))
    else:
        click.echo(daemon_status.format_status(current, spool, alive))
        for instance in keepalived or []:
            click.echo(f"keepalived: {instance['instance']} {instance['state']}, priority {instance['priority']}"
                       f" (base {instance['base_priority']})")
    healthy = alive[0] and all(check["ok"] and not check.get("drained_by") for check in current["checks"].values())
    sys.exit(0 if healthy else 1)


@cli.command()
@click.option("-c", "--config", "path", default=DEFAULT_PATH, show_default=True, help="configuration file")
@click.option("--base", default=".1.3.6.1.4.1.8072.9999.9999.28", show_default=True, metavar="OID",
              help="the OID snmpd's pass_persist line gives (KAHOOKS-MIB's kahooksMIB)")
@click.option("--max-age", default=3.0, show_default=True, help="a heartbeat older than this means not running")
def snmp(path: str, base: str, max_age: float) -> None:
    """Answer snmpd's pass_persist requests from the daemon's status (contrib/snmp/).

    Run by snmpd, never by hand: `pass_persist OID /usr/bin/kahooks snmp` in snmpd.conf.
    Reads status.json and the spool at most once a second; never asks the daemon.
    """
    from kahooks.admin import snmp as passing
    from kahooks.settings.options import number_problem

    arcs = passing.parse_oid(base)
    if arcs is None or len(arcs) < 2:
        click.echo(f"kahooks snmp: --base {base!r} is not a numeric OID such as .1.3.6.1.4.1.8072.9999.9999.28",
                   err=True)
        sys.exit(2)
    problem = number_problem(max_age, 0.1, 3600.0)
    if problem:
        click.echo(f"kahooks snmp: --max-age {problem}", err=True)
        sys.exit(2)
    state_dir = _state_dir(path)
    tree = passing.Tree(arcs, passing.reader(state_dir, max_age))
    try:
        sys.exit(passing.serve(sys.stdin.buffer, sys.stdout.buffer, tree))
    except (BrokenPipeError, KeyboardInterrupt):  # snmpd went away
        sys.exit(0)


def _keepalived_view() -> list[dict] | None:
    """keepalived's own state of each instance, next to the daemon's, when keepalived runs here and we may ask."""
    import os

    from kahooks.doctor import running

    if os.geteuid() != 0 or not os.path.exists("/run/keepalived.pid"):
        return None
    try:
        return [{"instance": item.name, "state": item.state, "priority": item.effective_priority,
                 "base_priority": item.base_priority} for item in running.live_state(wait=1.0)]
    except (OSError, ValueError, KahooksError):
        return None  # status must never fail because keepalived could not be asked


def _add_keepalived_commands() -> None:
    from kahooks.admin.keepalived_cli import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_add_keepalived_commands()


@cli.group()
def lab() -> None:
    """A lab of real keepalived nodes in network namespaces (root, from a source checkout)."""


@lab.command("demo")
@click.option("--daemon", is_flag=True, help="with `kahooks serve` and track files instead of track scripts")
def lab_demo(daemon: bool) -> None:
    """Fail a keepalived pair over and print the timeline of what happened, then tear it down."""
    from kahooks.lab import demo
    from kahooks.lab.netns import LabError

    try:
        sys.exit(demo.main(daemon=daemon))
    except LabError as exc:
        click.echo(f"kahooks lab: {exc}", err=True)
        sys.exit(1)


@lab.command("diff")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True, help="the first pair's seed")
@click.option("--pairs", type=click.IntRange(1, 10000), default=50, show_default=True, help="how many pairs (seeds SEED..)")
@click.option("--jobs", type=click.IntRange(1, 16), default=4, show_default=True, help="pairs run at once")
@click.option("--root", type=click.Path(exists=True, file_okay=False), default=None,
              help="run keepalived from this Debian root (chroot ROOT /usr/sbin/keepalived)")
@click.option("--tag", default="khldf", show_default=True, help="namespaces TAG<slot>-*")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="write every comparison to this file")
def lab_diff(seed: int, pairs: int, jobs: int, root: str | None, tag: str, json_path: str | None) -> None:
    """Generated keepalived pairs on real keepalived against the doctor's predictions (exit 1: a disagreement)."""
    from kahooks.lab import differential
    from kahooks.lab.netns import LabError

    try:
        sys.exit(differential.main(seed, pairs, jobs, root, tag, json_path))
    except LabError as exc:
        click.echo(f"kahooks lab: {exc}", err=True)
        sys.exit(1)


@lab.command("down")
@click.option("--tag", default="khldemo", show_default=True, help="the lab's tag (namespaces TAG-*)")
def lab_down(tag: str) -> None:
    """Remove what a crashed lab left behind: only namespaces named TAG-*."""
    from kahooks.lab.netns import LabError, teardown_tag

    try:
        removed = teardown_tag(tag)
    except LabError as exc:
        click.echo(f"kahooks lab: {exc}", err=True)
        sys.exit(1)
    click.echo(f"removed {', '.join(removed)}" if removed else f"nothing of lab {tag} was left")


def main() -> None:
    cli()
