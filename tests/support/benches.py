"""The benchmark scripts' one way to use each other (bench/ is a folder of scripts run with `python -P`,
not a package on the path): a sibling script loaded as a module, once per process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def sibling(name: str) -> Any:
    """bench/NAME.py as the module `bench_NAME`: loaded on first use, the same module after."""
    key = f"bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module
