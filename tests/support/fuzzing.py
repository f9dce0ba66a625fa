"""Hypothesis set-up and strategies for fuzzing every parser that reads outside input.

One settings profile, `kahooks-fuzz`: a fixed example budget (KAHOOKS_FUZZ_SCALE multiplies it for a
deeper run by hand), derandomized so CI replays the very same inputs, no deadline (the time-bound tests
measure time themselves) and no example database, so nothing is written into the checkout.

The strategies make near-valid input from each grammar (keepalived.conf blocks, FIFO lines, spool records,
kahooks.toml tables, argv words) and `mutated` damages any of them with the characters parsers trip on.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps caches (its Unicode tables) in ./.hypothesis by default: not in the checkout.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "kahooks-hypothesis"))

SCALE = max(1, int(os.environ.get("KAHOOKS_FUZZ_SCALE", "1")))
settings.register_profile(
    "kahooks-fuzz", derandomize=True, deadline=None, database=None, print_blob=False,
    # The tests write files in a tmp_path per example folder; their inputs are big on purpose.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture])


def budget(examples: int) -> settings:
    """The profile with `examples` examples (times KAHOOKS_FUZZ_SCALE)."""
    return settings(settings.get_profile("kahooks-fuzz"), max_examples=examples * SCALE)


# Pieces parsers trip on: quotes, braces, escapes, comment marks, odd line ends, numbers no parser expects.
NASTY = ('"', "'", "{", "}", "[", "]", "\\", "$", "${", "#", "!", "@", "@^", "=", ":", ",", " ", "\t", "\n", "\r",
         "\0", "\x85", "\u2028", "\x0c", "\udcff", "\ufeff", "é", "nan", "NaN", "inf", "-inf", "1e309", "-1", "0",
         "1e300", "9" * 30, "0x10", "1_000", "--", "-", "*", "?", "%", "/", "..", "[::1]", "256.1.1.1")
nasty = st.sampled_from(NASTY) | st.text(max_size=6)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str], most: int = 4) -> str:
    """`base`'s text with up to `most` insertions, deletions, repeats and replacements."""
    text = draw(base)
    for _ in range(draw(st.integers(0, most))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        operation = draw(st.sampled_from(("insert", "delete", "repeat", "replace")))
        if operation == "insert":
            text = text[:start] + draw(nasty) + text[start:]
        elif operation == "delete":
            text = text[:start] + text[end:]
        elif operation == "repeat":
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = text[:start] + draw(nasty) + text[end:]
    return text


def raw_text(max_size: int = 400) -> st.SearchStrategy[str]:
    """Any characters (lone surrogates too), with the nasty pieces mixed in."""
    return st.lists(st.characters() | st.sampled_from(NASTY), max_size=max_size).map("".join)


# keepalived.conf ---------------------------------------------------------------------------------------

CONF_NUMBERS = ("1", "0", "-1", "2.5", "255", "256", "100", "nan", "inf", "-inf", "1e309", "9" * 25, "0x10", "")
conf_number = st.sampled_from(CONF_NUMBERS)
conf_name = st.sampled_from(("VI_1", "VI_2", "chk", "chk_haproxy", "file1", "G1", "$NAME", "${NAME}", '"quoted name"'))
conf_address = st.sampled_from(("192.0.2.10", "192.0.2.10/24", "10.0.0.1", "2001:db8::1", "fe80::1%eth0", "x", "300.1.1.1"))


def _conf_lines(keyword: str, *words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*words).map(lambda drawn: " ".join([keyword, *drawn]))


@st.composite
def conf_block(draw: st.DrawFn) -> list[str]:
    """One top-level block of keepalived.conf, as lines."""
    kind = draw(st.sampled_from(("vrrp_script", "track_file", "vrrp_instance", "vrrp_sync_group", "virtual_server",
                                 "global_defs")))
    inner: list[str] = []
    if kind == "vrrp_script":
        inner = draw(st.lists(st.one_of(
            _conf_lines("script", st.sampled_from(('"/usr/bin/ka-check-process haproxy"', '"/bin/true"', "ka-check-port 80"))),
            *(_conf_lines(key, conf_number) for key in ("interval", "timeout", "rise", "fall")),
            _conf_lines("weight", conf_number, st.sampled_from(("", "reverse", "noreverse"))),
            _conf_lines("user", st.sampled_from(("root", "keepalived_script", "")))), max_size=6))
    elif kind == "track_file":
        inner = draw(st.lists(st.one_of(_conf_lines("file", st.sampled_from(("/run/x", '"/run/a b"', ""))),
                                        _conf_lines("weight", conf_number, st.sampled_from(("", "reverse"))),
                                        st.just("init_file")), max_size=4))
    elif kind == "vrrp_instance":
        def sub(keyword: str, item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
            return st.lists(item, max_size=3).map(lambda items: "\n".join([f"{keyword} {{", *items, "}"]))
        inner = draw(st.lists(st.one_of(
            _conf_lines("state", st.sampled_from(("MASTER", "BACKUP", "master", "FAULT", ""))),
            _conf_lines("interface", st.sampled_from(("eth0", "lo", ""))),
            *(_conf_lines(key, conf_number) for key in ("virtual_router_id", "priority", "advert_int", "version",
                                                        "preempt_delay")),
            st.sampled_from(("nopreempt", "preempt", "notify_master /bin/true", "notify \"/usr/bin/ka-notify\"")),
            sub("virtual_ipaddress", conf_address), sub("unicast_peer", conf_address),
            _conf_lines("unicast_src_ip", conf_address),
            sub("track_script", _conf_lines("", conf_name, st.sampled_from(("", "weight")), conf_number)),
            sub("track_file", _conf_lines("", conf_name, st.sampled_from(("", "weight")), conf_number)),
            sub("track_interface", _conf_lines("", st.sampled_from(("eth0", "eth1")), st.sampled_from(("", "weight")),
                                               conf_number)),
            st.just("authentication {\nauth_type PASS\nauth_pass secret\n}")), max_size=8))
    elif kind == "vrrp_sync_group":
        inner = [draw(st.lists(conf_name, max_size=3).map(lambda names: "group {\n" + "\n".join(names) + "\n}"))]
        inner += draw(st.lists(st.just("sync_group_tracking_weight"), max_size=1))
    elif kind == "virtual_server":
        real = st.tuples(conf_address, conf_number, conf_number).map(
            lambda parts: f"real_server {parts[0]} {parts[1]} {{\nweight {parts[2]}\nMISC_CHECK {{\nmisc_path \"x\"\n}}\n}}")
        inner = draw(st.lists(st.one_of(_conf_lines("quorum", conf_number), real), max_size=4))
        head = draw(st.sampled_from(("192.0.2.50 80", "fwmark 5", "group G", "2001:db8::5 443", "x", "")))
        return [f"virtual_server {head} {{", *inner, "}"]
    else:
        inner = draw(st.lists(st.one_of(_conf_lines("vrrp_version", conf_number),
                                        st.sampled_from(("enable_script_security", "script_user keepalived_script",
                                                         "notify_fifo /run/x.fifo", "router_id lb1"))), max_size=3))
    name = draw(conf_name) if kind not in ("global_defs",) else ""
    brace_on_next_line = draw(st.booleans())
    head = f"{kind} {name}".rstrip()
    return [head, "{"] + inner + ["}"] if brace_on_next_line else [f"{head} {{", *inner, "}"]


@st.composite
def conf_definition(draw: st.DrawFn) -> str:
    """A `$NAME=value` definition; its value uses at most two definitions, so expanding stays small here
    (exponential expansion has its own test)."""
    name = draw(st.sampled_from(("NAME", "A", "B", "IP")))
    uses = draw(st.lists(st.sampled_from(("$NAME", "${A}", "$B", "$IP", "$UNDEFINED")), max_size=2))
    text = draw(st.sampled_from(("VI_1", "192.0.2.1", "{", "}", '"', "chk \\", "1", "")))
    return f"${name}={' '.join([text, *uses])}"


def keepalived_conf(includes: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """A keepalived.conf: blocks, definitions, @ID lines, comments and (at most one) include line."""
    piece = st.one_of(conf_block(), conf_definition().map(lambda line: [line]),
                      st.tuples(st.sampled_from(("@lb1 ", "@^lb1 ", "@lb2 ", "@")), conf_block()).map(
                          lambda parts: [parts[0] + parts[1][0], *parts[1][1:]]),
                      st.sampled_from(("# a comment", "! another", "~SEQ(i, 1, 3) x", 'a "b # c" d', "\\# not", "}", "{"))
                      .map(lambda line: [line]))
    lines = st.lists(piece, max_size=6).map(lambda pieces: [line for lines in pieces for line in lines])
    if includes:
        lines = st.tuples(lines, st.sampled_from(includes), st.integers(0, 6)).map(
            lambda parts: parts[0][:parts[2]] + [f"include {parts[1]}"] + parts[0][parts[2]:])
    return lines.map(lambda found: "\n".join(found) + "\n")


# FIFO lines ----------------------------------------------------------------------------------------------

fifo_name = st.sampled_from(("VI_1", "G1", "a b", "", "x" * 300, 'q"uote', "é")) | st.text(max_size=10)
fifo_state = st.sampled_from(("MASTER", "BACKUP", "FAULT", "STOP", "DELETED", "MASTER_RX_LOWER_PRI", "master",
                              "UP", "DOWN", "", "ALERT"))
fifo_server = st.sampled_from(("[192.0.2.1]:tcp:80", "[2001:db8::1]:udp:53", "[10.0.0.1]:none:0", "[x]:tcp:99999",
                               "FWM 5", "[G]:80", "[192.0.2.50]:?:80", "fwmark 4294967296", "[]:tcp:1", "192.0.2.1:80"))
fifo_priority = st.sampled_from(("100", "0", "255", "256", "-1", "1e3", "nan", "", "9" * 30)) | \
    st.integers().map(str)


def fifo_line() -> st.SearchStrategy[str]:
    vrrp = st.tuples(st.sampled_from(("INSTANCE", "GROUP", "instance", "VS", "RS", "")), fifo_name, fifo_state,
                     fifo_priority).map(lambda p: f'{p[0]} "{p[1]}" {p[2]} {p[3]}')
    virtual = st.tuples(fifo_server, fifo_state).map(lambda p: f"VS {p[0]} {p[1]}")
    real = st.tuples(fifo_server, fifo_server, fifo_state).map(lambda p: f"RS {p[0]} {p[1]} {p[2]}")
    return mutated(vrrp | virtual | real) | raw_text(200)


# Spool records -----------------------------------------------------------------------------------------

json_junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                         max_leaves=8)
event_time = st.sampled_from((1.7e9, 0, -1, 1e300, -1e300, 1e18, 253402300800.0, math.nan, math.inf)) | st.floats() | \
    st.integers(-(2 ** 70), 2 ** 70)


def with_junk(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, value, value, json_junk)


@st.composite
def event_record(draw: st.DrawFn) -> dict[str, Any]:
    """An Event.as_dict() as a spool file holds it, its fields sometimes wrong, missing or extra."""
    record = {
        "type": draw(with_junk(st.sampled_from(("INSTANCE", "GROUP", "VS", "RS", "ALERT", "")))),
        "name": draw(with_junk(fifo_name)), "state": draw(with_junk(fifo_state)),
        "priority": draw(with_junk(st.integers(-2, 300))), "time": draw(with_junk(event_time)),
        "host": draw(with_junk(st.sampled_from(("lb1", "x" * 300)))),
        "id": draw(with_junk(st.sampled_from(("18c0a1b2c3d4e5f6-0a1b2c3d4e5f", "-", "zz-1", "1-", "0" * 70 + "-1")))),
        "source": draw(with_junk(st.sampled_from(("fifo", "argv", "")))),
        "detail": draw(with_junk(st.sampled_from(("", "quorum lost", "x" * 9000)))),
        "virtual_server": draw(with_junk(st.sampled_from(("", "[192.0.2.50]:tcp:80")))),
    }
    for key in draw(st.lists(st.sampled_from(sorted(record)), max_size=2)):
        record.pop(key, None)
    return record


@st.composite
def delivery_record(draw: st.DrawFn) -> dict[str, Any]:
    record = {"event": draw(with_junk(event_record())), "channel": draw(with_junk(st.just("mail"))),
              "previous_state": draw(with_junk(st.sampled_from((None, "BACKUP")))),
              "attempts": draw(with_junk(st.integers(-1, 2000))), "next_attempt": draw(with_junk(event_time)),
              "last_error": draw(with_junk(st.sampled_from((None, "timed out")))),
              "created": draw(with_junk(event_time))}
    for key in draw(st.lists(st.sampled_from(sorted(record)), max_size=2)):
        record.pop(key, None)
    return record


def as_json_bytes(records: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Records as a spool file holds them (NaN and Infinity included: Python writes them), mutated, or raw bytes."""
    text = records.map(lambda record: json.dumps(record, allow_nan=True))
    return st.one_of(text.map(lambda value: value.encode("utf-8", "surrogatepass")),
                     mutated(text).map(lambda value: value.encode("utf-8", "surrogatepass")),
                     st.binary(max_size=300), st.just(b"[" * 100_000), st.just(b'{"a":' * 50_000))


# kahooks.toml --------------------------------------------------------------------------------------------

def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(key)} = {toml_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(str(value))


def toml_key(key: str) -> str:
    return key if key and all(char.isascii() and (char.isalnum() or char in "_-") for char in key) else json.dumps(key)


TOML_STRINGS = ("ka-check-process haproxy", "ka-check-http http://127.0.0.1:1/ --status 200 --timeout 0.5",
                "ka-check-port 127.0.0.1:22 --send 'x\\x' --tls --ca /nonexistent", "ka-check-exec -- /bin/true",
                "ka-check-port [::1]:99999", "ka-check-http --timeout nan x", "ka-check-process --pidfile", "'",
                "/run/kahooks", "relative", "127.0.0.1:9477", "[::1]:0", "{{ name }}", "{% if %}", "{{ nope }}",
                "http://127.0.0.1:1/hook", "smtp://x", "192.0.2.1", "a@example.com", "/etc/passwd", "/bin/true",
                "daemon", "/dev/log", "hmac-sha256", "VI_1", "VI_*", "MASTER", "FAULT", "UP", "fwmark 5",
                "192.0.2.50:80", "[2001:db8::1]:80", "", "x" * 70)
toml_scalar = st.one_of(st.sampled_from(TOML_STRINGS), st.integers(-(2 ** 63), 2 ** 63 - 1),
                        st.sampled_from((0, 1, 2, 1000, 1001, -1)), st.floats(), st.booleans(), st.text(max_size=6))
toml_plain = st.recursive(toml_scalar, lambda inner: st.lists(inner, max_size=3) |
                          st.dictionaries(st.text(max_size=4), inner, max_size=2), max_leaves=6)


def _table(keys: tuple[str, ...], values: st.SearchStrategy[Any] = toml_plain) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=4), values, max_size=5)


def kahooks_toml(channel_keys: dict[str, tuple[str, ...]]) -> st.SearchStrategy[str]:
    """kahooks.toml text: top-level keys, [delivery], [serve], [checks.NAME], [instances.NAME],
    [channels.NAME] of every type with its own settings, and [[rules]]."""
    names = st.sampled_from(("mail", "hook", "a.b", "-x", "", "x/y", "VI_1", "n" * 70))
    channel = st.sampled_from(sorted(channel_keys)).flatmap(
        lambda kind: _table(channel_keys[kind]).map(lambda table: {**table, "type": kind}))
    document = st.fixed_dictionaries({}, optional={
        "host": toml_scalar, "spool_dir": toml_scalar,
        "delivery": _table(("max_attempts", "max_age", "backoff_initial", "backoff_max", "flap_window",
                            "worker_idle_exit")),
        "serve": _table(("state_dir", "maintenance_file", "notify_fifo", "deliver", "metrics_listen", "metrics_textfile",
                         "heartbeat_interval")),
        "checks": st.dictionaries(names, _table(("run", "interval", "rise", "fall", "track_file", "ok_value",
                                                 "fail_value")), max_size=3),
        "instances": st.dictionaries(names, _table(("vips",), st.lists(st.sampled_from(
            ("192.0.2.1", "192.0.2.0/24", "2001:db8::1/129", "x", "")), max_size=3) | toml_plain), max_size=2),
        "channels": st.dictionaries(names, channel | toml_plain, max_size=3),
        "rules": st.lists(_table(("instances", "virtual_servers", "real_servers", "states", "channels"),
                                 st.lists(st.sampled_from(TOML_STRINGS), max_size=3) | toml_plain), max_size=3),
        "unknown": toml_plain})
    return document.map(render_toml)


def render_toml(document: dict[str, Any]) -> str:
    """TOML text for `document`: scalars first, then one [table] per table of tables and [[rules]]."""
    lines: list[str] = []
    later: list[str] = []
    for key, value in document.items():
        if key in ("checks", "instances", "channels") and isinstance(value, dict) and \
                all(isinstance(item, dict) for item in value.values()):
            for name, table in value.items():
                later.append(f"[{key}.{toml_key(name)}]")
                later.extend(f"{toml_key(sub)} = {toml_value(item)}" for sub, item in table.items())
        elif key in ("delivery", "serve") and isinstance(value, dict):
            later.append(f"[{key}]")
            later.extend(f"{toml_key(sub)} = {toml_value(item)}" for sub, item in value.items())
        elif key == "rules" and isinstance(value, list) and all(isinstance(item, dict) for item in value):
            for rule in value:
                later.append("[[rules]]")
                later.extend(f"{toml_key(sub)} = {toml_value(item)}" for sub, item in rule.items())
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines + later) + "\n"


# argv ----------------------------------------------------------------------------------------------------

ARG_VALUES = ("1", "0", "-1", "0.5", "nan", "inf", "-inf", "1e309", "86401", "9" * 30, "", "x", "127.0.0.1:80",
              "[::1]:443", "[::1]", "::1", "localhost:0", "localhost:99999", "http://127.0.0.1:1/", "https://[::1]/x",
              "ftp://x", "http://", "200,204,300-399", "5-1", "a(", ".*", "\\x4", "\\q", "\\x41\\n", "@10:20", "~:", "10:5",
              "/nonexistent", "/etc/passwd", "/tmp", "haproxy", "--", "-", "-x", "--timeout=0.1", "é\udcff", "\0")


def argv_words(option_names: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    """Command lines made of the program's own option names and the values they choke on."""
    word = st.one_of(st.sampled_from(option_names), st.sampled_from(option_names).map(lambda name: name + "="),
                     st.sampled_from(ARG_VALUES), st.text(max_size=8))
    return st.lists(word, max_size=8)
