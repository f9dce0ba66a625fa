"""`kahooks`: the operator's command: serve, status, validate, doctor, drain, and the lab of real keepalived nodes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kahooks import __version__
from kahooks.config import DEFAULT_PATH, ConfigError
from kahooks.errors import KahooksError, os_words


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="kahooks", message="%(prog)s (kahooks) %(version)s")
def cli() -> None:
    """Checks, notify handlers and a daemon for keepalived."""


def _report_config_error(path: str, exc: ConfigError) -> None:
    for line in exc.lines():
        click.echo(line, err=True)
    click.echo(f"{path}: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}", err=True)


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
    click.echo(f"{path}: OK ({len(loaded.channels)} channels, {len(loaded.rules)} rules, {len(checks)} checks, "
               f"spool {loaded.spool_dir})")


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
    from kahooks import logs
    from kahooks.daemon.service import Daemon

    logs.setup("kahooks-serve", verbose, to_stderr=True, log_format=log_format)
    try:
        code = Daemon(path).run()
    except ConfigError as exc:
        _report_config_error(path, exc)
        sys.exit(1)
    except KahooksError as exc:  # refused to start (state_dir or spool unwritable): say why, exit 1
        click.echo(f"kahooks serve: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # one line for an operator; -v shows the traceback
        if verbose:
            raise
        click.echo(f"kahooks serve: {type(exc).__name__}: {exc}", err=True)
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

    from kahooks.config import read_toml
    from kahooks.daemon import status as daemon_status
    from kahooks.daemon.settings import DEFAULT_STATE_DIR
    from kahooks.spool import Spool

    # Only where the daemon writes is needed (its status names its spool): no channel is built,
    # so no secret file must be readable.
    try:
        data = read_toml(path)
    except ConfigError as exc:
        _report_config_error(path, exc)
        sys.exit(1)
    serve: dict = data["serve"] if isinstance(data.get("serve"), dict) else {}
    state_dir = str(serve.get("state_dir") or DEFAULT_STATE_DIR)
    from kahooks.spool import SpoolError

    try:
        current = daemon_status.read(state_dir)
    except daemon_status.StatusUnreadable as exc:
        click.echo(f"kahooks status: {exc}", err=True)
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


def _keepalived_view() -> list[dict] | None:
    """keepalived's own state of each instance, next to the daemon's, when keepalived runs here and we may ask."""
    import os
    import subprocess

    from kahooks.doctor import running

    if os.geteuid() != 0 or not os.path.exists("/run/keepalived.pid"):
        return None
    try:
        return [{"instance": item.name, "state": item.state, "priority": item.effective_priority,
                 "base_priority": item.base_priority} for item in running.live_state(wait=1.0)]
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return None  # status must never fail because keepalived could not be asked


@cli.command()
@click.option("-f", "--file", "path", default="/etc/keepalived/keepalived.conf", show_default=True,
              help="this node's keepalived.conf")
@click.option("--peer", "peer_paths", multiple=True, metavar="OTHER.conf",
              help="another node's keepalived.conf (repeat for each): compare them and simulate the election")
@click.option("--json", "as_json", is_flag=True, help="one JSON object: findings and scenarios (shape in the README)")
@click.option("--live", is_flag=True, help="also ask the running keepalived (root) for each instance's state")
@click.option("-i", "--config-id", default=None, help="keepalived's -i, for @ID lines (default: the short host name)")
@click.option("--no-keepalived-test", is_flag=True, help="do not run `keepalived -t` on the file")
@click.option("-v", "--verbose", is_flag=True, help="tracebacks on unexpected errors")
def doctor(path: str, peer_paths: tuple[str, ...], as_json: bool, live: bool, config_id: str | None,
           no_keepalived_test: bool, verbose: bool) -> None:
    """Find a keepalived pair's mistakes before they cause an outage.

    Reads keepalived.conf as keepalived does (includes, definitions, @ID lines), reports
    each finding with FILE:LINE and its fix, and simulates the election: if a tracked item
    fails on a node, who holds each VIP, after how long, and after it recovers.

    Exit status: 0 no errors, 1 errors found, 2 a file cannot be read.
    """
    from kahooks.doctor import conf, report

    try:
        result = report.diagnose(path, list(peer_paths), config_id, test_with_keepalived=not no_keepalived_test)
        if live:
            report.add_live(result)
    except conf.ConfError as exc:
        click.echo(f"kahooks doctor: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # one line for an operator; -v shows the traceback
        if verbose:
            raise
        click.echo(f"kahooks doctor: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
    click.echo(report.render_json(result) if as_json else report.render_text(result))
    sys.exit(1 if result.errors else 0)


@cli.command()
@click.argument("server", required=False)
@click.option("-f", "--file", "path", default="/etc/keepalived/keepalived.conf", show_default=True,
              help="the keepalived.conf whose virtual_server blocks name the pools and their quorum")
@click.option("--dir", "directory", default="/run/kahooks/drain", show_default=True,
              help="where drain files live (the MISC_CHECKs' --maintenance-file DIR/IP:PORT)")
@click.option("--wait-connections", is_flag=True, help="then wait until no established connection to it remains")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="for --wait-connections, in seconds")
@click.option("--reason", default="", help="written into the drain file (who and why)")
@click.option("--force", is_flag=True, help="drain even below a pool's quorum, or a server in no pool")
@click.option("--list", "list_only", is_flag=True, help="show what is drained")
def drain(server: str | None, path: str, directory: str, wait_connections: bool, timeout: float, reason: str,
          force: bool, list_only: bool) -> None:
    """Take a real server (IP:PORT) out of its LVS pools before a deploy; `kahooks undrain` puts it back.

    Refuses (exit 1) to leave a virtual server below its quorum; a lock makes two pipelines
    decide one after the other. Exit status: 0 drained, 1 refused or connections still open,
    2 bad arguments or an unreadable keepalived.conf.
    """
    from kahooks.doctor import conf
    from kahooks.doctor import drain as draining
    from kahooks.doctor.pools import pools
    from kahooks.errors import UsageError

    if list_only:
        for name in draining.drained(directory):
            click.echo(f"{name}\t{(Path(directory) / name).read_text(errors='replace').strip()}")
        return
    if not server:
        raise click.UsageError("SERVER (IP:PORT) is required, or --list")
    try:
        outcome = draining.drain(server, pools(path), directory, reason, force)
    except (UsageError, conf.ConfError) as exc:
        click.echo(f"kahooks drain: {exc}", err=True)
        sys.exit(2)
    except KahooksError as exc:
        click.echo(f"kahooks drain: refused: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"kahooks drain: {exc.filename or directory}: {os_words(exc)}", err=True)
        sys.exit(1)
    click.echo(outcome.message)
    if wait_connections:
        left = draining.wait_connections(server, timeout)
        if left:
            click.echo(f"kahooks drain: {left} connection(s) to {server} still open after {timeout:g} s", err=True)
            sys.exit(1)
        click.echo(f"no connection to {server} remains")


@cli.command()
@click.argument("server")
@click.option("--dir", "directory", default="/run/kahooks/drain", show_default=True, help="where drain files live")
def undrain(server: str, directory: str) -> None:
    """Put a drained real server (IP:PORT) back: its checks pass again once it is healthy."""
    from kahooks.doctor import drain as draining
    from kahooks.errors import UsageError

    try:
        click.echo(draining.undrain(server, directory).message)
    except UsageError as exc:
        click.echo(f"kahooks undrain: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"kahooks undrain: {exc.filename or directory}: {os_words(exc)}", err=True)
        sys.exit(1)


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
