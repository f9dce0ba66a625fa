"""Hostile keepalived.conf, keepalived dumps and drain folders: the doctor, drain and init stay bounded.

Every program here is the installed one, run as an operator would (a fresh process, a time
limit, a memory limit where a runaway would eat the machine); the keepalived that answers
`--live` is a real process that writes its dump when signalled, as keepalived's VRRP process does.
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from kahooks.doctor import conf, running
from kahooks.doctor.model import build
from kahooks.errors import KahooksError
from tests.support.programs import program, quiet_env

NOBODY = 65534
MEMORY = 1 << 30  # a runaway expansion hits this, not the machine


class Ran:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self) -> str:
        return f"Ran({self.code}, {self.stdout[-500:]!r}, {self.stderr[-500:]!r})"


def kahooks(*args: str, timeout: float = 20, limit_file: int | None = None) -> Ran:
    """The installed `kahooks`, bounded in time and memory; a hang fails the test, never blocks it."""
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
        if limit_file is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file, limit_file))

    try:
        proc = subprocess.run([program("kahooks"), *args], capture_output=True, text=True, timeout=timeout,
                              env=quiet_env(), stdin=subprocess.DEVNULL, preexec_fn=limits)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kahooks {' '.join(args)} ran past {timeout} s")
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def one_line_error(ran: Ran, code: int, *fragments: str) -> None:
    assert ran.code == code, ran
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr, ran
    for fragment in fragments:
        assert fragment in ran.stderr, (fragment, ran)


def doctor(path: Path, *more: str, timeout: float = 20) -> Ran:
    return kahooks("doctor", "-f", str(path), "--no-keepalived-test", *more, timeout=timeout)


INSTANCE = "vrrp_instance VI_1 {\n    interface lo\n    virtual_router_id 51\n    virtual_ipaddress {\n" \
           "        192.0.2.1\n    }\n}\n"


# 1. Definitions, includes, long lines: linear and bounded ----------------------------------------

def test_a_definition_that_uses_itself_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_text("$A=x\n$A=" + " ".join(["$A"] * 10) + "\nvrrp_instance $A {\n}\n")
    one_line_error(doctor(path), 2, f"{path}:3:", "$A")


def test_definitions_that_multiply_each_other_are_capped_naming_the_line(tmp_path: Path) -> None:
    lines = ["$D0=xxxxxxxxxx"] + [f"$D{n}=" + " ".join([f"$D{n - 1}"] * 10) for n in range(1, 12)]
    path = tmp_path / "keepalived.conf"
    path.write_text("\n".join(lines) + "\nglobal_defs {\n    router_id $D11\n}\n")
    one_line_error(doctor(path), 2, f"{path}:14:", "expand")


def test_an_include_naming_a_fifo_is_reported_and_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.conf")
    path = tmp_path / "keepalived.conf"
    path.write_text(f"include {tmp_path}/pipe.conf\n{INSTANCE}")
    ran = doctor(path, "--json", timeout=10)
    assert ran.code in (0, 1), ran
    notes = [item for item in json.loads(ran.stdout)["findings"] if "pipe.conf" in item["message"]]
    assert notes and "FIFO" in notes[0]["message"] and notes[0]["line"] == 1, ran


def test_includes_that_fan_out_are_capped(tmp_path: Path) -> None:
    for index in range(15):
        (tmp_path / f"f{index}.conf").write_text(f"include f{index + 1}.conf\n" * 10 if index < 14 else INSTANCE)
    started = time.monotonic()
    one_line_error(doctor(tmp_path / "f0.conf"), 2, "include")
    assert time.monotonic() - started < 10


def test_the_size_of_the_whole_include_tree_is_capped_not_each_file(tmp_path: Path) -> None:
    (tmp_path / "big.conf").write_text(("# " + "x" * 1000 + "\n") * 3000)  # 3 MB: under one file's cap
    path = tmp_path / "keepalived.conf"
    path.write_text("include big.conf\n" * 10 + INSTANCE)  # 30 MB read in all
    one_line_error(doctor(path), 2, "bytes")


def test_an_include_through_a_link_another_user_planted_is_not_followed(tmp_path: Path) -> None:
    sticky = tmp_path / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    secret = tmp_path / "root-only.conf"
    secret.write_text("vrrp_instance PLANTED {\n}\n")
    link = sticky / "extra.conf"
    link.symlink_to(secret)
    os.lchown(link, NOBODY, NOBODY)
    path = tmp_path / "keepalived.conf"
    path.write_text(f"include {link}\n{INSTANCE}")
    document = conf.read(str(path), "node")
    assert [statement.args for statement in document.all("vrrp_instance")] == [["VI_1"]]
    assert any("extra.conf" in note and "link" in note for _, _, note in document.notes), document.notes


def test_a_script_that_is_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "check.sh", 0o755)
    path = tmp_path / "keepalived.conf"
    path.write_text(f"global_defs {{\n    enable_script_security\n    script_user root\n}}\n"
                    f"vrrp_script chk {{\n    script \"{tmp_path}/check.sh\"\n}}\n{INSTANCE}")
    ran = doctor(path, "--json", timeout=10)
    assert ran.code in (0, 1) and "Traceback" not in ran.stderr, ran


# 2. Numbers from keepalived.conf ------------------------------------------------------------------

@pytest.mark.parametrize("line, keyword", [
    ("interval nan", "interval"), ("interval inf", "interval"), ("interval 1e300", "interval"),
    ("interval -1", "interval"), ("timeout nan", "timeout"), ("weight 1e300", "weight"), ("weight 254", "weight"),
    ("fall 0", "fall"), ("rise -3", "rise"), ("fall 1e300", "fall"),
])
def test_bad_script_numbers_are_findings_with_their_line(tmp_path: Path, line: str, keyword: str) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_text("vrrp_script chk {\n    script \"/bin/true\"\n    " + line + "\n}\n"
                    + INSTANCE.replace("}\n}", "}\n    track_script {\n        chk\n    }\n}"))
    ran = doctor(path, "--json")
    assert ran.code == 1, ran
    bad = [item for item in json.loads(ran.stdout)["findings"] if item["code"] == "bad-number"]
    assert [(item["file"], item["line"]) for item in bad] == [(str(path), 3)], ran
    assert keyword in bad[0]["message"], bad


@pytest.mark.parametrize("line", ["priority nan", "priority 256", "priority -5", "advert_int inf",
                                  "advert_int 1e300", "preempt_delay nan", "virtual_router_id 300"])
def test_bad_instance_numbers_are_findings_with_their_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "keepalived.conf"
    instance = INSTANCE.replace("    virtual_router_id 51\n", "") if line.startswith("virtual_router_id") else INSTANCE
    path.write_text(instance.replace("    interface lo\n", f"    interface lo\n    {line}\n"))
    ran = doctor(path, "--json")
    assert ran.code == 1, ran
    bad = [item for item in json.loads(ran.stdout)["findings"] if item["code"] == "bad-number"]
    assert [item["line"] for item in bad] == [3] and line.split()[0] in bad[0]["message"], ran


def test_bad_track_file_and_pool_numbers_are_refused_not_crashed_on(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_text("track_file tf {\n    file /run/x\n    weight nan\n}\n"
                    "virtual_server 192.0.2.9 80 {\n    quorum inf\n    real_server 10.0.0.1 80 {\n"
                    "        weight 1e300\n    }\n}\n" + INSTANCE)
    ran = doctor(path, "--json")
    assert ran.code == 1, ran
    lines = sorted(item["line"] for item in json.loads(ran.stdout)["findings"] if item["code"] == "bad-number")
    assert lines == [3], ran  # the doctor reads no pools; drain does (below)
    drained = kahooks("drain", "10.0.0.1:80", "-f", str(path), "--dir", str(tmp_path / "d"))
    one_line_error(drained, 2, f"{path}:6:", "quorum")


# 3. keepalived's JSON dump ---------------------------------------------------------------------------

KEEPALIVED_STANDIN = """
import signal, sys, time
dump, content = sys.argv[1], open(sys.argv[2], 'rb').read()
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
def write(*_):
    with open(dump, 'wb') as handle:  # in two halves, `pause` s apart: a VRRP process slowed by load
        handle.write(content[:len(content) // 2])
        handle.flush()
        time.sleep(pause)
        handle.write(content[len(content) // 2:])
signal.signal(int(sys.argv[3]), write)
print('ready', flush=True)
time.sleep(60)
"""


def signum_json() -> int:
    found = subprocess.run(["keepalived", "--signum=JSON"], capture_output=True, text=True, timeout=10)
    return int(found.stdout.strip())


def live_with(tmp_path: Path, content: bytes, dump: Path | None = None,
              pause: float = 0.0) -> list[running.LiveInstance]:
    """running.live_state against a real process that writes `content` as its dump when signalled."""
    dump = dump or tmp_path / "keepalived.json"
    (tmp_path / "content").write_bytes(content)
    standin = subprocess.Popen([sys.executable, "-c", KEEPALIVED_STANDIN, str(dump), str(tmp_path / "content"),
                                str(signum_json()), str(pause)], stdout=subprocess.PIPE, text=True)
    try:
        assert standin.stdout is not None and standin.stdout.readline() == "ready\n"
        (tmp_path / "pid").write_text(f"{standin.pid}\n")
        return running.live_state(str(tmp_path / "pid"), str(dump), wait=3.0)
    finally:
        standin.kill()
        standin.wait()


GOOD = {"data": {"iname": "VI_1", "state": 2, "effective_priority": 100, "base_priority": 100,
                 "vips": ["192.0.2.1/32 dev lo scope global"], "track_script": ["chk"]}}


@pytest.mark.parametrize("dump", [
    {"data": GOOD["data"]},                                            # an object where the list belongs
    [GOOD, {"data": {**GOOD["data"], "vips": [""]}}],                  # an empty VIP
    [GOOD, {"data": {**GOOD["data"], "effective_priority": "high"}}],  # a string for a number
    [GOOD, {"data": {**GOOD["data"], "vips": [["192.0.2.1"], {"a": 1}]}}],  # nested junk
    [GOOD, {"data": [1, 2]}, 7, None, {"data": {**GOOD["data"], "iname": {"x": []}}}],
])
def test_a_dump_of_an_unexpected_shape_is_one_error_or_its_bad_entries_skipped(tmp_path: Path, dump: object) -> None:
    try:
        instances = live_with(tmp_path, json.dumps(dump).encode())
    except KahooksError as exc:
        assert "keepalived.json" in str(exc) and "\n" not in str(exc)
        return
    assert [(item.name, item.state, item.vips) for item in instances][:1] == [("VI_1", "MASTER", ["192.0.2.1"])]
    for item in instances:
        assert isinstance(item.name, str) and isinstance(item.effective_priority, int)
        assert all(isinstance(vip, str) and vip for vip in item.vips)


def test_a_dump_planted_as_a_link_by_another_user_is_refused(tmp_path: Path) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    target = tmp_path / "target.json"
    target.write_text("[]")
    dump = sticky / "keepalived.json"
    dump.symlink_to(target)
    os.lchown(dump, NOBODY, NOBODY)
    with pytest.raises(KahooksError, match="link"):
        live_with(tmp_path, json.dumps([GOOD]).encode(), dump)


def test_a_dump_still_being_written_is_read_once_complete(tmp_path: Path) -> None:
    """keepalived writes the dump in pieces; a reader that waits a fixed moment after the first piece
    reads half a file under load ("not keepalived's JSON dump")."""
    instances = live_with(tmp_path, json.dumps([GOOD]).encode(), pause=0.3)
    assert [(item.name, item.state) for item in instances] == [("VI_1", "MASTER")]


def test_a_huge_dump_is_refused_not_read(tmp_path: Path) -> None:
    with pytest.raises(KahooksError, match="larger than"):
        live_with(tmp_path, b"[" + b"1," * 20_000_000 + b"1]")


# 4. Drain ---------------------------------------------------------------------------------------------

def test_drain_list_reports_a_folder_and_a_fifo_without_crashing_or_hanging(tmp_path: Path) -> None:
    directory = tmp_path / "drain"
    directory.mkdir()
    (directory / "10.0.0.1:80").write_text("drained by ops\x1b[31m red\n")
    (directory / "10.0.0.2:80").mkdir()
    os.mkfifo(directory / "10.0.0.3:80")
    ran = kahooks("drain", "--list", "--dir", str(directory), timeout=10)
    assert ran.code == 0 and "Traceback" not in ran.stderr, ran
    lines = ran.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("10.0.0.1:80\tdrained by ops") and "\x1b" not in ran.stdout, ran
    assert "folder" in lines[1] and "FIFO" in lines[2], ran


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "1e300", "-inf"])
def test_drain_wait_timeout_must_be_a_real_duration(tmp_path: Path, timeout: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))  # a connection that never ends
    try:
        (tmp_path / "empty.conf").write_text("")
        ran = kahooks("drain", f"127.0.0.1:{port}", "--force", "-f", str(tmp_path / "empty.conf"), "--dir", str(tmp_path / "d"),
                      "--wait-connections", "--timeout", timeout, timeout=10)
    finally:
        client.close()
        listener.close()
    one_line_error(ran, 2, "--timeout")
    assert not (tmp_path / "d" / f"127.0.0.1:{port}").exists()  # refused before anything was drained


@pytest.mark.parametrize("words", [("10.0.0.300", "80"), ("10.0.0.999", "80"), ("10.0.0.1", "99999")])
def test_a_pool_with_an_invalid_address_is_refused_naming_its_line(tmp_path: Path, words: tuple[str, str]) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_text(f"virtual_server 192.0.2.9 80 {{\n    real_server {' '.join(words)} {{\n    }}\n}}\n")
    one_line_error(kahooks("drain", "10.0.0.1:80", "-f", str(path), "--dir", str(tmp_path / "d")), 2,
                   f"{path}:2:", words[0])


# 5. init's secret -----------------------------------------------------------------------------------------

SLACK = "https://hooks.slack.com/services/T0/B0/" + "s" * 40


def test_init_writes_the_webhook_into_a_fresh_private_file(tmp_path: Path) -> None:
    secret = tmp_path / "slack.url"
    secret.write_text("old\n")
    secret.chmod(0o644)
    before = secret.stat().st_ino
    ran = kahooks("init", "-f", str(conf_with_names(tmp_path, ["VI_1"])), "-o", str(tmp_path / "kahooks.toml"),
                  "--slack-url", SLACK)
    assert ran.code == 0, ran
    info = secret.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_ino != before and secret.read_text() == SLACK + "\n"


def test_a_failed_secret_write_leaves_nothing_readable_behind(tmp_path: Path) -> None:
    secret = tmp_path / "slack.url"
    secret.write_text("old\n")
    secret.chmod(0o644)
    ran = kahooks("init", "-f", str(conf_with_names(tmp_path, ["VI_1"])), "-o", str(tmp_path / "kahooks.toml"),
                  "--slack-url", SLACK, limit_file=20)
    assert ran.code == 1 and "Traceback" not in ran.stderr, ran
    for entry in tmp_path.iterdir():
        if entry.is_file() and entry.stat().st_mode & stat.S_IROTH:
            assert SLACK[:12] not in entry.read_text(errors="replace"), entry  # not even a prefix
    assert not (tmp_path / "kahooks.toml").exists()


# 6. Names round-trip ---------------------------------------------------------------------------------------

NAMES = ["VI_1", "été", "with space", "eq=ual", "br[ack]et", "ha#sh", "back\\slash", "it's"]


def conf_with_names(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "keepalived.conf"
    blocks = []
    for index, name in enumerate(names):
        quoted = '"' + name + '"' if any(char in name for char in ' "#') and '"' not in name else name
        blocks.append(f"vrrp_script {quoted} {{\n    script \"/usr/bin/killall -0 haproxy\"\n    interval 2\n}}\n"
                      f"vrrp_instance {quoted} {{\n    interface lo\n    virtual_router_id {index + 1}\n"
                      f"    virtual_ipaddress {{\n        192.0.2.{index + 1}\n    }}\n}}\n")
    path.write_text("".join(blocks))
    return path


def test_init_keeps_every_name_in_the_toml_it_writes(tmp_path: Path) -> None:
    path = conf_with_names(tmp_path, NAMES)
    names = [instance.name for instance in build(conf.read(str(path), "node")).instances]
    assert len(names) == len(NAMES)  # as keepalived's words split them (a name with `"` stays unquoted)
    output = tmp_path / "out" / "kahooks.toml"
    ran = kahooks("init", "-f", str(path), "-o", str(output))
    assert ran.code == 0, ran
    written = tomllib.loads(output.read_text())
    assert list(written["instances"]) == names
    # One check per vrrp_script, each under a name kahooks serve accepts (it names the track file),
    # its comment naming the vrrp_script as keepalived.conf writes it.
    assert len(set(written["checks"])) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", check) for check in written["checks"])
    assert '# Replaces vrrp_script "with space" (' in output.read_text() and "vrrp_script été (" in output.read_text()


# 7. kahooks.toml, its drop-ins and its secret files: read through safefs -----------------------------------

def test_validate_reports_a_fifo_in_place_of_kahooks_toml_or_its_secret(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "kahooks.toml")
    ran = kahooks("validate", "-c", str(tmp_path / "kahooks.toml"), timeout=10)
    assert ran.code == 1 and "is a FIFO" in ran.stderr and "Traceback" not in ran.stderr, ran  # validate's own form
    other = tmp_path / "other"
    other.mkdir()
    os.mkfifo(other / "slack.url", 0o600)
    (other / "kahooks.toml").write_text(f'[channels.slack]\ntype = "slack"\nurl_file = "{other}/slack.url"\n')
    ran = kahooks("validate", "-c", str(other / "kahooks.toml"), timeout=10)
    assert ran.code == 1 and "FIFO" in ran.stderr and "Traceback" not in ran.stderr, ran
