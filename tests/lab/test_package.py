"""The Debian package on this machine: dpkg -i, what was installed, the daemon on Debian's libraries,
every check and the notify handler run as keepalived_script by a real keepalived with script security
on, then dpkg --purge and the file system compared with how it was before."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from kahooks.lab.install import ensure_script_user
from kahooks.lab.netns import LabError, Network, free_port, wait_for
from tests.lab.packaging import USER, System, check_what_was_installed, clean_env, run_under_keepalived

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs a Debian system"),
              pytest.mark.timeout(600)]
WATCHED = ["/etc", "/usr/bin", "/usr/lib/python3", "/usr/share/man/man1", "/usr/share/doc", "/usr/share/kahooks",
           "/usr/share/bash-completion", "/usr/share/zsh", "/lib/systemd/system", "/var/spool", "/var/lib/kahooks",
           "/var/log/kahooks.log", "/run/kahooks"]
# Written by dpkg and apt themselves, or by man-db's trigger: not the package's to clean up. And
# keepalived 2.3 (trixie) writes /etc/iproute2/rt_addrprotos.d/keepalived.conf, and the folders, when it starts.
NOT_OURS = ("/etc/ld.so.cache", "/var/lib/dpkg", "/etc/.pwd.lock", "/etc/iproute2")


def snapshot() -> set[str]:
    found: set[str] = set()
    for top in WATCHED:
        if os.path.lexists(top):
            found.add(top)
        for root, directories, files in os.walk(top):
            found.update(os.path.join(root, name) for name in directories + files)
    return {path for path in found if not path.startswith(NOT_OURS)}


def test_build_install_run_under_keepalived_and_purge(deb: Path) -> None:
    if subprocess.run(["dpkg-query", "-W", "kahooks"], capture_output=True).returncode == 0:
        pytest.skip("a kahooks package is already installed here: this test would remove it")
    here = System(Path("/"))
    # The package creates keepalived_script when it is missing: let it (the other lab tests make it again).
    # Not beside other workers (pytest-xdist): their keepalived runs scripts as that user at any moment,
    # and the purge would take it from them. The fresh-root test sees the package create it anyway.
    if here.user_exists() and not os.environ.get("PYTEST_XDIST_WORKER") and \
            subprocess.run(["pgrep", "-u", USER], capture_output=True).returncode != 0:
        subprocess.run(["userdel", USER], check=True)
    user_before = here.user_exists()
    # A spool an earlier root run left (the venv route, or ka-notify by hand as root): the package must
    # hand it to keepalived_script, or the ka-notify keepalived runs could not record a transition.
    if not os.path.exists("/var/spool/kahooks"):
        os.makedirs("/var/spool/kahooks/incoming", mode=0o750)
    # ...and in it a hard link to a file of root's outside the spool, as its owner could plant one:
    # handing the spool over must not give that file away.
    outside = Path(tempfile.mkdtemp(prefix="kahooks-outside-")) / "root-only"
    outside.write_text("root's\n")
    outside.chmod(0o600)
    planted = Path("/var/spool/kahooks/incoming/planted")
    planted.unlink(missing_ok=True)
    os.link(outside, planted)
    before = snapshot() - {str(planted)}
    work = Path(tempfile.mkdtemp(prefix="kahooks-deb-work-"))
    work.chmod(0o755)
    try:
        installed = subprocess.run(["dpkg", "-i", str(deb)], capture_output=True, text=True, timeout=120)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert (outside.stat().st_uid, outside.stat().st_mode & 0o777) == (0, 0o600), "postinst gave a linked file away"
        assert Path("/var/spool/kahooks/incoming").stat().st_uid != 0, "the spool was not handed over"
        planted.unlink()
        assert Path("/run/kahooks/track").is_dir(), "tmpfiles.d did not make the track folder at install"
        assert Path("/var/lib/kahooks/created-keepalived_script").exists() == (not user_before)
        check_what_was_installed(here)
        run_the_daemon(work)
        with Network("khldeb") as net:
            run_under_keepalived(here, net.add_node("lb", 11), work)
    finally:
        purged = subprocess.run(["dpkg", "--purge", "kahooks"], capture_output=True, text=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(outside.parent, ignore_errors=True)
        user_after = here.user_exists()
        ensure_script_user()  # whatever happened above: the other lab tests run scripts as this user
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "not empty so not removed" not in purged.stdout + purged.stderr, purged.stdout + purged.stderr
    left = snapshot() - before
    assert not left, sorted(left)
    assert user_after == user_before, "purge removes keepalived_script only when the package made it"


def run_the_daemon(work: Path) -> None:
    """`kahooks serve` on Debian's libraries (watchdog 2.2, prometheus_client 0.16): a service's death
    reaches its track file, a FIFO line its channel and /metrics."""
    directory = work / "daemon"
    directory.mkdir()
    port = free_port()
    service = subprocess.Popen(["/bin/sleep", "300"])
    (directory / "svc.pid").write_text(f"{service.pid}\n")
    config = directory / "kahooks.toml"
    config.write_text(f'spool_dir = "{directory}/spool"\n[serve]\nstate_dir = "{directory}/state"\n'
                      f'notify_fifo = "{directory}/state/notify.fifo"\nmetrics_listen = "127.0.0.1:{port}"\n'
                      f'[checks.svc]\nrun = "ka-check-process --pidfile {directory}/svc.pid"\ninterval = 30\n'
                      f'[channels.out]\ntype = "exec"\ncommand = ["/bin/sh", "-c", "echo $KAHOOKS_STATE >> {directory}/out"]\n'
                      '[[rules]]\nchannels = ["out"]\n')
    track = directory / "state" / "track" / "svc"
    daemon = subprocess.Popen(["/usr/bin/kahooks", "serve", "-c", str(config)], env=clean_env(),
                              stdout=subprocess.DEVNULL, stderr=open(directory / "serve.log", "wb"))
    try:
        wait_for(lambda: track.exists() and track.read_text() == "0\n", 15, "the healthy track file")
        service.kill()
        service.wait()
        wait_for(lambda: track.read_text() == "1\n", 5, "the service's death in the track file")
        fifo = directory / "state" / "notify.fifo"
        wait_for(lambda: fifo.is_fifo(), 10, "the notify FIFO")
        # As keepalived does: opened read-write (no reader needed yet) and held open, so the line
        # waits in the pipe until the daemon's reader has it.
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        try:
            os.write(fd, b'INSTANCE "VI_1" MASTER 100\n')
            try:
                wait_for(lambda: (directory / "out").exists() and (directory / "out").read_text() == "MASTER\n", 15,
                         "the transition delivered")
            except LabError:
                raise AssertionError((directory / "serve.log").read_text()[-3000:]) from None
        finally:
            os.close(fd)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'kahooks_vrrp_state{iname="VI_1",state="MASTER"} 1.0' in metrics, metrics
        assert 'kahooks_check_up{check="svc"} 0.0' in metrics, metrics
    finally:
        daemon.terminate()
        daemon.wait(20)
    assert "Traceback" not in (directory / "serve.log").read_text(), (directory / "serve.log").read_text()
