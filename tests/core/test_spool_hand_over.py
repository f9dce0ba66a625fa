"""kahooks.notify.spooldir.hand_over, what the package's postinst runs on a spool an earlier root run left:
root's folders and single-link files go to the spool's user; a hard link or a symlink the user planted
to a file of root's, a FIFO, and what is already the user's are left as they are."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from kahooks.notify.spooldir import hand_over

pytestmark = pytest.mark.root
USER = "nobody"


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root: chown")
    spool = tmp_path / "spool"
    (spool / "queue" / "mail").mkdir(parents=True, mode=0o750)
    (spool / "queue" / "mail" / "entry.json").write_text("{}")
    (spool / "worker.log").write_text("")
    return spool


def test_roots_folders_and_files_go_to_the_user_but_nothing_planted(spool: Path, tmp_path: Path) -> None:
    user = pwd.getpwnam(USER)
    outside = tmp_path / "root-only"
    outside.write_text("root's\n")
    outside.chmod(0o600)
    os.link(outside, spool / "queue" / "planted-hard")
    (spool / "queue" / "planted-symlink").symlink_to(outside)
    (spool / "queue" / "away").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(spool / "queue" / "fifo")
    given = hand_over(spool, user.pw_uid, user.pw_gid)
    assert given == 5  # spool, queue, queue/mail, its entry, worker.log
    for path in (spool, spool / "queue", spool / "queue" / "mail", spool / "queue" / "mail" / "entry.json",
                 spool / "worker.log"):
        assert (path.stat().st_uid, path.stat().st_gid) == (user.pw_uid, user.pw_gid), path
    assert (outside.stat().st_uid, outside.stat().st_mode & 0o777) == (0, 0o600), "a planted link was given away"
    assert tmp_path.stat().st_uid == 0, "a symlinked folder was followed"
    assert os.lstat(spool / "queue" / "planted-symlink").st_uid == 0
    assert os.lstat(spool / "queue" / "fifo").st_uid == 0


def test_the_postinst_command(spool: Path) -> None:
    """`python3 -m kahooks.notify.spooldir hand-over SPOOL USER`, as debian/kahooks.postinst runs it."""
    done = subprocess.run([sys.executable, "-P", "-m", "kahooks.notify.spooldir", "hand-over", str(spool), USER],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert (spool / "queue" / "mail" / "entry.json").stat().st_uid == pwd.getpwnam(USER).pw_uid
    bad = subprocess.run([sys.executable, "-P", "-m", "kahooks.notify.spooldir", "hand-over", str(spool), "no-such-user"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "not handed over" in bad.stderr, bad
    usage = subprocess.run([sys.executable, "-P", "-m", "kahooks.notify.spooldir"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr
