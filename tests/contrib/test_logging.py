"""Where kahooks' own log lines go, tried with a real rsyslogd: the packaged rsyslog snippet files
every kahooks program's lines in kahooks.log (and nothing else), and under systemd the daemon
writes each line once (journald hears /dev/log as well as stderr)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from kahooks.events.event import Event
from kahooks.lab.netns import free_port, wait_for
from kahooks.lab.rsyslog import Rsyslog
from tests.support.notify import worker_for, write_config
from tests.support.programs import program, quiet_env, run
from tests.support.serve import head

SNIPPET = Path(__file__).resolve().parents[2] / "contrib" / "rsyslog" / "30-kahooks.conf"


def snippet_rsyslog(tmp_path: Path) -> tuple[Rsyslog, Path]:
    """rsyslogd with the packaged snippet ahead of its catch-all file, writing to a file of the test's."""
    kahooks_log = tmp_path / "kahooks.log"
    text = SNIPPET.read_text()
    assert 'file="/var/log/kahooks.log"' in text
    return Rsyslog(tmp_path, rules=text.replace("/var/log/kahooks.log", str(kahooks_log))), kahooks_log


def serve(tmp_path: Path, stderr: Path, **env: str) -> subprocess.Popen:
    config = tmp_path / "serve.toml"
    config.write_text(head(tmp_path) + f'\n[checks.closed]\nrun = "ka-check-port 127.0.0.1:{free_port()}"\n'
                                       'interval = 60\n')
    return subprocess.Popen([program("kahooks"), "serve", "-c", str(config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(stderr, "wb"), env=quiet_env(**env))


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(20)


def test_the_rsyslog_snippet_files_every_kahooks_program_and_nothing_else(tmp_path: Path) -> None:
    rsyslog, kahooks_log = snippet_rsyslog(tmp_path)
    socket = {"KAHOOKS_SYSLOG_SOCKET": str(rsyslog.socket)}
    try:
        assert run("ka-check-port", f"127.0.0.1:{free_port()}", env=socket).code == 1  # ident ka-check
        spool = tmp_path / "spool"
        assert run("ka-notify", "--spool", str(spool), "--instance", "VI_1", env=socket).code == 2  # ident ka-notify
        assert not spool.exists()  # a usage error is said before anything touches the disk
        daemon = serve(tmp_path, tmp_path / "serve.err", **socket)  # ident kahooks-serve
        try:
            wait_for(lambda: kahooks_log.exists() and "kahooks-serve" in kahooks_log.read_text(), 15,
                     "kahooks serve's lines in kahooks.log")
        finally:
            stop(daemon)
        # The syslog channel, with its default ident, delivered by a real worker.
        config = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "{rsyslog.socket}"\n')
        _, spool_of_config, worker = worker_for(config)
        spool_of_config.record(Event.new("INSTANCE", "VI_1", "FAULT", 0, "test"))
        assert worker.drain(10)
        wait_for(lambda: "VI_1 is FAULT" in kahooks_log.read_text(), 5, "the channel's line in kahooks.log")
        # Somebody else's line.
        subprocess.run(["logger", "--socket-errors=on", "-u", str(rsyslog.socket), "-t", "sshd", "from sshd"],
                       check=True)
        rsyslog.wait_for("from sshd")
    finally:
        rsyslog.stop()
    filed = kahooks_log.read_text()
    for fragment in ("ka-check[", "ka-notify[", "kahooks-serve[", "kahooks[", "VI_1 is FAULT"):
        assert fragment in filed, (fragment, filed)
    assert "sshd" not in filed
    # `stop`: what the snippet filed goes nowhere else (the catch-all has only the stranger's line).
    assert not [line for line in rsyslog.lines() if "ka-" in line or "kahooks" in line], rsyslog.lines()


def journal_stream(path: Path) -> str:
    """The JOURNAL_STREAM systemd would set for a stderr connected to `path` (device:inode)."""
    path.touch()
    status = os.stat(path)
    return f"{status.st_dev}:{status.st_ino}"


def served_lines(rsyslog: Rsyslog) -> int:
    return sum("serving 1 check" in line for line in rsyslog.lines())


def test_under_systemd_the_daemon_writes_each_line_to_the_journal_once(tmp_path: Path) -> None:
    (tmp_path / "syslog").mkdir()
    rsyslog = Rsyslog(tmp_path / "syslog")
    socket = str(rsyslog.socket)
    outcomes = {}
    try:
        for case, env in (("journal", {"KAHOOKS_SYSLOG_SOCKET": socket}),
                          ("terminal", {"KAHOOKS_SYSLOG_SOCKET": socket}),
                          ("journal, no syslog", {"KAHOOKS_SYSLOG_SOCKET": str(tmp_path / "no.sock")})):
            stderr = tmp_path / f"{case}.err"
            if case.startswith("journal"):
                env["JOURNAL_STREAM"] = journal_stream(stderr)
            # Counted, not timed: a syslog line of the case before, within the same second, is not this one's.
            heard_before = served_lines(rsyslog)
            daemon = serve(tmp_path, stderr, **env)
            try:
                wait_for(lambda: "serving 1 check" in stderr.read_text()  # noqa: B023  # called at once
                         or served_lines(rsyslog) > heard_before,  # noqa: B023
                         15, f"{case}: the daemon's first line")
                time.sleep(0.3)  # deliberate: a second copy, were it written, would be there by now
            finally:
                stop(daemon)
            outcomes[case] = stderr.read_text()
    finally:
        rsyslog.stop()
    # The journal hears /dev/log: stderr stays quiet (else each line twice, once without its severity).
    assert "serving 1 check" not in outcomes["journal"], outcomes["journal"]
    assert len([line for line in rsyslog.lines() if "serving 1 check" in line]) == 2  # journal + terminal runs
    # A person's terminal gets the lines on stderr as before; with no syslog socket, stderr has them anyway.
    assert "serving 1 check" in outcomes["terminal"]
    assert "serving 1 check" in outcomes["journal, no syslog"]
