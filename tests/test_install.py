"""What `pip install` puts beside the programs: the licence and contrib/'s operating files."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_licence_and_the_contrib_files() -> None:
    files = {str(path) for path in metadata.distribution("kahooks").files or []}
    assert any(name.endswith("LICENSE") for name in files), sorted(files)[:20]
    shared = Path(sys.prefix) / "share" / "kahooks" / "contrib"
    for folder in ("keepalived", "etc", "systemd", "logrotate", "rsyslog", "prometheus", "grafana", "snmp"):
        shipped = sorted(path.name for path in (CHECKOUT / "contrib" / folder).iterdir())
        assert sorted(path.name for path in (shared / folder).iterdir()) == shipped, folder
