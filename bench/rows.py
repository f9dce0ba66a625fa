"""The rows of `./run bench all` (issue 26's table): what each measures and its target.

One registry for the bench's summary, its `--markdown` table and the README's copy of that table
(tests/test_bench_rows.py holds the README's rows and columns to these). Only the standard library:
the test reads this file without the bench's helpers.
"""

from __future__ import annotations

from typing import NamedTuple


class Row(NamedTuple):
    key: str
    path: str
    target: str


COLUMNS = ("path", "measured", "reference, same run", "target", "verdict")
ROWS = (
    Row("startup", "check start-up, script mode, vs a minimal stdlib script doing the same probe", "<= 1.05x each kind"),
    Row("notify", "`ka-notify` handler return, p90, vs a minimal stdlib durable recorder", "<= 1.3x"),
    Row("death", "process death -> track file in place (daemon)", "p99 <= 2 ms"),
    Row("metrics", "/metrics render, 50 checks, 20 instances", "p99 <= 2 ms"),
    Row("fifo", "FIFO line -> exec channel started, in `kahooks serve`", "p99 <= 10 ms"),
    Row("scale", "daemon at scale: 500 checks, 100 instances",
        "detection p99 and idle CPU per check as at 10 checks (within 1.5x); RSS growth per check printed"),
)
# Where the README embeds the table: the line before it.
README_MARKER = "<!-- ./run bench all --markdown -->"
