"""A small declarative option parser for programs keepalived forks every second.

argparse costs about 10 ms of start-up (it pulls in re, gettext and locale),
close to a whole bare interpreter; this parser costs nothing measurable. Each
check declares its options once as a tuple of Option; the same declarations
parse argv here and, later, the daemon's configuration tables.

Errors raise UsageError with one line naming the option, never SystemExit:
the caller decides the exit code (always 1 for a check, never argparse's 2).
"""

from __future__ import annotations

from kahooks.errors import UsageError

TYPE_CHECKING = False  # importing typing costs start-up time; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    Converter = Callable[[str], Any]


class Option:
    """One option or positional argument.

    `names` starting with '-' make an option (e.g. ("-t", "--timeout")); a bare
    name such as "URL" makes a positional. `rest=True` on a positional takes the
    first bare word and everything after it, verbatim (a command line to run);
    `repeat=True` on a positional collects every bare word, options still parsed anywhere.
    """

    __slots__ = ("names", "dest", "convert", "default", "help", "metavar",
                 "repeat", "switch", "required", "rest")

    def __init__(self, *names: str, convert: Converter = str, default: Any = None,
                 help: str = "", metavar: str | None = None, repeat: bool = False,
                 switch: bool = False, required: bool = False, rest: bool = False, dest: str | None = None) -> None:
        self.names = names
        first = names[-1]
        self.dest = dest or first.lstrip("-").replace("-", "_").lower()
        self.convert = convert
        self.default = default
        self.help = help
        self.metavar = metavar or (first if self.positional else first.lstrip("-").upper().replace("-", "_"))
        self.repeat = repeat
        self.switch = switch
        self.required = required
        self.rest = rest

    @property
    def positional(self) -> bool:
        return not self.names[0].startswith("-")

    def label(self) -> str:
        return self.names[-1]


class HelpRequested(Exception):
    """Raised by parse_argv for -h/--help (the help text) and -V/--version (the version line)."""


def parse_argv(options: Sequence[Option], argv: Sequence[str], prog: str) -> dict[str, Any]:
    """Parse argv against `options`; return {dest: value} with defaults filled in.

    A UsageError carries `partial`: what was parsed before the mistake (so a program can
    honour --nagios or -v given ahead of it, without ever reading raw argv itself).
    """
    # Defaults go through their converters here, once: a constructor reads values[dest] as it is.
    values: dict[str, Any] = {opt.dest: ([] if opt.repeat else
                                         convert_value(opt, opt.default) if isinstance(opt.default, str) else opt.default)
                              for opt in options}
    try:
        return _parse(options, argv, prog, values)
    except UsageError as exc:
        exc.partial = values  # type: ignore[attr-defined]  # set here only, read with getattr
        raise


def _parse(options: Sequence[Option], argv: Sequence[str], prog: str, values: dict[str, Any]) -> dict[str, Any]:
    by_name: dict[str, Option] = {}
    for opt in options:
        for name in opt.names:
            if not opt.positional:
                by_name[name] = opt
    positionals = [opt for opt in options if opt.positional]
    bare: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            bare.extend(argv[index:])
            break
        if arg in ("-h", "--help"):
            raise HelpRequested(format_help(options, prog))
        if arg in ("-V", "--version"):
            from kahooks import __version__

            raise HelpRequested(f"{prog} (kahooks) {__version__}")
        if len(arg) < 2 or not arg.startswith("-") or _is_number(arg):
            bare.append(arg)
            if positionals and positionals[-1].rest and len(bare) >= len(positionals):
                bare.extend(argv[index:])
                break
            continue
        name, has_inline, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        found = by_name.get(name)
        if found is None:
            raise UsageError(f"unknown option {name}")
        opt = found
        if opt.switch:
            if has_inline:
                raise UsageError(f"{name} takes no value")
            values[opt.dest] = True
            continue
        if has_inline:
            raw = inline
        elif index < len(argv):
            raw = argv[index]
            index += 1
        else:
            raise UsageError(f"{name} needs a value ({opt.metavar})")
        value = convert_value(opt, raw)
        if opt.repeat:
            values[opt.dest].append(value)
        else:
            values[opt.dest] = value
    _assign_positionals(positionals, bare, values)
    for opt in options:  # an option a check cannot run without (a positional's is checked above)
        if opt.required and not opt.positional and values[opt.dest] in (None, []):
            raise UsageError(f"missing {opt.label()} {opt.metavar}")
    return values


def convert_value(opt: Option, raw: str) -> Any:
    """Run the option's converter, turning its ValueError into a UsageError that names the option."""
    try:
        return opt.convert(raw)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{opt.label()} {raw!r}: {exc}") from None


def _assign_positionals(positionals: list[Option], bare: list[str], values: dict[str, Any]) -> None:
    for opt in positionals:
        if opt.rest or opt.repeat:
            values[opt.dest] = list(bare)
            bare.clear()
            if opt.required and not values[opt.dest]:
                raise UsageError(f"missing {opt.metavar}")
        elif bare:
            values[opt.dest] = convert_value(opt, bare.pop(0))
        elif opt.required:
            raise UsageError(f"missing {opt.metavar}")
    if bare:
        raise UsageError(f"unexpected argument {bare[0]!r}")


def _is_number(arg: str) -> bool:
    """A negative number is a value, not an option (e.g. a weight of -20)."""
    return arg[1:2].isdigit()


def format_help(options: Iterable[Option], prog: str) -> str:
    options = list(options)
    words = [f"{opt.label()} {opt.metavar}" for opt in options if opt.required and not opt.positional]
    for opt in options:
        if opt.positional:
            word = opt.metavar + ("..." if opt.rest else "")
            words.append(word if opt.required else f"[{word}]")
    lines = [f"usage: {prog} [options] {' '.join(words)}".rstrip(), "", "options:"]
    for opt in options:
        if opt.positional:
            left = opt.metavar
        else:
            left = ", ".join(opt.names) + ("" if opt.switch else f" {opt.metavar}")
        default = "" if opt.default in (None, False) else f" (default {opt.default})"
        lines.append(f"  {left:<28} {opt.help}{default}")
    lines.append(f"  {'-h, --help':<28} this help")
    lines.append(f"  {'-V, --version':<28} the version")
    return "\n".join(lines)


# Converters: each takes the raw string and raises ValueError with a short reason.

MAX_SECONDS = 86400.0  # a day: more is a typo, and would overflow timers and sockets
# A moment (seconds since 1970) kahooks keeps, from the spool or its own state: 9999-12-31 00:00 UTC,
# the last day a date can be shown in any time zone (datetime stops at year 9999).
LATEST_TIME = 253402214400.0


def number_problem(value: object, low: float, high: float, whole: bool = False) -> str | None:
    """Why `value` is not a number from low to high (None when it is): the one range check of
    every number kahooks reads from outside (argv, TOML, the spool, its own state files).
    NaN and infinities never pass; for a time, use 0 to LATEST_TIME."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or \
            value in (float("inf"), float("-inf")):
        return f"must be a {'whole ' if whole else ''}number from {low:g} to {high:g}"
    if whole and not isinstance(value, int):
        return f"must be a whole number from {low:g} to {high:g}"
    if not low <= value <= high:
        return f"must be from {low:g} to {high:g}"
    return None


def positive_float(raw: str) -> float:
    """Seconds: above 0, at most MAX_SECONDS."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("not a number") from None
    if not value > 0 or number_problem(value, 0, MAX_SECONDS):
        raise ValueError(f"must be a positive number of seconds, at most {MAX_SECONDS:g}")
    return value


def non_negative_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("not a whole number") from None
    if value < 0:
        raise ValueError("must not be negative")
    return value


def positive_int(raw: str) -> int:
    value = non_negative_int(raw)
    if value == 0:
        raise ValueError("must be at least 1")
    return value


def regex(raw: str) -> Any:
    import re  # only checks given a regex pay for re

    try:
        return re.compile(raw)
    except re.error as exc:
        raise ValueError(f"bad regular expression: {exc}") from None


def int_ranges(raw: str) -> tuple[tuple[int, int], ...]:
    """'200,204,300-399' -> ((200, 200), (204, 204), (300, 399))."""
    ranges = []
    for part in raw.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"{part!r} is not a number or a range like 200-299") from None
        if first < 0 or last < first:
            raise ValueError(f"{part!r} is not a valid range")
        ranges.append((first, last))
    return tuple(ranges)


def in_ranges(value: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(first <= value <= last for first, last in ranges)


def unescape(raw: str) -> bytes:
    r"""Text with C-style escapes (\r \n \t \0 \\ \xHH) as bytes, for --send/--expect."""
    out = bytearray()
    simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}
    index = 0
    while index < len(raw):
        char = raw[index]
        if char != "\\":
            out += char.encode()
            index += 1
            continue
        code = raw[index + 1:index + 2]
        if code in simple:
            out += simple[code]
            index += 2
        elif code == "x":
            digits = raw[index + 2:index + 4]
            try:
                out.append(int(digits, 16))
            except ValueError:
                raise ValueError(f"bad escape \\x{digits}") from None
            if len(digits) != 2:
                raise ValueError(f"bad escape \\x{digits}")
            index += 4
        else:
            raise ValueError(f"unknown escape \\{code}")
    return bytes(out)
