"""Whatever the file holds, the doctor reports or refuses in one line: it never crashes.

Lines of real configurations (the seeds, the contrib examples, the lab corpus) are dropped,
doubled, cut short and shuffled with a fixed seed; each variant is either read (a report) or
refused with a ConfError naming FILE:LINE. Any other exception is a defect.
"""

from __future__ import annotations

import random
from pathlib import Path

from kahooks.doctor.conf import ConfError
from kahooks.doctor.report import diagnose, render_json, render_text
from tests.support.doctor_corpus import CORPUS

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = 400


def sources() -> list[str]:
    texts = [path.read_text() for path in sorted((Path(__file__).parent / "seeds").glob("*.conf"))]
    texts += [path.read_text() for path in sorted((ROOT / "contrib" / "keepalived").glob("*.conf"))]
    texts += [entry.lb1.replace("{work}", "/tmp/none") for entry in CORPUS]
    return texts


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        if not lines:
            break
        index = rng.randrange(len(lines))
        choice = rng.random()
        if choice < 0.3:
            del lines[index]
        elif choice < 0.5:
            lines.insert(index, lines[index])
        elif choice < 0.7:
            lines[index] = lines[index][: rng.randrange(len(lines[index]) + 1)]
        elif choice < 0.85:
            other = rng.randrange(len(lines))
            lines[index], lines[other] = lines[other], lines[index]
        else:
            old, new = rng.choice(["1", "0", "{", "}", '"', " "]), rng.choice(["", "999", "-", "{", "}"])
            lines[index] = lines[index].replace(old, new)
    return "\n".join(lines) + "\n"


def test_mutated_configurations_are_reported_or_refused_never_crash(tmp_path: Path) -> None:
    rng = random.Random(20261202)
    texts = sources()
    refused = reported = 0
    for number in range(VARIANTS):
        first, second = tmp_path / f"{number}-a.conf", tmp_path / f"{number}-b.conf"
        first.write_text(mutate(rng.choice(texts), rng))
        second.write_text(mutate(rng.choice(texts), rng))
        try:
            report = diagnose(str(first), [str(second)], "lb1", test_with_keepalived=False)
        except ConfError as exc:
            assert str(exc).startswith(str(tmp_path)) and "\n" not in str(exc), exc
            refused += 1
            continue
        render_text(report, colour=False)
        render_json(report)
        reported += 1
    assert refused and reported  # both paths were exercised
