"""The lab's fixtures: kahooks installed the documented way, and a work directory keepalived_script can reach."""

from __future__ import annotations

# lab_bin and work live in tests/conftest.py: the fault tests run programs as keepalived_script too.
