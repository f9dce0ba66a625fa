"""kahooks' tests: they run the installed package and programs, never the checkout's folders in place."""

import os
from pathlib import Path

import kahooks

if (Path(__file__).resolve().parents[1] / "kahooks") in Path(kahooks.__file__).resolve().parents:
    # The checkout's kahooks/ folder is the core alone; its families live beside it and are joined
    # under kahooks only by installing. Testing it in place would test something else, or fail oddly.
    raise ImportError(f"kahooks was imported from the checkout ({kahooks.__file__}), not installed: "
                      "run ./run test (it installs kahooks and starts Python with -P)")

# Every Python the tests start (`python -c`, `-m`) inherits this: -P, no working directory on sys.path.
os.environ["PYTHONSAFEPATH"] = "1"
