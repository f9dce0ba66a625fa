"""`kahooks`: the operator's command (validate a configuration; the lab of real keepalived nodes)."""

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


@cli.group()
def lab() -> None:
    """A lab of real keepalived nodes in network namespaces (root, from a source checkout)."""


@lab.command("demo")
def lab_demo() -> None:
    """Fail a keepalived pair over and print the timeline of what happened, then tear it down."""
    from kahooks.lab import demo
    from kahooks.lab.netns import LabError

    try:
        sys.exit(demo.main())
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
