"""ka-check-process against real processes: names, zombies, pidfiles, users, namespaces."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from tests.support.programs import assert_one_line_failure, run

SLEEP = shutil.which("sleep") or "/bin/sleep"


def named_program(directory: Path, name: str) -> Path:
    """A copy of sleep under `name`, so the kernel's comm for it is `name` (truncated to 15)."""
    path = directory / name
    if not path.exists():  # copying over a running program fails with ETXTBSY
        shutil.copy(SLEEP, path)
    return path


@pytest.fixture
def unique_name() -> str:
    return "kh" + uuid.uuid4().hex[:10]


@pytest.fixture
def program_dir(work: Path) -> Path:
    """World-readable (pytest's tmp_path is 0700), so a program copied here can run as nobody."""
    return work


@pytest.fixture
def spawn(program_dir: Path) -> Iterator:
    started: list[subprocess.Popen] = []

    def start(name: str, *args: str, **kwargs) -> subprocess.Popen:
        program = named_program(program_dir, name)
        proc = subprocess.Popen([str(program), *(args or ("60",))], **kwargs)
        started.append(proc)
        wait_for(lambda: _comm(proc.pid) is not None, 5, "the process to appear")
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def test_running_process_is_healthy(spawn, unique_name: str) -> None:
    proc = spawn(unique_name)
    outcome = run("ka-check-process", unique_name)
    assert outcome.code == 0, outcome
    assert outcome.line == f"OK: {unique_name} running (pid {proc.pid})"


def test_missing_process_fails(unique_name: str) -> None:
    assert_one_line_failure(run("ka-check-process", unique_name), f"{unique_name} not running")


def test_killed_process_fails(spawn, unique_name: str) -> None:
    proc = spawn(unique_name)
    assert run("ka-check-process", unique_name).code == 0
    proc.kill()
    proc.wait()
    assert_one_line_failure(run("ka-check-process", unique_name), "not running")


def test_zombie_does_not_count(tmp_path: Path, unique_name: str) -> None:
    program = named_program(tmp_path, unique_name)
    # The parent forks the program, which exits at once; the parent never reaps it.
    parent = subprocess.Popen(["python3", "-c", f"import os,time\nif os.fork()==0: os.execv({str(program)!r},"
                               f"[{unique_name!r},'0'])\ntime.sleep(30)"])
    try:
        wait_for(lambda: any(_state(pid) == "Z" and _comm(pid) == unique_name for pid in _children(parent.pid)), 5,
                 "the zombie")
        assert_one_line_failure(run("ka-check-process", unique_name), "not running", "zombie")
    finally:
        parent.kill()
        parent.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_long_names_compare_beyond_comm(spawn) -> None:
    name = "kahooks-long-" + uuid.uuid4().hex[:12]  # longer than the 15 bytes of comm
    spawn(name)
    assert run("ka-check-process", name).code == 0
    other = name[:15] + "different"
    assert_one_line_failure(run("ka-check-process", other), "not running")


@pytest.mark.parametrize("template", ["a) (b c {}", "a (b) c\\{}"])
def test_names_with_spaces_parentheses_and_backslashes_are_found(unique_name: str, template: str) -> None:
    """The scan compares each process's comm file before reading its stat (where comm sits in parentheses;
    a kernel may escape a backslash in the comm file): a program that names itself oddly is found by that
    name all the same, and only by it."""
    odd = template.format(unique_name[:6])  # 15 bytes at most: comm keeps no more
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                              "open('/proc/self/comm', 'w').write(sys.argv[1]); time.sleep(60)", odd])
    try:
        wait_for(lambda: _comm(child.pid) == odd, 5, "the child to rename itself")
        found = run("ka-check-process", odd)
        assert found.code == 0 and f"pid {child.pid}" in found.stdout, found
        assert run("ka-check-process", odd[:-1]).code == 1
    finally:
        child.kill()
        child.wait()


def test_min_count(spawn, unique_name: str) -> None:
    spawn(unique_name)
    spawn(unique_name)
    assert run("ka-check-process", unique_name, "--min-count", "2").code == 0
    assert_one_line_failure(run("ka-check-process", unique_name, "--min-count", "3"), "only 2", "need 3")


def test_cmdline_regex_never_matches_the_checker_itself(spawn, unique_name: str) -> None:
    marker = "0.000" + str(uuid.uuid4().int)[:12]  # sleep adds up its arguments: a unique number
    # The checker's own argv contains the marker: it must not count itself.
    assert_one_line_failure(run("ka-check-process", "--cmdline", marker), "not running")
    spawn(unique_name, "60", marker)
    ok = run("ka-check-process", "--cmdline", rf"{unique_name} 60 {marker}$")
    assert ok.code == 0, ok
    assert_one_line_failure(run("ka-check-process", unique_name, "--cmdline", "no-such-arg"))


def test_user(spawn, unique_name: str) -> None:
    spawn(unique_name)
    me = str(os.geteuid())
    assert run("ka-check-process", unique_name, "--user", me).code == 0
    assert_one_line_failure(run("ka-check-process", unique_name, "--user", str(os.geteuid() + 4242)))


@pytest.mark.root
def test_user_by_name_for_a_process_run_as_nobody(spawn, unique_name: str) -> None:
    spawn(unique_name, "60", preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    assert run("ka-check-process", unique_name, "--user", "nobody").code == 0
    assert_one_line_failure(run("ka-check-process", unique_name, "--user", "root"))


def test_pidfile(spawn, unique_name: str, tmp_path: Path) -> None:
    proc = spawn(unique_name)
    pidfile = tmp_path / "service.pid"
    pidfile.write_text(f"{proc.pid}\n")
    ok = run("ka-check-process", "--pidfile", str(pidfile))
    assert ok.code == 0 and f"pid {proc.pid}" in ok.line, ok
    assert run("ka-check-process", unique_name, "--pidfile", str(pidfile)).code == 0
    proc.kill()
    proc.wait()
    assert_one_line_failure(run("ka-check-process", "--pidfile", str(pidfile)), f"pid {proc.pid}", "not running")


def test_pidfile_whose_pid_was_reused(spawn, unique_name: str, tmp_path: Path) -> None:
    impostor = spawn(unique_name)
    pidfile = tmp_path / "haproxy.pid"
    pidfile.write_text(str(impostor.pid))  # haproxy died; its pid now belongs to another program
    assert_one_line_failure(run("ka-check-process", "haproxy", "--pidfile", str(pidfile)),
                            f"is '{unique_name}', not 'haproxy'")


@pytest.mark.parametrize("content, fragment", [(None, "does not exist"), ("", "holds no pid"),
                                               ("garbage\n", "holds no pid"), ("-5", "holds no pid")])
def test_bad_pidfiles(tmp_path: Path, content: str | None, fragment: str) -> None:
    pidfile = tmp_path / "x.pid"
    if content is not None:
        pidfile.write_text(content)
    assert_one_line_failure(run("ka-check-process", "--pidfile", str(pidfile)), fragment)


@pytest.mark.root
def test_inside_a_pid_namespace_only_that_namespace_counts(spawn, unique_name: str, tmp_path: Path) -> None:
    spawn(unique_name)  # outside the namespace: must not be seen from inside
    from tests.support.programs import program

    check = program("ka-check-process")
    inner = named_program(tmp_path, unique_name + "i")
    script = (f"{check} {unique_name}; echo rc=$?; {inner} 30 & sleep 0.2; "
              f"{check} {unique_name}i; echo rc=$?; kill $!")
    out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
                         capture_output=True, text=True, timeout=30)
    lines = out.stdout.splitlines()
    assert lines[0] == f"FAIL: {unique_name} not running" and lines[1] == "rc=1", out
    assert lines[2].startswith(f"OK: {unique_name}i running") and lines[3] == "rc=0", out


@pytest.mark.parametrize("args, fragment", [
    ((), "give a process NAME, --cmdline or --pidfile"),
    (("/usr/sbin/haproxy",), "give the program name, not a path"),
    (("x", "--min-count", "0"), "--min-count '0': must be at least 1"),
    (("x", "--min-count", "two"), "not a whole number"),
    (("x", "--user", "no-such-user-kh"), "no such user"),
    (("x", "--cmdline", "(unclosed"), "bad regular expression"),
    (("x", "--timeout", "0"), "must be a positive number"),
    (("x", "--frobnicate"), "unknown option --frobnicate"),
    (("x", "y"), "unexpected argument 'y'"),
    (("--pidfile", "/run/x.pid", "--min-count", "2"), "cannot be used with --pidfile"),
])
def test_bad_input_is_one_line_and_exit_1(args: tuple[str, ...], fragment: str) -> None:
    assert_one_line_failure(run("ka-check-process", *args), fragment)


def test_nagios_mode(spawn, unique_name: str) -> None:
    spawn(unique_name)
    ok = run("ka-check-process", "--nagios", unique_name)
    assert ok.code == 0 and ok.line.startswith(f"PROCESS OK - {unique_name} running"), ok
    assert "| time=" in ok.line and ok.line.endswith(" count=1;;;;")  # the monitoring plugins' order: time first
    critical = run("ka-check-process", "--nagios", unique_name + "x")
    assert critical.code == 2 and critical.line.startswith("PROCESS CRITICAL - "), critical
    unknown = run("ka-check-process", "--nagios", "--min-count", "x", unique_name)
    assert unknown.code == 3 and unknown.line.startswith("PROCESS UNKNOWN - "), unknown


def test_maintenance_file_drains(spawn, unique_name: str, tmp_path: Path) -> None:
    spawn(unique_name)
    flag = tmp_path / "maintenance"
    assert run("ka-check-process", unique_name, "--maintenance-file", str(flag)).code == 0
    flag.touch()
    assert_one_line_failure(run("ka-check-process", unique_name, "--maintenance-file", str(flag)),
                            f"maintenance file {flag} exists")


# A probe repeated in one process (the daemon's check thread): it confirms what it found from those
# processes' own entries, and looks at every process again when one of them no longer answers.

def _repeatable(*words: str):
    from kahooks.daemon.settings import build_check

    built = build_check(["ka-check-process", *words], lambda key, message: pytest.fail(message))
    assert built is not None
    return built[2]


def _probe(check):
    from kahooks.deadline import Deadline

    return check.probe(Deadline(5))


def test_a_repeated_healthy_probe_confirms_its_pids_without_looking_at_every_process(
        spawn, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kahooks.system import procfs

    first = spawn(unique_name)
    wait_for(lambda: _comm(first.pid) == unique_name, 5, "its exec")
    check = _repeatable(unique_name)
    assert _probe(check).ok and check.pids() == [first.pid]
    second = spawn(unique_name)  # started since: the count catches up at the next whole look
    wait_for(lambda: _comm(second.pid) == unique_name, 5, "the second one's exec")

    def no_whole_look(*args, **kwargs):
        raise AssertionError("looked at every process")

    monkeypatch.setattr(procfs, "iter_processes", no_whole_look)
    again = _probe(check)
    assert again.ok and check.pids() == [first.pid], again
    monkeypatch.undo()
    monkeypatch.setattr("kahooks.checks.process.FULL_LOOK", 0.0)  # the whole look is due
    assert _probe(check).ok and len(check.pids()) == 2


def test_a_repeated_probe_looks_again_when_a_pid_died_became_a_zombie_or_another_program(
        spawn, unique_name: str, tmp_path: Path) -> None:
    first = spawn(unique_name)
    second = spawn(unique_name)
    wait_for(lambda: _comm(second.pid) == unique_name, 5, "the second one's exec")
    check = _repeatable(unique_name, "--min-count", "2")
    assert _probe(check).ok
    second.kill()
    second.wait()
    failed = _probe(check)
    assert not failed.ok and "only 1" in failed.summary, failed

    check = _repeatable(unique_name)
    assert _probe(check).ok
    first.kill()  # not reaped: a zombie
    wait_for(lambda: _state(first.pid) == "Z", 5, "the zombie")
    zombie = _probe(check)
    assert not zombie.ok and "zombie" in zombie.summary, zombie

    # A confirmed pid that execs another program (its command line no longer matches).
    marker = "kh-marker-" + uuid.uuid4().hex
    flag = tmp_path / "exec-now"
    replaced = subprocess.Popen(["python3", "-c", "import os, sys, time\n"
                                 "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
                                 f"os.execv({SLEEP!r}, ['sleep', '60'])", str(flag), marker])
    try:
        check = _repeatable("--cmdline", marker)
        wait_for(lambda: _probe(check).ok, 5, "the marked process to be found")
        flag.touch()
        wait_for(lambda: _comm(replaced.pid) == "sleep", 5, "the exec")
        after = _probe(check)
        assert not after.ok and "not running" in after.summary, after
    finally:
        replaced.kill()
        replaced.wait()
