"""Monitoring-plugins threshold ranges (`-w`/`-c` in --nagios mode), as the plugins' guidelines define them.

`10` alerts outside 0..10, `10:` below 10, `~:10` above 10, `10:20` outside 10..20, `@10:20` inside it.
"""

from __future__ import annotations

INFINITY = float("inf")


class Range:
    __slots__ = ("text", "low", "high", "inside")

    def __init__(self, text: str) -> None:
        self.text = text
        body = text[1:] if text.startswith("@") else text
        self.inside = text.startswith("@")
        low_text, colon, high_text = body.partition(":")
        if not colon:
            low_text, high_text = "0", body
        self.low = -INFINITY if low_text == "~" else _number(low_text or "0", text)
        self.high = INFINITY if high_text == "" else _number(high_text, text)
        if self.low > self.high:
            raise ValueError(f"{text!r}: the start is above the end")

    def alerts(self, value: float) -> bool:
        within = self.low <= value <= self.high
        return within if self.inside else not within


def _number(word: str, text: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise ValueError(f"{text!r} is not a range like 10, 10:, ~:10, 10:20 or @10:20") from None
    if value != value or value in (INFINITY, -INFINITY):
        raise ValueError(f"{text!r} is not a range like 10, 10:, ~:10, 10:20 or @10:20")
    return value


def parse_range(raw: str) -> Range:
    """An option converter: raises ValueError with a short reason."""
    return Range(raw.strip())
