"""The declarative option parser: argv forms, positionals, errors that name the option."""

from __future__ import annotations

import pytest

from kahooks.errors import UsageError
from kahooks.settings.options import HelpRequested, Option, int_ranges, parse_argv, positive_float, positive_int, unescape

OPTIONS = (
    Option("-t", "--timeout", convert=positive_float, default=0.8, metavar="SECONDS"),
    Option("--header", repeat=True),
    Option("--tls", switch=True),
    Option("--count", convert=positive_int, default=1),
    Option("TARGET", required=True),
)
# An option declared required is enforced as a positional is (it was only for positionals: a check with
# a required --path ran without one and failed on None inside its probe).
WITH_REQUIRED = (Option("--path", required=True, metavar="FILE"), Option("--tag", repeat=True, required=True))
REST = (Option("--ok-codes", default="0"), Option("COMMAND", rest=True, required=True))


def test_values_defaults_and_forms() -> None:
    values = parse_argv(OPTIONS, ["--timeout=0.25", "--header", "A: 1", "host:80", "--header=B: 2", "--tls"], "p")
    assert values == {"timeout": 0.25, "header": ["A: 1", "B: 2"], "tls": True, "count": 1, "target": "host:80"}
    assert parse_argv(OPTIONS, ["-t", "2", "x"], "p")["timeout"] == 2.0


@pytest.mark.parametrize("argv, message", [
    ([], "missing TARGET"),
    (["x", "y"], "unexpected argument 'y'"),
    (["--bogus", "x"], "unknown option --bogus"),
    (["x", "--timeout"], "--timeout needs a value"),
    (["x", "--timeout", "abc"], "--timeout 'abc': not a number"),
    (["x", "--timeout", "-1"], "--timeout '-1': must be a positive number"),
    (["x", "--timeout", "nan"], "must be a positive number"),
    (["x", "--count", "0"], "--count '0': must be at least 1"),
    (["x", "--tls=yes"], "--tls takes no value"),
])
def test_errors_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_argv(OPTIONS, argv, "p")


def test_rest_takes_the_command_verbatim() -> None:
    assert parse_argv(REST, ["--", "squid", "-k", "check"], "p")["command"] == ["squid", "-k", "check"]
    # Without --, the first bare word starts the command and its own options are left alone.
    values = parse_argv(REST, ["--ok-codes", "0,3", "squid", "-k", "check", "--ok-codes", "9"], "p")
    assert values == {"ok_codes": "0,3", "command": ["squid", "-k", "check", "--ok-codes", "9"]}
    with pytest.raises(UsageError, match="missing COMMAND"):
        parse_argv(REST, ["--"], "p")


def test_help_lists_every_option() -> None:
    with pytest.raises(HelpRequested) as raised:
        parse_argv(OPTIONS, ["--help"], "ka-check-x")
    text = str(raised.value)
    assert text.startswith("usage: ka-check-x [options] TARGET")
    for flag in ("--timeout SECONDS", "--header HEADER", "--tls", "(default 0.8)"):
        assert flag in text


def test_int_ranges() -> None:
    assert int_ranges("200,204,300-399") == ((200, 200), (204, 204), (300, 399))
    for bad in ("", "abc", "300-200", "2xx", "-5"):
        with pytest.raises(ValueError):
            int_ranges(bad)


def test_unescape() -> None:
    assert unescape(r"QUIT\r\n") == b"QUIT\r\n"
    assert unescape(r"\x00\x7f\\t") == b"\x00\x7f\\t"
    for bad in (r"\q", r"\x4", r"\xzz"):
        with pytest.raises(ValueError):
            unescape(bad)


def test_a_required_option_is_enforced_and_shown_as_required() -> None:
    with pytest.raises(UsageError, match="^missing --path FILE$"):
        parse_argv(WITH_REQUIRED, ["--tag", "a"], "p")
    with pytest.raises(UsageError, match="^missing --tag TAG$"):
        parse_argv(WITH_REQUIRED, ["--path", "/x"], "p")
    assert parse_argv(WITH_REQUIRED, ["--path", "/x", "--tag", "a"], "p") == {"path": "/x", "tag": ["a"]}
    with pytest.raises(HelpRequested) as shown:
        parse_argv(WITH_REQUIRED, ["--help"], "p")
    assert str(shown.value).splitlines()[0] == "usage: p [options] --path FILE --tag TAG"
