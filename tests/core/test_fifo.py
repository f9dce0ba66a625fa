"""ka-notify fifo on a real FIFO, with keepalived's exact line format."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kahooks.lab.netns import wait_for
from kahooks.lab.rsyslog import Rsyslog
from tests.support.notify import write_config
from tests.support.programs import kill_mentioning, program, quiet_env


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "keepalived.fifo"
    os.mkfifo(path)
    return path


def start_reader(config: Path, fifo: Path) -> subprocess.Popen:
    env = quiet_env()
    proc = subprocess.Popen([program("ka-notify"), "-c", str(config), "fifo", str(fifo)], env=env,
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc


def open_writer(fifo: Path, reader: subprocess.Popen) -> int:
    """keepalived opens its end non-blocking; wait until the reader has opened its end."""
    def opened() -> int | None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            assert reader.poll() is None, reader.stderr.read()
            return None

    return wait_for(opened, 10, "the reader to open the FIFO")


def stop(reader: subprocess.Popen, spool: Path) -> None:
    reader.send_signal(signal.SIGTERM)
    reader.wait(10)
    kill_mentioning(str(spool))  # the delivery worker the reader started


def what(line: str) -> str:
    """The transition a syslog line tells: `VI_1 is MASTER (was BACKUP)` or `virtual server ... quorum`."""
    found = re.search(r"(\S+ is .*?) priority \d+|(virtual server \S+ (?:has|LOST) its quorum)", line)
    assert found, line
    return found.group(1) or found.group(2)


def test_lines_in_order_garbage_skipped(tmp_path: Path, fifo: Path, rsyslog: Rsyslog) -> None:
    config = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "{rsyslog.socket}"')
    reader = start_reader(config, fifo)
    fd = open_writer(fifo, reader)
    lines = ['INSTANCE "VI_1" BACKUP 100', 'GROUP "VG_1" BACKUP 0', "this is garbage",
             "VS [192.168.201.15]:tcp:80 UP", 'INSTANCE "VI_1" MASTER 100', 'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100',
             'INSTANCE "VI_1" FAULT 0']
    os.write(fd, "".join(line + "\n" for line in lines).encode())
    got = rsyslog.wait_for_count("kahooks", 6)
    assert [what(line) for line in got] == \
        ["VI_1 is BACKUP", "VG_1 is BACKUP", "virtual server [192.168.201.15]:tcp:80 has its quorum",
         "VI_1 is MASTER (was BACKUP)", "VI_1 is MASTER_RX_LOWER_PRI (was MASTER)", "VI_1 is FAULT (was MASTER)"]
    os.close(fd)
    stop(reader, tmp_path / "spool")
    assert reader.returncode == 0


def test_keeps_reading_after_sigterm_for_the_final_stop_lines(tmp_path: Path, fifo: Path, rsyslog: Rsyslog) -> None:
    config = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "{rsyslog.socket}"')
    reader = start_reader(config, fifo)
    fd = open_writer(fifo, reader)
    os.write(fd, b'INSTANCE "VI_1" MASTER 100\n')
    rsyslog.wait_for("VI_1 is MASTER")
    reader.send_signal(signal.SIGTERM)  # keepalived signals first...
    time.sleep(0.2)  # deliberate: the signal has landed and the reader lingers, as when keepalived stops
    os.write(fd, b'INSTANCE "VI_1" STOP 100\n')  # ...then writes STOP
    assert reader.wait(5) == 0
    rsyslog.wait_for("VI_1 is STOP")
    os.close(fd)
    stop(reader, tmp_path / "spool")


def test_survives_keepalived_reopening_the_fifo(tmp_path: Path, fifo: Path, rsyslog: Rsyslog) -> None:
    config = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "{rsyslog.socket}"')
    reader = start_reader(config, fifo)
    fd = open_writer(fifo, reader)
    os.write(fd, b'INSTANCE "VI_1" MASTER 100\n')
    os.close(fd)  # a reload closes keepalived's end
    time.sleep(0.2)  # deliberate: the reader sees the end of file before keepalived opens the FIFO again
    fd = open_writer(fifo, reader)
    os.write(fd, b'INSTANCE "VI_1" BACKUP 100\n')
    rsyslog.wait_for("VI_1 is BACKUP")
    assert reader.poll() is None
    os.close(fd)
    stop(reader, tmp_path / "spool")


def test_a_thousand_lines_in_ten_seconds(tmp_path: Path, fifo: Path, rsyslog: Rsyslog) -> None:
    config = write_config(tmp_path, f'[channels.log]\ntype = "syslog"\naddress = "{rsyslog.socket}"')
    reader = start_reader(config, fifo)
    fd = open_writer(fifo, reader)
    started = time.monotonic()
    for burst in range(10):  # ten bursts of a hundred, as a flapping pair of many instances might
        os.write(fd, "".join(f'INSTANCE "VI_{n}" {("MASTER", "BACKUP")[burst % 2]} 100\n'
                             for n in range(100)).encode())
        time.sleep(max(0.0, started + burst + 1 - time.monotonic()) * 0.5)
    delivered = rsyslog.wait_for_count(" is ", 1000, timeout=60)
    assert len(delivered) == 1000
    rss_kib = int(next(line for line in Path(f"/proc/{reader.pid}/status").read_text().splitlines()
                       if line.startswith("VmRSS")).split()[1])
    assert rss_kib < 80 * 1024, rss_kib
    os.close(fd)
    stop(reader, tmp_path / "spool")


def test_not_a_fifo(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[channels.log]\ntype = "syslog"')
    result = subprocess.run([program("ka-notify"), "-c", str(config), "fifo", str(config)], capture_output=True,
                            text=True, env=quiet_env())
    assert result.returncode == 2 and "is not a FIFO" in result.stderr


def test_a_fifo_line_is_stamped_and_recorded_under_the_record_lock(tmp_path: Path, fifo: Path) -> None:
    """The FIFO's reader (`ka-notify fifo` and `kahooks serve` alike) records as every recorder does, in
    Spool.record under the record lock: while the worker's side of it is held (listing incoming/), a line
    read from the FIFO waits, and is stamped and written once the lock is let go, never before."""
    from kahooks.notify.fifo import Recorder, record_fifo
    from kahooks.notify.spool import RecordLock, Spool

    spool = Spool(tmp_path / "spool").ensure()
    woken, stop = threading.Event(), threading.Event()
    reader = threading.Thread(target=record_fifo, args=(str(fifo), Recorder(spool, woken.set), stop), daemon=True)
    held = RecordLock(spool, shared=False, wait=5).__enter__()
    assert held.fd is not None
    reader.start()
    writer = None
    try:
        writer = wait_for(lambda: _writer(fifo), 10, "the reader to open the FIFO")
        os.write(writer, b'INSTANCE "VI_1" MASTER 100\n')
        time.sleep(0.3)  # a measuring window, well within the recorder's LOCK_WAIT (1 s)
        assert spool.names("incoming") == [] and not woken.is_set(), "recorded past the held record lock"
        released = time.time_ns()
        held.__exit__()
        names = wait_for(lambda: spool.names("incoming"), 10, "the line to be recorded once the lock is let go")
        assert len(names) == 1 and int(names[0][:20]) >= released  # stamped under the lock, after it was let go
        assert woken.wait(5)
    finally:
        held.__exit__()
        stop.set()
        if writer is not None:
            os.close(writer)
        reader.join(5)


def _writer(fifo: Path) -> int | None:
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader yet
        return None
