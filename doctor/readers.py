"""keepalived's number readers (lib/parser.c), so the doctor takes from a word what keepalived takes.

keepalived (built without _STRICT_CONFIG_, as Debian builds it) reads a number with strtol/strtoul
and, when the handler passes ignore_error=true, keeps the digits before any garbage as long as
they are in range: `interval 0.5` is 0 (then 1), `weight -60.5` is -60. With ignore_error=false,
or out of range, the handler decides (a default, the previous value, or the value regardless).
Each reader returns (accepted, value, complaint): `value` is what strtol left in the result
even when not accepted, since some handlers use it all the same (vrrp_vscript_weight_handler).
Words are at most a line long (conf.py caps lines), and each reader is one pass over its word.
"""

from __future__ import annotations

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
UINT_MAX = 2**32 - 1
ULONG_MAX = 2**64 - 1
WHITE_SPACE = " \t\f\n\r\v"


def _strtol_prefix(text: str) -> tuple[int | None, str]:
    """(value of the leading [blanks][sign]digits, or None when there are none; the rest), as strtol."""
    index = 0
    while index < len(text) and text[index] in WHITE_SPACE:
        index += 1
    sign = 1
    if index < len(text) and text[index] in "+-":
        sign = -1 if text[index] == "-" else 1
        index += 1
    start = index
    while index < len(text) and "0" <= text[index] <= "9":
        index += 1
    if index == start:
        return None, text  # no digits: strtol reads 0 and leaves endptr at the start
    return sign * int(text[start:index]), text[index:]


def read_int(text: str, low: int, high: int, ignore_error: bool) -> tuple[bool, int, str | None]:
    """lib/parser.c read_int_func (base 10)."""
    value, rest = _strtol_prefix(text)
    number = value if value is not None else 0
    if rest:
        problem = f"{text!r} is not a whole number: keepalived reads {number}"
    elif number < INT_MIN or number > INT_MAX:
        return False, max(INT_MIN, min(INT_MAX, number)), f"{text!r} is outside the integer range"
    elif number < low or number > high:
        return False, number, f"{text!r} is outside [{low}, {high}]"
    else:
        return True, number, None
    return ignore_error and low <= number <= high, number, problem


def read_unsigned(text: str, low: int, high: int, ignore_error: bool) -> tuple[bool, int, str | None]:
    """lib/parser.c read_unsigned_func (base 10): a minus sign is refused, blanks before it skipped."""
    stripped = text.lstrip(WHITE_SPACE)
    value, rest = _strtol_prefix(stripped)
    number = value if value is not None else 0
    if stripped.startswith("-"):
        return False, number, f"{text!r} is negative"
    if rest:
        problem = f"{text!r} is not a whole number: keepalived reads {number}"
    elif number > UINT_MAX:
        return False, number, f"{text!r} is outside the unsigned range"
    elif number < low or number > high:
        return False, number, f"{text!r} is outside [{low}, {high}]"
    else:
        return True, number, None
    return ignore_error and low <= number <= high, number, problem


def read_decimal(text: str, low: int, high: int, shift: int, ignore_error: bool) -> tuple[bool, int, str | None]:
    """lib/parser.c read_decimal_unsigned_long_func: `text` x 10^shift, in those units (low, high too).

    More decimals than `shift` are cut, rounding up on the first one cut (>= '5')."""
    if text.startswith("-"):
        return False, 0, f"{text!r} is negative"
    whole, dot, decimals = text.partition(".")
    problem = None
    round_up = False
    if dot and len(decimals) > shift:
        round_up = decimals[shift] >= "5"
        decimals = decimals[:shift]
        problem = f"{text!r} has more than {shift} decimal places: keepalived rounds it"
    digits = whole + decimals + "0" * (shift - len(decimals))
    value, rest = _strtol_prefix(digits)
    number = (value if value is not None else 0) + (1 if round_up else 0)
    if value is not None and value < 0:  # strtoull of "-..." after blanks: keepalived only refuses a leading '-'
        number = ULONG_MAX + 1 + value
    if rest or value is None:
        problem = f"{text!r} is not a number"
    elif number > ULONG_MAX:
        return False, number, f"{text!r} is outside the unsigned range"
    elif number < low or number > high:
        problem = f"{text!r} is outside [{low / 10**shift:g}, {high / 10**shift:g}]"
    elif problem is None:
        return True, number, None
    else:
        return True, number, problem  # rounded, accepted
    return ignore_error and low <= number <= high, number, problem
