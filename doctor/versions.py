"""Which keepalived the doctor models: the local `keepalived --version`, or the one asked for.

Two rule sets are modelled, from keepalived's own source: 2.2.7 (Debian 12) and 2.3.3 (Debian 13).
Another local version is modelled by the nearest rule set (2.2.x and older as 2.2.7, 2.3.x and
newer as 2.3.3) and the report says so.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from kahooks.system import commands

MODELLED = ("2.2.7", "2.3.3")
DEFAULT = "2.2.7"  # no keepalived here: Debian 12's


@dataclass(frozen=True)
class Version:
    rules: str  # one of MODELLED
    found: str | None  # the version keepalived reported, or asked for
    source: str  # how it was chosen, for the report

    @property
    def at_least_2_3(self) -> bool:
        return self.rules == "2.3.3"

    def as_json(self) -> dict:
        return {"modelled": self.rules, "found": self.found, "source": self.source}

    def describe(self) -> str:
        found = f" (keepalived {self.found})" if self.found and self.found != self.rules else ""
        return f"keepalived {self.rules}'s rules{found}, from {self.source}"


def parse(text: str) -> tuple[int, int, int] | None:
    """'Keepalived v2.2.7 (01/16,2022)' -> (2, 2, 7); None when no version is in the first line."""
    for word in text.strip().splitlines()[0].split() if text.strip() else []:
        if word.startswith("v") and word[1:2].isdigit():
            parts = word[1:].split(".")
            if len(parts) >= 2 and all(part.isdigit() and len(part) <= 4 for part in parts[:3]):
                numbers = [int(part) for part in parts[:3]] + [0] * (3 - len(parts[:3]))
                return numbers[0], numbers[1], numbers[2]
    return None


def rules_for(version: tuple[int, int, int]) -> str:
    return "2.3.3" if version >= (2, 3, 0) else "2.2.7"


def asked(text: str) -> Version:
    """--keepalived-version: exactly one of the modelled versions (click checks the choice)."""
    return Version(text, text, "--keepalived-version")


def local(timeout: float = 5.0) -> Version:
    """The local keepalived's version, or Debian 12's when there is none or it says nothing usable."""
    program = shutil.which("keepalived") or ("/usr/sbin/keepalived" if os.path.exists("/usr/sbin/keepalived") else None)
    if program is None:
        return Version(DEFAULT, None, "no keepalived here: Debian 12's by default")
    try:
        result = commands.run([program, "--version"], timeout, sweep=False)
    except OSError:
        return Version(DEFAULT, None, f"{program} --version could not run: Debian 12's by default")
    found = parse(result.output)
    if found is None:
        return Version(DEFAULT, None, f"{program} --version said no version: Debian 12's by default")
    text = ".".join(str(part) for part in found)
    return Version(rules_for(found), text, f"the local {program} --version")
