"""What a fresh interpreter imports: the start-up guards' measure (tests/hooks/test_startup.py for the
checks, tests/hooks/test_notify_startup.py for ka-notify's handler)."""

from __future__ import annotations

import json
import subprocess
import sys

MODULES = """
import sys
{imports}
loaded = sorted(sys.modules)
import json
print(json.dumps(loaded))
"""


def fresh_modules(*names: str) -> set[str]:
    """What a fresh interpreter, run as the probes are (`-c`), holds after importing `names`."""
    script = MODULES.format(imports="\n".join(f"import {name}" for name in names))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def allowed_modules(allow_list: frozenset[str] | set[str]) -> set[str]:
    """An allow-list as modules: its kahooks names with the packages that hold them, and its standard
    names with what each imports itself.

    A package comes with any module of it (kahooks.output with kahooks.output.redact), so the lists name
    modules only; whatever a package's `__init__` imported would still show as a module of its own.
    """
    stdlib = sorted(name for name in allow_list if name.partition(".")[0] != "kahooks")
    ours = {name for name in allow_list if name.partition(".")[0] == "kahooks"}
    packages = {name.rsplit(".", depth)[0] for name in ours for depth in range(1, name.count(".") + 1)}
    return fresh_modules(*stdlib) | ours | packages
