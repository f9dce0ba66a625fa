"""Monitoring-plugins threshold ranges (`-w`/`-c` in --nagios mode), as the plugins' guidelines define them.

`10` alerts outside 0..10, `10:` below 10, `~:10` above 10, `10:20` outside 10..20, `@10:20` inside it.
"""

from __future__ import annotations

INFINITY = float("inf")
SHAPES = "not a range like 10, 10:, ~:10, 10:20 or @10:20"
# A number as the guidelines write one: ASCII digits, a sign, a point, an exponent. float() alone
# takes '1_0' (10), ' 5', 'inf', 'nan' and other scripts' digits; strtod in the plugins reads '1_0'
# as 1 and ignores the rest. Both are typos that would silently move a threshold: refused here.
NUMBER_CHARACTERS = frozenset("0123456789+-.eE")


class Range:
    """One threshold range; the text is kept for the perfdata, exactly as given."""

    __slots__ = ("text", "low", "high", "inside")

    def __init__(self, text: str) -> None:
        self.text = text
        self.inside = text.startswith("@")
        body = text[1:] if self.inside else text
        if not body:
            raise ValueError(SHAPES)
        low_text, colon, high_text = body.partition(":")
        if not colon:
            low_text, high_text = "0", body
        self.low = -INFINITY if low_text == "~" else _number(low_text or "0")
        self.high = INFINITY if colon and high_text == "" else _number(high_text)
        if self.low > self.high:
            raise ValueError("the start is above the end")

    def alerts(self, value: float) -> bool:
        within = self.low <= value <= self.high
        return within if self.inside else not within


def _number(word: str) -> float:
    if not word or not set(word) <= NUMBER_CHARACTERS:
        raise ValueError(SHAPES)
    try:
        value = float(word)
    except ValueError:
        raise ValueError(SHAPES) from None
    if value in (INFINITY, -INFINITY):  # '1e999'
        raise ValueError(SHAPES)
    return value


def parse_range(raw: str) -> Range:
    """An option converter: raises ValueError with a short reason (the caller names the option and word).
    Blanks around it are dropped, as the plugins' strtod skips them."""
    return Range(raw.strip())
