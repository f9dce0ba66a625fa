"""ka-notify's handler start-up is part of the product: keepalived waits for it at every transition.

The guard, as the checks' (tests/hooks/test_startup.py): `ka-notify TYPE NAME STATE PRIORITY` runs in a
fresh interpreter against a real spool once its configuration passed, then reports every module it
loaded; they must be within a bare interpreter and notify_cli.STARTUP_IMPORTS (a standard library name
there brings what it imports itself). A new import fails it, a slow machine never does.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from kahooks.hooks import notify_cli
from tests.support.notify import write_config
from tests.support.programs import quiet_env
from tests.support.startup import allowed_modules

PROBE = """
import sys
sys.argv = {argv!r}
from kahooks.hooks import notify_cli
try:
    notify_cli.main()
except SystemExit as exit:
    code = exit.code
loaded = sorted(sys.modules)  # before json, which the handler no longer needs
import json
print(json.dumps({{"code": code, "modules": loaded}}))
"""

LOG = '[channels.log]\ntype = "exec"\ncommand = ["true"]'


def handler_modules(config: Path, cwd: Path) -> tuple[int, set[str]]:
    argv = ["/usr/bin/ka-notify", "-c", str(config), "INSTANCE", "VI_1", "MASTER", "100"]
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                         timeout=60, env=quiet_env(), cwd=cwd, stdin=subprocess.DEVNULL)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def test_the_argv_handler_loads_only_its_allow_list(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOG)
    spool = tmp_path / "spool"
    spool.mkdir()
    # Held here, the worker lock says "a worker runs": the handler starts none (the bench's case too).
    lock = os.open(spool / "worker.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        first, _ = handler_modules(config, tmp_path)  # validates the configuration and stamps it
        code, modules = handler_modules(config, tmp_path)
    finally:
        os.close(lock)
    assert first == 0 and code == 0
    assert len(list((spool / "incoming").glob("*.json"))) == 2  # both recorded, durably, then returned
    new = sorted(modules - allowed_modules(notify_cli.STARTUP_IMPORTS))
    assert not new, (f"ka-notify's argv handler now loads {new} at start-up: import it where it is used, or add "
                     "it to STARTUP_IMPORTS (hooks/notify_cli.py) if recording cannot do without")
