"""The `kahooks` commands about keepalived.conf itself: doctor, init, drain and undrain.

Registered on the `kahooks` group by kahooks_cli; each imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from kahooks.errors import KahooksError, counted, os_words
from kahooks.settings.config import DEFAULT_PATH, ConfigError


def _fail(command: str, message: str, code: int) -> NoReturn:
    """One line on stderr, then the exit status: never a traceback for an operator's mistake."""
    click.echo(f"kahooks {command}: {message}", err=True)
    sys.exit(code)


@click.command()
@click.option("-f", "--file", "path", default="/etc/keepalived/keepalived.conf", show_default=True,
              help="this node's keepalived.conf")
@click.option("--peer", "peer_paths", multiple=True, metavar="OTHER.conf",
              help="another node's keepalived.conf (repeat for each): compare them and simulate the election")
@click.option("--json", "as_json", is_flag=True, help="one JSON object: findings and scenarios (shape in the README)")
@click.option("--live", is_flag=True, help="also ask the running keepalived (root) for each instance's state, "
                                           "and show what kahooks serve's wire observer hears")
@click.option("-c", "--config", "kahooks_config", default="/etc/kahooks/kahooks.toml", show_default=True,
              help="with --live: the kahooks.toml of the kahooks serve whose wire view is shown")
@click.option("-i", "--config-id", default=None, help="keepalived's -i, for @ID lines (default: the short host name)")
@click.option("--no-keepalived-test", is_flag=True, help="do not run `keepalived -t` on the file")
@click.option("--keepalived-version", type=click.Choice(["2.2.7", "2.3.3"]), default=None,
              help="model this keepalived's rules (default: the local `keepalived --version`)")
@click.option("--file-value", "file_values", multiple=True, metavar="NAME=VALUE",
              help="the value track_file NAME holds while its check fails (default 1, as kahooks writes; repeat)")
@click.option("-v", "--verbose", is_flag=True, help="tracebacks on unexpected errors")
@click.option("--gate", is_flag=True,
              help="refuse (exit 1) a config with errors, one line each, silent otherwise: for Ansible's "
                   "validate: and pre-commit; FILE arguments are each gated (with the --peer files)")
@click.option("--elsewhere", is_flag=True,
              help="the files are other machines' (rendered on a controller, in CI): skip what only the node "
                   "can tell (its scripts, users, keepalived -t)")
@click.argument("files", nargs=-1, metavar="[FILE]...")
def doctor(path: str, peer_paths: tuple[str, ...], as_json: bool, live: bool, kahooks_config: str,
           config_id: str | None, no_keepalived_test: bool, keepalived_version: str | None, file_values: tuple[str, ...],
           verbose: bool, gate: bool, elsewhere: bool, files: tuple[str, ...]) -> None:
    """Find a keepalived pair's mistakes before they cause an outage.

    Reads keepalived.conf as keepalived does (includes, definitions, @ID lines), reports
    each finding with FILE:LINE and its fix, and simulates the election: if a tracked item
    fails on a node, who holds each VIP, after how long, and after it recovers.

    Exit status: 0 no errors, 1 errors found, 2 a file cannot be read.
    """
    from kahooks.doctor import conf, report, versions

    if files and not gate:
        raise click.UsageError("FILE arguments go with --gate; give one file with -f")
    values = _file_values(file_values)
    if gate:
        sys.exit(_gate(list(files) or [path], list(peer_paths), config_id, not (no_keepalived_test or elsewhere),
                       not elsewhere, verbose, keepalived_version, values))

    try:
        version = versions.asked(keepalived_version) if keepalived_version else versions.local()
        result = report.diagnose(path, list(peer_paths), config_id,
                                 test_with_keepalived=not (no_keepalived_test or elsewhere),
                                 version=version, file_values=values, on_this_host=not elsewhere)
        if live:
            report.add_live(result)
            result.wire, result.wire_lines = _wire_view(kahooks_config)
    except conf.ConfError as exc:
        _fail("doctor", str(exc), 2)
    except Exception as exc:  # one line for an operator; -v shows the traceback
        if verbose:
            raise
        _fail("doctor", f"{type(exc).__name__}: {exc}", 2)
    click.echo(report.render_json(result) if as_json else report.render_text(result))
    sys.exit(1 if result.errors else 0)


def _wire_view(kahooks_config: str) -> tuple[dict | None, list[str]]:
    """The wire observer's view from kahooks serve's status.json, as `kahooks status` shows it, for --live
    beside keepalived's own: (its JSON or None, its lines). Never fails the doctor."""
    import time

    from kahooks.admin.kahooks_cli import state_dir_of
    from kahooks.daemon import status
    from kahooks.errors import KahooksError

    try:
        state_dir = state_dir_of(kahooks_config)
        current = status.read(state_dir)
    except (KahooksError, OSError, status.StatusUnreadable) as exc:
        return None, ["", f"WIRE: not shown: {kahooks_config}: {exc}"]
    if current is None:
        return None, ["", f"WIRE: not shown: kahooks serve is not running (no status in {state_dir})"]
    wire = current.get("wire")
    lines = status.format_wire(wire, time.time())
    title = "WIRE (kahooks serve's observer)" + (":" if lines else ": not in its status")
    return dict(wire) if wire else None, ["", title, *lines[1:]]


def _file_values(pairs: tuple[str, ...]) -> dict[str, int]:
    """--file-value NAME=VALUE: a whole number keepalived reads from a track file (it ignores what is
    outside -2^31..2^31, track_file.c process_track_file)."""
    from kahooks.settings.options import number_problem

    values: dict[str, int] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        try:
            value: object = int(text.strip(), 10) if len(text) <= 12 else None
        except ValueError:
            value = None
        problem = number_problem(value, -(2**31), 2**31, whole=True)
        if not name or not equals or problem is not None:
            raise click.BadParameter(f"{pair!r}: NAME=VALUE, VALUE {problem or 'a whole number'}",
                                     param_hint="--file-value")
        values[name] = value  # type: ignore[assignment]  # number_problem passed: an int
    return values


def _gate(paths: list[str], peer_paths: list[str], config_id: str | None, keepalived_test: bool, here: bool,
          verbose: bool, keepalived_version: str | None = None, file_values: dict[str, int] | None = None) -> int:
    """--gate: each file with the peers; its errors one line each on stderr; 0 accepted, 1 refused, 2 unreadable."""
    from kahooks.doctor import conf, report, versions

    worst = 0
    for path in paths:
        try:
            version = versions.asked(keepalived_version) if keepalived_version else versions.local()
            result = report.diagnose(path, peer_paths, config_id, test_with_keepalived=keepalived_test,
                                     version=version, file_values=file_values, on_this_host=here)
        except conf.ConfError as exc:
            click.echo(" ".join(f"kahooks doctor: refused: {exc}".split()), err=True)
            worst = 2
            continue
        except Exception as exc:  # one line for an operator; -v shows the traceback
            if verbose:
                raise
            click.echo(f"kahooks doctor: refused {path}: {type(exc).__name__}: {exc}", err=True)
            worst = 2
            continue
        errors = [item for item in result.findings if item.severity == "error"]
        for item in errors:
            place = f"{item.file}:{item.line}" if item.line else item.file
            fix = f" (fix: {item.fix})" if item.fix else ""
            click.echo(" ".join(f"{place}: [{item.code}] {item.message}{fix}".split()), err=True)
        if errors:
            click.echo(f"kahooks doctor: refused {path}: {counted(len(errors), 'error')}", err=True)
            worst = max(worst, 1)
    return worst


@click.command()
@click.option("-f", "--file", "source", default="/etc/keepalived/keepalived.conf", show_default=True,
              help="this node's keepalived.conf: its instances, VIPs, notify_fifo and scripts")
@click.option("-o", "--output", default=DEFAULT_PATH, show_default=True, help="where to write kahooks.toml")
@click.option("--email-to", default=None, help="an address for an email channel (asked on a terminal)")
@click.option("--smtp-server", default=None, help="HOST[:PORT] for it (asked on a terminal; default 127.0.0.1:25)")
@click.option("--slack-url", default=None, help="a Slack webhook URL, kept in a file only root reads")
@click.option("--force", is_flag=True, help="replace an existing file")
def init(source: str, output: str, email_to: str | None, smtp_server: str | None, slack_url: str | None,
         force: bool) -> None:
    """Write a commented starting kahooks.toml from this node's keepalived.conf.

    Asks for an email address and a Slack webhook on a terminal (Enter skips), nothing otherwise.
    The result is checked as `kahooks validate` would before it is written.
    """
    import os

    from kahooks.admin import starter
    from kahooks.doctor import conf
    from kahooks.doctor.model import build
    from kahooks.files import atomicfile

    if os.path.exists(output) and not force:
        _fail("init", f"{output} exists; --force replaces it", 1)
    try:
        node = build(conf.read(source), source)
    except conf.ConfError as exc:
        _fail("init", str(exc), 2)
    asking = sys.stdin.isatty() and sys.stdout.isatty()
    if asking and email_to is None:
        email_to = click.prompt("email transitions to (Enter: no email)", default="", show_default=False)
    if asking and email_to and smtp_server is None:
        smtp_server = click.prompt("SMTP server HOST[:PORT]", default="127.0.0.1:25")
    if asking and slack_url is None:
        slack_url = click.prompt("Slack webhook URL (Enter: no Slack)", default="", show_default=False,
                                 hide_input=True)
    answers = starter.Answers(email_to or "", smtp_server or "127.0.0.1:25", slack_url or "")
    folder = os.path.dirname(os.path.abspath(output))
    secret = os.path.join(folder, "slack.url")
    text = starter.render(node, answers, secret)
    try:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        if slack_url:  # a fresh file made 0600 and renamed over: an old file's mode (or inode) is never reused
            atomicfile.replace(secret, (slack_url + "\n").encode(), mode=0o600)
        _check_and_write(output, text)
    except ConfigError as exc:  # a bug of init's, or an answer no channel accepts: say which
        _fail("init", "\nkahooks init: ".join(exc.lines()), 1)  # every problem, each on its line
    except OSError as exc:
        _fail("init", f"{exc.filename or output}: {os_words(exc)}", 1)
    click.echo(f"wrote {output}: {counted(len(node.instances), 'instance')}, "
               f"{counted(text.count('[checks.'), 'check')} for kahooks serve; "
               f"check it with `kahooks validate -c {output}`")


def _check_and_write(output: str, text: str) -> None:
    """Validate `text` as kahooks.toml (in a temporary file beside `output`), then put it in place."""
    import os
    import tempfile

    from kahooks.daemon.service import load_config
    from kahooks.files import atomicfile

    folder = os.path.dirname(os.path.abspath(output))
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".kahooks-init-", suffix=".toml") as draft:
        draft.write(text)
        draft.flush()
        load_config(draft.name)
    atomicfile.replace(output, text.encode(), mode=0o644)


@click.command()
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
    from kahooks.admin import drain as draining
    from kahooks.admin.pools import pools
    from kahooks.doctor import conf
    from kahooks.errors import UsageError

    if list_only:
        try:
            entries = draining.listing(directory)
        except UsageError as exc:
            _fail("drain", str(exc), 2)
        except OSError as exc:
            _fail("drain", f"{exc.filename or directory}: {os_words(exc)}", 1)
        for name, note in entries:
            click.echo(f"{name}\t{note}")
        return
    if not server:
        raise click.UsageError("SERVER (IP:PORT) is required, or --list")
    try:
        if wait_connections:
            draining.check_timeout(timeout)  # before anything is drained
        outcome = draining.drain(server, pools(path), directory, reason, force)
    except (UsageError, conf.ConfError) as exc:
        _fail("drain", str(exc), 2)
    except KahooksError as exc:
        _fail("drain", f"refused: {exc}", 1)
    except OSError as exc:
        _fail("drain", f"{exc.filename or directory}: {os_words(exc)}", 1)
    click.echo(outcome.message)
    if wait_connections:
        left = draining.wait_connections(server, timeout)
        if left:
            _fail("drain", f"{left} connection(s) to {server} still open after {timeout:g} s", 1)
        click.echo(f"no connection to {server} remains")


@click.command()
@click.argument("server")
@click.option("--dir", "directory", default="/run/kahooks/drain", show_default=True, help="where drain files live")
def undrain(server: str, directory: str) -> None:
    """Put a drained real server (IP:PORT) back: its checks pass again once it is healthy."""
    from kahooks.admin import drain as draining
    from kahooks.errors import UsageError

    try:
        click.echo(draining.undrain(server, directory).message)
    except UsageError as exc:
        _fail("undrain", str(exc), 2)
    except OSError as exc:
        _fail("undrain", f"{exc.filename or directory}: {os_words(exc)}", 1)


COMMANDS = (doctor, init, drain, undrain)
