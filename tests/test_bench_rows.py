"""The README's speed table is `./run bench all --markdown`'s: the same rows and columns as the bench's registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_rows() -> object:
    spec = importlib.util.spec_from_file_location("bench_rows", ROOT / "bench" / "rows.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def readme_table(marker: str) -> list[list[str]]:
    """The Markdown table after `marker` in README.md (a header line, the rule, then rows), as cells."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert marker in lines, f"README.md has no {marker} line before the bench's table"
    table = []
    for line in lines[lines.index(marker) + 1:]:
        if table and not line.startswith("|"):
            break
        if line.startswith("|"):
            table.append(cells(line))
    return table


def test_the_readme_table_has_the_bench_rows_and_columns_in_order() -> None:
    rows = bench_rows()
    table = readme_table(rows.README_MARKER)  # type: ignore[attr-defined]
    header, rule, *body = table
    assert header == list(rows.COLUMNS)  # type: ignore[attr-defined]
    assert set(rule) == {"---"}
    assert [line[0] for line in body] == [row.path for row in rows.ROWS]  # type: ignore[attr-defined]
    assert [line[3] for line in body] == [row.target for row in rows.ROWS]  # type: ignore[attr-defined]
    assert all(len(line) == len(header) for line in body)
    assert all(line[-1] in ("met", "MISSED") for line in body)
