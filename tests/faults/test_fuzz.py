"""Every parser of outside input, fuzzed: it returns a value or raises its own one-line error, nothing else.

Inputs come from each grammar (near-valid keepalived.conf, FIFO lines, spool records, kahooks.toml, argv),
damaged by `mutated`, and as raw text or bytes (tests/support/fuzzing.py). Hypothesis runs a fixed,
derandomized budget (profile `kahooks-fuzz`; KAHOOKS_FUZZ_SCALE=20 for a deeper run by hand) and shrinks a
failure to its smallest input. The work each parser does is bounded too: under its documented cap it
finishes in time linear in its input, over it it refuses.

Each defect the fuzzer found (issue 22) keeps its own minimal test here beside the broad properties.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kahooks.admin.pools import pools
from kahooks.doctor import conf, model
from tests.support.fuzzing import (
    as_json_bytes,
    budget,
    delivery_record,
    event_record,
    fifo_line,
    keepalived_conf,
    mutated,
    raw_text,
)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, repr(text)
    return text


def encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def best_of(runs: int, action) -> float:
    """The fastest of `runs` timings in this process's own CPU time, with the cyclic collector off: the
    machine's noise (other processes, a collection that large inputs happen to trigger) only adds time."""
    import gc

    fastest = math.inf
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            started = time.process_time()
            action()
            fastest = min(fastest, time.process_time() - started)
    finally:
        gc.enable()
    return fastest


def assert_linear(make, run, size: int) -> None:
    """run(make(4n)) takes at most 8x run(make(n)): linear work takes 4x, quadratic 16x; the rest is
    room for a loaded machine (the fastest of three runs each)."""
    small, large = make(size), make(4 * size)
    first = best_of(3, lambda: run(small))
    second = best_of(3, lambda: run(large))
    assert second <= 8 * first + 0.05, f"size {size}: {first:.4f} s, size {4 * size}: {second:.4f} s"


def bounded_python(code: str, timeout: float, memory_mib: int = 1024) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with an address-space limit: a runaway parser fails there, not here."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mib << 20, memory_mib << 20))

    return subprocess.run([sys.executable, "-P", "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit)


# keepalived.conf: doctor/conf.py reads, doctor/model.py builds a Node, admin/pools.py finds the pools ------------

INCLUDES = ("b.conf", "?.conf", "b*.conf", "sub", "sub/*", "missing*.conf", "/nonexistent/x.conf", '"b.conf"',
            "../{folder}/b.conf", "")


def read_keepalived_conf(folder: Path, main: str, other: str) -> None:
    (folder / "sub").mkdir()
    (folder / "main.conf").write_bytes(encoded(main.replace("{folder}", folder.name)))
    (folder / "b.conf").write_bytes(encoded(other))
    path = str(folder / "main.conf")
    try:
        document = conf.read(path, "lb1")
        model.build(document)
        pools(path, "lb1")
    except conf.ConfError as exc:
        assert one_line(exc).startswith(str(folder)), exc


@budget(120)
@given(main=st.one_of(keepalived_conf(INCLUDES), mutated(keepalived_conf(INCLUDES)), raw_text()),
       other=st.one_of(keepalived_conf(), mutated(keepalived_conf())))
def test_keepalived_conf_is_read_or_refused_in_one_line(tmp_path: Path, main: str, other: str) -> None:
    read_keepalived_conf(Path(tempfile.mkdtemp(dir=tmp_path)), main, other)


@budget(60)
@given(main=st.one_of(keepalived_conf(), mutated(keepalived_conf())), other=keepalived_conf())
def test_doctor_reports_any_conf_or_refuses_in_one_line(tmp_path: Path, main: str, other: str) -> None:
    """The whole doctor (findings, the election simulated, both renderings) on what the reader accepts."""
    from kahooks.doctor.report import diagnose, render_json, render_text

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "a.conf").write_bytes(encoded(main))
    (folder / "b.conf").write_bytes(encoded(other))
    try:
        report = diagnose(str(folder / "a.conf"), [str(folder / "b.conf")], "lb1", test_with_keepalived=False)
    except conf.ConfError as exc:
        assert one_line(exc).startswith(str(folder)), exc
        return
    render_text(report, colour=False)
    render_json(report)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_doctor_reports_a_script_interval_of_nan(tmp_path: Path, value: str) -> None:
    from kahooks.doctor.report import diagnose

    path = tmp_path / "keepalived.conf"
    path.write_text(f"vrrp_script chk {{\n script /bin/true\n interval {value}\n weight -20\n}}\n"
                    "vrrp_instance VI_1 {\n state MASTER\n interface eth0\n virtual_router_id 51\n priority 100\n"
                    " virtual_ipaddress {\n  192.0.2.10\n }\n track_script {\n  chk\n }\n}\n")
    diagnose(str(path), [], "lb1", test_with_keepalived=False)


def test_conf_definitions_cannot_expand_exponentially(tmp_path: Path) -> None:
    """Sixteen uses a level, ten levels: 16**10 words from 200 bytes. Read in a separate interpreter
    limited to 1 GiB: it must end in time, with a document of bounded size or a one-line refusal."""
    lines = ["$L0=x"] + [f"$L{level}=" + f"$L{level - 1} " * 16 for level in range(1, 11)] + ["router_id $L10"]
    path = tmp_path / "keepalived.conf"
    path.write_text("global_defs {\n" + "\n".join(lines) + "\n}\n")
    result = bounded_python(f"""
        from kahooks.doctor import conf
        try:
            document = conf.read({str(path)!r}, "lb1")
        except conf.ConfError as exc:
            print("refused:", exc)
        else:
            print("read:", sum(len(" ".join(s.words)) for s in document.statements[0].children))
        """, timeout=5, memory_mib=512)
    assert result.returncode == 0, result.stderr[-500:]
    verdict, _, size = result.stdout.partition(": ")
    assert verdict == "refused" or int(size) < 1 << 20, result.stdout


def test_conf_includes_cannot_fan_out_exponentially(tmp_path: Path) -> None:
    """Fifteen levels of three files, each including the three of the next: 3**15 reads of 45 small
    files, within the include depth limit. It must end quickly, read or refused in one line."""
    for level in range(15):
        for name in "abc":
            (tmp_path / f"l{level:02d}{name}.conf").write_text(
                (f"include l{level + 1:02d}?.conf\n" if level < 14 else "") + "global_defs {\n}\n")
    result = bounded_python(f"""
        from kahooks.doctor import conf
        try:
            conf.read({str(tmp_path / "l00a.conf")!r}, "lb1")
        except conf.ConfError as exc:
            assert "\\n" not in str(exc)
        """, timeout=4)
    assert result.returncode == 0, result.stderr[-500:]


def test_conf_include_of_a_fifo_is_skipped_and_noted(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "b.conf")
    (tmp_path / "a.conf").write_text("include b.conf\n")
    result = bounded_python(f"""
        from kahooks.doctor import conf
        for file, line, what in conf.read({str(tmp_path / "a.conf")!r}, "lb1").notes:
            print(file, line, what)
        """, timeout=3)
    assert result.returncode == 0 and "b.conf" in result.stdout and "FIFO" in result.stdout, result


def test_conf_include_of_itself_is_refused_at_the_depth_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_text("include a.conf\n")
    with pytest.raises(conf.ConfError, match="nested more than"):
        conf.read(str(path), "lb1")


def test_conf_over_its_size_cap_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_bytes(b"{" * (conf.MAX_FILE_BYTES + 1))
    started = time.monotonic()
    with pytest.raises(conf.ConfError, match="larger than"):
        conf.read(str(path), "lb1")
    assert time.monotonic() - started < 1


CONF_SHAPES = {
    "deep nesting": lambda n: "a {\n" * n + "}\n" * n,
    "nesting on one line": lambda n: "a { " * n + "} " * n + "\n",
    "many quotes": lambda n: "x " + '"q" ' * n + "\n",
    "an unterminated quote": lambda n: "x " + "a" * n + ' "' + "b" * n + "\n",
    "a long line": lambda n: "word " * n + "\n",
    "many comments": lambda n: "x # \\# ! \" \n" * n,
    "many $VAR uses": lambda n: "$A=v\n$B=$A $A\nx " + "$B ${A} " * (n // 2) + "\n",
    "many definitions": lambda n: "".join(f"$V{i}=$V{i - 1}\n" for i in range(1, n // 4)) + "x $V1\n",
    "many instances": lambda n: "vrrp_instance VI { priority 100\n track_script {\n c\n}\n}\n" * (n // 16),
}


@pytest.mark.parametrize("shape", sorted(CONF_SHAPES))
def test_conf_reading_time_is_linear_in_the_input(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "keepalived.conf"

    def make(size: int) -> str:
        return CONF_SHAPES[shape](size)

    def read(text: str) -> None:
        path.write_text(text)
        try:
            model.build(conf.read(str(path), "lb1"))
        except conf.ConfError:
            pass

    assert_linear(make, read, 5_000)


# FIFO lines: kahooks/notify/fifo.py reads them, kahooks/events/event.py (and kahooks/events/lvs.py) parse them ------------------

@budget(400)
@given(line=fifo_line())
def test_fifo_line_is_an_event_or_a_usage_error(line: str) -> None:
    from kahooks.errors import UsageError
    from kahooks.events.event import Event
    from kahooks.events.event import fifo_event as event_from_line

    try:
        event = Event.from_fifo_line(line)
    except UsageError as exc:
        one_line(exc) if "\n" not in line else None  # the line is quoted with repr(): its newlines too
        assert event_from_line(line) is None
        return
    assert event.type in ("INSTANCE", "GROUP", "VS", "RS") and 0 <= event.priority <= 255
    assert Event.from_dict(json.loads(event.to_json())) == event


FIFO_SHAPES = {
    "many quotes": lambda n: 'INSTANCE "' + '" "' * n + '" MASTER 100',
    "a long name": lambda n: 'INSTANCE "' + "v" * n + '" MASTER 100',
    "many blanks": lambda n: "RS " + " " * n + "[192.0.2.1]:tcp:80 " + " " * n + "[192.0.2.50]:tcp:80 UP",
    "a long server": lambda n: "VS [" + "1" * n + "]:tcp:80 UP",
    "many words": lambda n: "RS [192.0.2.1]:tcp:80 " + "FWM 5 " * n + "UP",
}


@pytest.mark.parametrize("shape", sorted(FIFO_SHAPES))
def test_fifo_line_parsing_time_is_linear(shape: str) -> None:
    from kahooks.events.event import fifo_event as event_from_line

    assert_linear(FIFO_SHAPES[shape], lambda line: [event_from_line(line) for _ in range(20)], 5_000)


# Spool records: kahooks/notify/spool.py Delivery.from_json and Event.from_dict, written by keepalived_script -----------

def _usable(event) -> None:
    """What the worker does with a parsed event: it becomes a Transition (times made readable)."""
    from kahooks.events.transition import Transition

    Transition.of("lb1", [], [event], None).context()


@budget(200)
@given(raw=as_json_bytes(event_record()))
def test_spooled_event_is_read_or_refused_with_value_error(raw: bytes) -> None:
    from kahooks.events.event import Event
    from kahooks.notify.spool import _json_object
    from kahooks.notify.spooldir import BadEntry

    try:
        event = Event.from_dict(_json_object(raw))
    except (BadEntry, ValueError) as exc:  # documented: ValueError (BadEntry is one) for anything else
        assert type(exc) in (BadEntry, ValueError), repr(exc)
        return
    _usable(event)


@budget(200)
@given(raw=as_json_bytes(delivery_record()))
def test_spooled_delivery_is_read_or_refused_with_value_error(raw: bytes) -> None:
    from kahooks.notify.spool import Delivery
    from kahooks.notify.spooldir import BadEntry

    try:
        delivery = Delivery.from_json(Path("/nonexistent/queue/mail/1.json"), "mail", raw)
    except (BadEntry, ValueError) as exc:
        assert type(exc) in (BadEntry, ValueError), repr(exc)
        return
    assert math.isfinite(delivery.next_attempt) and math.isfinite(delivery.created)
    assert delivery.attempts >= 0
    _usable(delivery.event)
    json.loads(delivery.to_json())


@pytest.mark.parametrize("stamp", [1e300, -1e300, 1e20])
def test_spooled_event_with_an_absurd_time_is_refused_or_usable(stamp: float) -> None:
    from kahooks.events.event import Event

    record = {"type": "INSTANCE", "name": "VI_1", "state": "MASTER", "priority": 100, "time": stamp, "host": "lb1",
              "id": "18c0a1b2c3d4e5f6-0a1b2c3d4e5f", "source": "fifo"}
    try:
        event = Event.from_dict(record)
    except ValueError:
        return
    _usable(event)


@budget(60)
@given(raw=as_json_bytes(delivery_record()))
def test_spool_queue_reads_any_file_or_moves_it_to_dead(tmp_path: Path, raw: bytes) -> None:
    """The worker's own read of queue/CHANNEL/: whatever keepalived_script left there, the rest flows on."""
    from kahooks.notify.spool import Spool

    spool = Spool(tempfile.mkdtemp(dir=tmp_path)).ensure()
    (spool.queue_dir / "mail").mkdir(parents=True)
    (spool.queue_dir / "mail" / "00000000000000000001-aa.json").write_bytes(raw)
    found = spool.queued("mail")
    for delivery in found:
        _usable(delivery.event)
    dead = list((spool.dead_dir / "mail").glob("*")) if (spool.dead_dir / "mail").exists() else []
    assert len(found) + len(dead) == 1


# kahooks.toml: kahooks/settings/fragments.py merges it with conf.d, kahooks/settings/config.py validates, notifiers.load_config
# builds each channel, daemon/settings.py parses [serve] and [checks.NAME] ---------------------------------------

CHECKOUT = Path(__file__).resolve().parents[2]


def _channel_keys() -> dict[str, tuple[str, ...]]:
    from kahooks.notifiers import channel_class, kinds
    from kahooks.notifiers.base import COMMON_SETTINGS

    return {kind: tuple(sorted(channel_class(kind).SETTINGS | COMMON_SETTINGS)) for kind in kinds()}


def _toml_seeds() -> list[str]:
    return [path.read_text() for path in sorted((CHECKOUT / "contrib" / "etc").glob("*.toml"))]


def load_kahooks_toml(folder: Path, main: bytes, fragment: bytes | None) -> None:
    from kahooks.daemon.settings import SECTIONS
    from kahooks.notifiers import load_config
    from kahooks.settings.config import ConfigError

    (folder / "kahooks.toml").write_bytes(main)
    if fragment is not None:
        (folder / "conf.d").mkdir()
        (folder / "conf.d" / "50-more.toml").write_bytes(fragment)
    try:
        load_config(str(folder / "kahooks.toml"), SECTIONS)
    except ConfigError as exc:
        assert exc.problems
        for line in exc.lines():
            assert line and "\n" not in line and "Traceback" not in line, line


def kahooks_toml_text() -> st.SearchStrategy[str]:
    from tests.support.fuzzing import kahooks_toml

    generated = kahooks_toml(_channel_keys())
    return st.one_of(generated, mutated(generated), mutated(st.sampled_from(_toml_seeds()), most=3))


@budget(100)
@given(data=st.data())
def test_kahooks_toml_loads_or_lists_its_problems_one_a_line(tmp_path: Path, data: st.DataObject) -> None:
    main = data.draw(kahooks_toml_text(), label="main")
    fragment = data.draw(st.none() | kahooks_toml_text(), label="conf.d/50-more.toml")
    load_kahooks_toml(Path(tempfile.mkdtemp(dir=tmp_path)), encoded(main), None if fragment is None else encoded(fragment))


@budget(100)
@given(raw=st.one_of(st.binary(max_size=300), raw_text().map(encoded),
                     st.sampled_from((b"a = " + b"[" * 5000 + b"]" * 5000, b"a = " + b"{b = " * 5000 + b"1" + b"}" * 5000,
                                      b"\xff\xfe", b"a = '\xe9'", b"[channels.x]\ntype = 'syslog'\nsubject = '\xc3'"))))
def test_kahooks_toml_of_any_bytes_is_a_config_error(tmp_path: Path, raw: bytes) -> None:
    load_kahooks_toml(Path(tempfile.mkdtemp(dir=tmp_path)), raw, None)


# argv: kahooks/settings/options.py parse_argv with each check's OPTIONS, then its constructor; ka-notify's argv -> Event;
# the daemon's `run = "ka-check-KIND ARGS"` words ------------------------------------------------------------------

def _check_kinds() -> list[str]:
    from kahooks.checks import kinds

    return sorted(kinds())


@pytest.mark.parametrize("kind", _check_kinds())
def test_check_argv_is_a_check_or_a_usage_error(kind: str) -> None:
    from kahooks.checks import load_check_class
    from kahooks.checks.base import COMMON_OPTIONS
    from kahooks.errors import UsageError
    from kahooks.settings.options import HelpRequested, parse_argv
    from tests.support.fuzzing import argv_words

    check_class = load_check_class(kind)
    options = COMMON_OPTIONS + check_class.OPTIONS
    names = tuple(name for option in options for name in option.names if name.startswith("-"))

    @budget(150)
    @given(argv=argv_words(names))
    def parse(argv: list[str]) -> None:
        try:
            values = parse_argv(options, argv, f"ka-check-{kind}")
            check_class(values)
        except HelpRequested:
            pass
        except UsageError as exc:
            one_line(exc) if not any("\n" in word for word in argv) else None

    parse()


@budget(200)
@given(argv=st.data())
def test_ka_notify_argv_is_an_event_or_a_usage_error(argv: st.DataObject) -> None:
    from kahooks.errors import UsageError
    from kahooks.events.event import Event
    from kahooks.hooks import notify_cli
    from kahooks.settings.options import HelpRequested, parse_argv
    from tests.support.fuzzing import argv_words, fifo_name, fifo_priority, fifo_server, fifo_state

    names = tuple(name for option in notify_cli.OPTIONS for name in option.names if name.startswith("-"))
    keepalived = st.tuples(st.sampled_from(("INSTANCE", "GROUP", "instance", "VS", "")), fifo_name, fifo_state,
                           fifo_priority).map(list)
    flags = st.lists(st.sampled_from(("--instance", "--group", "--state", "--priority", "--virtual-server",
                                      "--real-server")).flatmap(
        lambda flag: st.tuples(st.just(flag), fifo_name | fifo_state | fifo_priority | fifo_server)), max_size=4).map(
        lambda pairs: [word for pair in pairs for word in pair])
    words = argv.draw(st.one_of(keepalived, flags, argv_words(names)), label="argv")
    try:
        values = parse_argv(notify_cli.OPTIONS, words, "ka-notify")
        event = Event.from_argv(values["words"]) if values["words"] else notify_cli.event_from_flags(values, "flags")
    except HelpRequested:
        return
    except UsageError:
        return
    if event is not None:
        assert Event.from_dict(json.loads(event.to_json())) == event


@budget(150)
@given(run=st.data())
def test_daemon_run_words_are_a_check_or_a_problem(run: st.DataObject) -> None:
    """`[checks.NAME] run = ...`: build_check reports a problem, never raises, and never hides a
    crash of the check's own parser behind its catch-all ('TypeError: ...')."""
    from kahooks.checks import load_check_class
    from kahooks.checks.base import COMMON_OPTIONS
    from kahooks.daemon.settings import build_check
    from tests.support.fuzzing import argv_words

    kind = run.draw(st.sampled_from(_check_kinds()), label="kind")
    options = COMMON_OPTIONS + load_check_class(kind).OPTIONS
    names = tuple(name for option in options for name in option.names if name.startswith("-"))
    words = [f"ka-check-{kind}", *run.draw(argv_words(names), label="words")]
    as_text = run.draw(st.booleans(), label="as one string")
    import shlex

    problems: list[tuple[str, str]] = []
    build_check(shlex.join(words) if as_text else words, lambda key, message: problems.append((key, message)))
    for key, message in problems:
        assert key == "run" and message and "\n" not in message, (key, message)
        assert not any(f"{name}: " in message for name in ("TypeError", "KeyError", "AttributeError", "IndexError",
                                                            "OverflowError", "RecursionError", "UnicodeEncodeError")), message


@pytest.mark.parametrize("raw", [b"a = " + b"[" * 5000 + b"]" * 5000, b"a = " + b"{b = " * 5000 + b"1" + b"}" * 5000])
def test_kahooks_toml_nested_too_deep_is_a_config_error(tmp_path: Path, raw: bytes) -> None:
    """Found by the fuzzer: tomllib's RecursionError came out of loading kahooks.toml (or a drop-in)."""
    from kahooks.settings.config import ConfigError
    from kahooks.settings.fragments import read

    (tmp_path / "kahooks.toml").write_text("host = 'lb1'\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "deep.toml").write_bytes(raw)
    with pytest.raises(ConfigError, match="deep.toml: syntax: arrays or inline tables nested too deeply"):
        read(str(tmp_path / "kahooks.toml"))


@pytest.mark.parametrize("make", ["not utf-8", "a folder"])
def test_kahooks_toml_not_utf8_or_a_folder_is_a_config_error(tmp_path: Path, make: str) -> None:
    """Found by the fuzzer: UnicodeDecodeError (and IsADirectoryError) came out of read_toml."""
    from kahooks.settings.config import ConfigError
    from kahooks.settings.tomlfile import read_toml

    path = tmp_path / "kahooks.toml"
    if make == "a folder":
        path.mkdir()
    else:
        path.write_bytes(b"host = '\x80'\n")
    with pytest.raises(ConfigError):
        read_toml(str(path))


# The FIFO's bytes: kahooks/notify/fifo.py read_lines makes lines of whatever keepalived (or anyone) wrote -------------

def feed_fifo_reader(chunks: list[bytes]) -> list[str]:
    """Run read_lines on a real pipe, each chunk written once the reader took the one before; its lines."""
    import fcntl
    import queue
    import termios
    import threading

    from kahooks.notify.fifo import read_lines

    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    lines: queue.Queue = queue.Queue()
    stop = threading.Event()
    reader = threading.Thread(target=read_lines, args=(read_end, lines, stop, 0.0), daemon=True)
    reader.start()
    try:
        for chunk in chunks:
            os.write(write_end, chunk)
            deadline = time.monotonic() + 5
            waiting = bytearray(4)
            while time.monotonic() < deadline:  # FIONREAD: what the pipe still holds
                fcntl.ioctl(read_end, termios.FIONREAD, waiting)
                if not int.from_bytes(waiting, sys.byteorder):
                    break
                time.sleep(0.001)
        stop.set()
        reader.join(5)
        assert not reader.is_alive()
    finally:
        os.close(write_end)
        os.close(read_end)
    found = []
    while (line := lines.get_nowait()) is not None:
        found.append(line)
    return found


def expected_fifo_lines(chunks: list[bytes]) -> list[str]:
    from kahooks.notify.fifo import LINE_LIMIT

    *complete, _ = b"".join(chunks).split(b"\n")
    return [raw.decode("utf-8", "replace") for raw in complete if len(raw) <= LINE_LIMIT]


fifo_piece = st.one_of(fifo_line().map(lambda line: encoded(line) + b"\n"), st.binary(max_size=40),
                       st.integers(4000, 9000).map(lambda size: b"x" * size), st.just(b"\n"), st.just(b"\xff\xfe\n"))


@budget(40)
@given(pieces=st.lists(fifo_piece, max_size=6), cuts=st.lists(st.integers(0, 20000), max_size=4))
def test_fifo_reader_passes_each_whole_line_and_drops_only_overlong_ones(pieces: list[bytes], cuts: list[int]) -> None:
    """However the bytes arrive (cut anywhere), the lines are the input's lines up to LINE_LIMIT, in order."""
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    chunks = [data[start:end] for start, end in zip(bounds, bounds[1:])]
    assert feed_fifo_reader(chunks) == expected_fifo_lines(chunks)


def test_fifo_reader_drops_the_tail_of_an_overlong_line_that_came_in_two_reads() -> None:
    """Found by the fuzzer: the first read of a 6000-byte line was dropped, and its tail went on as a line."""
    tail = b'INSTANCE "VI_1" MASTER 100'
    chunks = [b"x" * 5000, b"y" * 974 + tail + b"\n", b'INSTANCE "VI_2" BACKUP 90\n']
    assert feed_fifo_reader(chunks) == ['INSTANCE "VI_2" BACKUP 90']


def test_fifo_reader_drops_an_overlong_line_that_came_in_one_read() -> None:
    """The same line in one read is dropped too (it was passed on): the limit no longer depends on timing."""
    assert feed_fifo_reader([b"x" * 6000 + b"\n" + b'INSTANCE "VI_2" BACKUP 90\n']) == ['INSTANCE "VI_2" BACKUP 90']


# keepalived's JSON dump: doctor/running.py live_state, what `doctor --live` and `kahooks status` show -------------

JSON_SIGNAL = 36  # `keepalived --signum=JSON` on Debian 12's keepalived 2.2.7 (asked again in the fixture)


@pytest.fixture
def keepalived_here(tmp_path: Path):
    """This test process plays the running keepalived: its pid in the pid file, and on keepalived's JSON
    signal it writes the dump it is handed (live_state runs `keepalived --signum=JSON` for real)."""
    import signal

    signum = int(subprocess.run(["keepalived", "--signum=JSON"], capture_output=True, text=True, check=True).stdout)
    pid_file, dump = tmp_path / "keepalived.pid", tmp_path / "keepalived.json"
    pid_file.write_text(f"{os.getpid()}\n")
    content = {"bytes": b""}
    previous = signal.signal(signum, lambda *_: dump.write_bytes(content["bytes"]))

    def ask(raw: bytes):
        from kahooks.doctor.running import live_state

        dump.unlink(missing_ok=True)
        content["bytes"] = raw
        return live_state(str(pid_file), str(dump), wait=2.0)

    yield ask
    signal.signal(signum, previous)


vip_text = st.sampled_from(("192.0.2.10/32 dev eth0 scope global", "2001:db8::1 dev eth0", "192.0.2.11"))
dump_entry = st.fixed_dictionaries({"data": st.fixed_dictionaries({
    "iname": st.sampled_from(("VI_1", "VI_2")), "state": st.sampled_from((0, 1, 2, 3, 97, 98)),
    "effective_priority": st.integers(0, 255), "base_priority": st.integers(0, 255)},
    optional={"vips": st.lists(vip_text, max_size=2), "track_script": st.lists(st.sampled_from(("chk",)), max_size=2)}),
    "stats": st.just({"advert_rcvd": 1})})


def assert_live_instances(found) -> None:
    for item in found:
        assert isinstance(item.name, str) and isinstance(item.state, str)
        assert isinstance(item.effective_priority, int) and isinstance(item.base_priority, int)
        assert all(isinstance(vip, str) for vip in item.vips)
        assert all(isinstance(name, str) for name in item.track_scripts)


@budget(20)
@given(entries=st.lists(dump_entry, max_size=3))
def test_keepalived_dump_of_the_documented_shape_is_read(keepalived_here, entries: list) -> None:
    found = keepalived_here(json.dumps(entries).encode())
    assert [item.name for item in found] == [entry["data"]["iname"] for entry in entries]
    assert_live_instances(found)


@pytest.mark.parametrize("raw", [b"1", b"[1]", b'[{"data": 1}]', b'[{"data": {}}]', b'[{"data": {"iname": "VI_1", '
                                 b'"state": 1, "effective_priority": 1, "base_priority": 1, "vips": [1]}}]',
                                 b'[{"data": {"iname": "VI_1", "state": [], "effective_priority": 1, "base_priority": 1}}]',
                                 b'{"data": 1}'])
def test_keepalived_dump_of_any_shape_is_read_or_refused(keepalived_here, raw: bytes) -> None:
    """live_state's contract: its instances, OSError/ValueError when keepalived cannot be asked, or DumpUnreadable.
    These are the fuzzer's smallest failures (TypeError, KeyError, AttributeError; unhashable state)."""
    from kahooks.doctor.running import DumpUnreadable

    try:
        found = keepalived_here(raw)
    except (OSError, ValueError):
        return
    except DumpUnreadable as exc:  # the doctor's own one-line refusal of a dump of the wrong shape
        one_line(exc)
        return
    assert_live_instances(found)


# Drain: admin/drain.py (the SERVER argument, the drain folder) and `kahooks drain --list` ------------------------

@budget(300)
@given(text=st.one_of(st.sampled_from(("192.0.2.1:80", "[2001:db8::1]:443", "10.0.0.1:0", "10.0.0.1:65536",
                                       "fwmark 5", "G:80", "[G]:80", "fe80::1%eth0:80", "[::ffff:1.2.3.4]:1")),
                      mutated(st.sampled_from(("192.0.2.1:80", "[2001:db8::1]:443"))), raw_text(60)))
def test_drain_server_argument_is_a_server_or_a_usage_error(text: str) -> None:
    from kahooks.admin.drain import real_server
    from kahooks.errors import UsageError

    try:
        key, address, port = real_server(text)
    except UsageError as exc:
        one_line(exc) if "\n" not in text else None
        return
    # Port 0 is a real server of a fwmark DR/TUN pool as keepalived itself names it (`[10.0.0.21]:none:0`).
    assert 0 <= port < 65536 and "/" not in key and key not in (".", "..")


drain_name = st.text(st.characters(exclude_characters="/\0", exclude_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda name: not name.startswith(".") and len(encoded(name)) <= 255)  # not UTF-8: its own test below


@budget(40)
@given(entries=st.dictionaries(drain_name, st.binary(max_size=200), max_size=4))
def test_drain_list_shows_any_drain_files(tmp_path: Path, entries: dict[str, bytes]) -> None:
    from click.testing import CliRunner

    from kahooks.admin.kahooks_cli import cli

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    for name, content in entries.items():
        (folder / os.fsdecode(encoded(name))).write_bytes(content)
    result = CliRunner().invoke(cli, ["drain", "--list", "--dir", str(folder)])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert len(result.output.splitlines()) >= len(entries)


@pytest.mark.parametrize("planted", ["a folder", "a FIFO", "--dir a file"])
def test_drain_list_with_a_folder_or_a_fifo_answers_in_one_line(tmp_path: Path, planted: str) -> None:
    from tests.support.programs import run

    folder = tmp_path / "drain"
    folder.mkdir()
    (folder / "192.0.2.1:80").write_text("drained by ci\n")
    if planted == "a folder":
        (folder / "192.0.2.2:80").mkdir()
    elif planted == "a FIFO":
        os.mkfifo(folder / "192.0.2.2:80")
    else:
        folder = folder / "192.0.2.1:80"
    try:
        outcome = run("kahooks", "drain", "--list", "--dir", str(folder), timeout=3)
    except subprocess.TimeoutExpired:
        pytest.fail("kahooks drain --list hung")
    assert "Traceback" not in outcome.stderr and outcome.stderr.count("\n") <= 1, outcome


def test_drain_list_shows_a_drain_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    """The property above leaves such names out (click's test runner writes strict UTF-8); the program
    shows the byte that is not UTF-8 as an escape an operator can read and type (rule 9: names escaped)."""
    from tests.support.programs import program, quiet_env

    (tmp_path / os.fsdecode(b"192.0.2.1:80\xff")).write_text("drained\n")
    result = subprocess.run([program("kahooks"), "drain", "--list", "--dir", str(tmp_path)], capture_output=True,
                            timeout=10, env=quiet_env())
    assert result.returncode == 0 and result.stdout == b"192.0.2.1:80\\xff\tdrained\n", result
