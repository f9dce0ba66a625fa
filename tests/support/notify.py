"""Build ka-notify configurations and workers for tests."""

from __future__ import annotations

from pathlib import Path

from kahooks.config import Config, load
from kahooks.delivery import Worker
from kahooks.notifiers import channel_types
from kahooks.spool import Spool


def write_config(directory: Path, channels: str, delivery: str = "flap_window = 0",
                 rules: str = '[[rules]]\nchannels = ["{names}"]') -> Path:
    names = [line.split(".", 1)[1].rstrip("]") for line in channels.splitlines()
             if line.startswith("[channels.")]
    path = directory / "kahooks.toml"
    path.write_text(f'spool_dir = "{directory / "spool"}"\nhost = "lb-test"\n\n[delivery]\n{delivery}\n\n'
                    f'[instances.VI_1]\nvips = ["192.0.2.10"]\n\n{channels}\n\n'
                    + rules.replace("{names}", '", "'.join(names)) + "\n")
    return path


def worker_for(path: Path) -> tuple[Config, Spool, Worker]:
    config = load(str(path), channel_types())
    spool = Spool(config.spool_dir).ensure()
    return config, spool, Worker(config, spool)
