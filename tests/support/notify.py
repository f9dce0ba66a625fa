"""Build ka-notify configurations and workers for tests."""

from __future__ import annotations

from pathlib import Path

from kahooks.notifiers import channel_types
from kahooks.notify.delivery import Worker
from kahooks.notify.spool import Spool
from kahooks.settings.config import Config, load


def write_config(directory: Path, channels: str, delivery: str = "flap_window = 0",
                 rules: str = '[[rules]]\nchannels = ["{names}"]', vips: tuple[str, ...] = ("192.0.2.10",),
                 host: str = "lb-test") -> Path:
    names = [line.split(".", 1)[1].rstrip("]") for line in channels.splitlines()
             if line.startswith("[channels.")]
    path = directory / "kahooks.toml"
    vip_list = ", ".join(f'"{vip}"' for vip in vips)
    path.write_text(f'spool_dir = "{directory / "spool"}"\nhost = "{host}"\n\n[delivery]\n{delivery}\n\n'
                    f'[instances.VI_1]\nvips = [{vip_list}]\n\n{channels}\n\n'
                    + rules.replace("{names}", '", "'.join(names)) + "\n")
    return path


def worker_for(path: Path) -> tuple[Config, Spool, Worker]:
    config = load(str(path), channel_types())
    spool = Spool(config.spool_dir).ensure()
    return config, spool, Worker(config, spool)


def run_worker_in(node: object, config: Path, timeout: float = 30) -> str:
    """Deliver everything queued for `config` from inside a lab node (its network namespace); return stderr."""
    import sys

    result = node.run([sys.executable, "-P", "-m", "kahooks.hooks.notify_cli", "worker", "--foreground",
                       "--idle-exit", "0.3", "-c", str(config)], check=False, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stderr
