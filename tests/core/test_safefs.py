"""kahooks.files.safefs, the one way to read or update a path another user can write (ARCHITECTURE.md, rule 1)."""

from __future__ import annotations

import os
import pwd
import stat
import threading
from pathlib import Path

import pytest

from kahooks.files import safefs

NOBODY = pwd.getpwnam("nobody")


def _folder(path: Path, mode: int) -> Path:
    path.mkdir()
    path.chmod(mode)
    return path


def test_a_link_root_made_in_a_folder_only_root_writes_is_followed(tmp_path: Path) -> None:
    """A config manager's link (root's, in a root-only folder) stays fine, as OpenSSH's StrictModes allows."""
    (tmp_path / "real.conf").write_text("vrrp_instance VI_1 {}\n")
    safe = _folder(tmp_path / "etc", 0o755)
    (safe / "keepalived.conf").symlink_to(tmp_path / "real.conf")
    (safe / "relative.conf").symlink_to("../real.conf")
    assert safefs.read_text(safe / "keepalived.conf", 100) == "vrrp_instance VI_1 {}\n"
    assert safefs.read_text(safe / "relative.conf", 100) == "vrrp_instance VI_1 {}\n"
    with pytest.raises(safefs.UnsafeFile, match="symbolic link"):
        safefs.read_text(safe / "keepalived.conf", 100, links=False)


def test_a_link_another_user_could_have_planted_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("root's only\n")
    shared = _folder(tmp_path / "shared", 0o777)              # anyone may replace what is in it
    (shared / "dump.json").symlink_to(tmp_path / "secret")
    group = _folder(tmp_path / "group", 0o775)                 # the group may
    (group / "dump.json").symlink_to(tmp_path / "secret")
    sticky = _folder(tmp_path / "tmp", 0o1777)                 # /tmp: only a link's owner may replace it
    (sticky / "roots.json").symlink_to(tmp_path / "secret")
    (sticky / "nobodys.json").symlink_to(tmp_path / "secret")
    os.lchown(sticky / "nobodys.json", NOBODY.pw_uid, NOBODY.pw_gid)
    for planted in (shared / "dump.json", group / "dump.json", sticky / "nobodys.json"):
        with pytest.raises(safefs.UnsafeFile, match="another user could have planted"):
            safefs.read_text(planted, 100)
    assert safefs.read_text(sticky / "roots.json", 100) == "root's only\n"


def test_a_link_in_the_middle_of_the_path_is_judged_as_well(tmp_path: Path) -> None:
    real = _folder(tmp_path / "real", 0o755)
    (real / "f").write_text("x")
    shared = _folder(tmp_path / "shared", 0o777)
    (shared / "d").symlink_to(real)
    with pytest.raises(safefs.UnsafeFile, match="planted"):
        safefs.read_text(shared / "d" / "f", 10)
    assert safefs.read_text(shared / ".." / "real" / "f", 10) == "x"  # no link: nothing to judge


def test_only_a_regular_file_is_read_and_nothing_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = _folder(tmp_path / "folder", 0o755)
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: _capture(outcome, lambda: safefs.read_bytes(fifo, 10)), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], safefs.UnsafeFile) and "is a FIFO, not a regular file" in str(outcome[0])
    with pytest.raises(safefs.UnsafeFile, match="is a folder"):
        safefs.read_bytes(folder, 10)
    with pytest.raises(safefs.UnsafeFile, match="character device"):
        safefs.read_bytes("/dev/zero", 10)
    with pytest.raises(FileNotFoundError):
        safefs.read_bytes(tmp_path / "missing", 10)


def _capture(outcome: list[BaseException], call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:  # noqa: BLE001 - handed to the test
        outcome.append(exc)


def test_every_read_is_capped(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1001)
    assert len(safefs.read_bytes(big, 1001)) == 1001
    with pytest.raises(safefs.UnsafeFile, match="larger than 1000 bytes"):
        safefs.read_bytes(big, 1000)


def test_open_owned_replaces_a_hard_link_a_fifo_or_a_link_and_never_touches_their_inode(tmp_path: Path) -> None:
    outside = tmp_path / "shadow"
    outside.write_text("root's\n")
    outside.chmod(0o600)
    spool = _folder(tmp_path / "spool", 0o755)
    os.chown(spool, NOBODY.pw_uid, NOBODY.pw_gid)
    os.link(outside, spool / "hard.log")
    (spool / "soft.log").symlink_to(outside)
    os.mkfifo(spool / "fifo.log")
    folder = os.open(spool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("hard.log", "soft.log", "fifo.log", "new.log"):
            fd = safefs.open_owned(folder, name, os.O_WRONLY | os.O_APPEND, 0o640, (NOBODY.pw_uid, NOBODY.pw_gid))
            try:
                os.write(fd, b"appended\n")
                info = os.fstat(fd)
            finally:
                os.close(fd)
            assert stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and info.st_uid == NOBODY.pw_uid, name
            assert stat.S_IMODE(info.st_mode) == 0o640
        again = safefs.open_owned(folder, "new.log", os.O_WRONLY | os.O_APPEND, 0o640)  # a good file is kept
        os.close(again)
        assert (spool / "new.log").read_text() == "appended\n"
    finally:
        os.close(folder)
    assert outside.read_text() == "root's\n"
    assert (outside.stat().st_uid, stat.S_IMODE(outside.stat().st_mode)) == (0, 0o600)
