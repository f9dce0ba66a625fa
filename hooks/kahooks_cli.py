"""`kahooks`: the operator's command (validate a configuration; later serve, status)."""

from __future__ import annotations

import sys

import click

from kahooks import __version__
from kahooks.config import DEFAULT_PATH, ConfigError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kahooks")
def cli() -> None:
    """Checks, notify handlers and a daemon for keepalived."""


@cli.command()
@click.option("-c", "--config", "path", default=DEFAULT_PATH, show_default=True, help="configuration file")
def validate(path: str) -> None:
    """Check a configuration file; report every problem with its key path and line."""
    from kahooks import config
    from kahooks.notifiers import channel_types

    try:
        loaded = config.load(path, channel_types())
    except ConfigError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        click.echo(f"{path}: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}", err=True)
        sys.exit(1)
    click.echo(f"{path}: OK ({len(loaded.channels)} channels, {len(loaded.rules)} rules, "
               f"spool {loaded.spool_dir})")


def main() -> None:
    cli()
