"""The Debian package: built with `./run package`, installed with dpkg or apt, run by real keepalived, purged clean.

Two tests share one build (lintian must report no error). On this machine: dpkg -i, check what
was installed, run the daemon, run every check and the notify handler as keepalived_script from a
real keepalived with script security on, then purge and compare the file system with how it was
before. On a fresh Debian root (`./run fresh-root`, debootstrap's minimal system, which has none of
kahooks' libraries, no keepalived_script, no venv and no pip): `apt install ./kahooks.deb` as the
README says, its Depends resolved by apt alone, then the same checks and keepalived inside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from kahooks.lab.install import ensure_script_user
from kahooks.lab.netns import LabError, Network, Node, wait_for

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs a Debian system"),
              pytest.mark.timeout(600)]
CHECKOUT = Path(__file__).resolve().parents[2]
USER = "keepalived_script"
PROGRAMS = ("kahooks", "ka-notify", "ka-check-process", "ka-check-port", "ka-check-http", "ka-check-exec",
            "ka-check-heartbeat")
WATCHED = ["/etc", "/usr/bin", "/usr/lib/python3", "/usr/share/man/man1", "/usr/share/doc", "/usr/share/kahooks",
           "/usr/share/bash-completion", "/usr/share/zsh", "/lib/systemd/system", "/var/spool", "/var/lib/kahooks",
           "/var/log/kahooks.log", "/run/kahooks"]
# Written by dpkg and apt themselves, or by man-db's trigger: not the package's to clean up.
NOT_OURS = ("/etc/ld.so.cache", "/var/lib/dpkg", "/etc/.pwd.lock")


def clean_env() -> dict[str, str]:
    """What root's shell has: no venv on PATH, so /usr/bin's programs and Debian's python3 run."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class System:
    """Where the package is installed: this machine (root "/"), or a Debian root entered with chroot."""

    root: Path

    def path(self, inside: str | Path) -> Path:
        """The host's path for a path inside the system."""
        return self.root / str(inside).lstrip("/")

    def argv(self, argv: Sequence[str]) -> list[str]:
        return list(argv) if self.root == Path("/") else ["chroot", str(self.root), *argv]

    def run(self, argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(argv), capture_output=True, text=True, env=clean_env(), timeout=timeout)

    def user_exists(self) -> bool:
        return self.run(["getent", "passwd", USER]).returncode == 0


@pytest.fixture(scope="module")
def deb() -> Iterator[Path]:
    out = Path(tempfile.mkdtemp(prefix="kahooks-deb-"))
    try:
        built = subprocess.run(["bash", str(CHECKOUT / "run"), "package", str(out)], capture_output=True, text=True,
                               timeout=480)
        assert built.returncode == 0, built.stderr[-3000:]
        assert "E: " not in built.stderr, built.stderr  # lintian's errors (--fail-on error also fails the build)
        path = Path(built.stdout.strip().splitlines()[-1])
        assert path.exists() and path.suffix == ".deb"
        yield path
    finally:
        shutil.rmtree(out, ignore_errors=True)


def snapshot() -> set[str]:
    found: set[str] = set()
    for top in WATCHED:
        if os.path.lexists(top):
            found.add(top)
        for root, directories, files in os.walk(top):
            found.update(os.path.join(root, name) for name in directories + files)
    return {path for path in found if not path.startswith(NOT_OURS)}


def keepalived_conf(work: Path) -> str:
    """Two instances: VI_OK tracks every check against something healthy, VI_BAD one that must fail."""
    checks = {
        "chk_process": "/usr/bin/ka-check-process keepalived",
        "chk_port": "/usr/bin/ka-check-port 127.0.0.1:8080",
        "chk_http": "/usr/bin/ka-check-http http://127.0.0.1:8080/ --contains healthy",
        "chk_exec": "/usr/bin/ka-check-exec -- /bin/true",
        "chk_heartbeat": f"/usr/bin/ka-check-heartbeat --max-age 3600 {work}/heartbeat",
        "chk_closed": "/usr/bin/ka-check-port 127.0.0.1:9",
    }
    text = "global_defs {\n    router_id pkg\n    enable_script_security\n    script_user keepalived_script\n}\n"
    for name, script in checks.items():
        text += f'vrrp_script {name} {{\n    script "{script}"\n    interval 1\n    timeout 2\n    fall 1\n    rise 1\n}}\n'
    for instance, router_id, tracked in (("VI_OK", 61, [name for name in checks if name != "chk_closed"]),
                                         ("VI_BAD", 62, ["chk_closed"])):
        tracks = "".join(f"        {name}\n" for name in tracked)
        text += (f"vrrp_instance {instance} {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {router_id}\n"
                 f"    priority 100\n    advert_int 1\n    virtual_ipaddress {{\n        192.0.2.{router_id}/24\n    }}\n"
                 f"    track_script {{\n{tracks}    }}\n    notify /usr/bin/ka-notify\n}}\n")
    return text


def test_build_install_run_under_keepalived_and_purge(deb: Path) -> None:
    if subprocess.run(["dpkg-query", "-W", "kahooks"], capture_output=True).returncode == 0:
        pytest.skip("a kahooks package is already installed here: this test would remove it")
    here = System(Path("/"))
    # The package creates keepalived_script when it is missing: let it (the other lab tests make it again).
    if here.user_exists() and subprocess.run(["pgrep", "-u", USER], capture_output=True).returncode != 0:
        subprocess.run(["userdel", USER], check=True)
    user_before = here.user_exists()
    # A spool an earlier root run left (the venv route, or ka-notify by hand as root): the package must
    # hand it to keepalived_script, or the ka-notify keepalived runs could not record a transition.
    if not os.path.exists("/var/spool/kahooks"):
        os.makedirs("/var/spool/kahooks/incoming", mode=0o750)
    before = snapshot()
    work = Path(tempfile.mkdtemp(prefix="kahooks-deb-work-"))
    work.chmod(0o755)
    try:
        installed = subprocess.run(["dpkg", "-i", str(deb)], capture_output=True, text=True, timeout=120)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert Path("/var/lib/kahooks/created-keepalived_script").exists() == (not user_before)
        check_what_was_installed(here)
        run_the_daemon(work)
        with Network("khldeb") as net:
            run_under_keepalived(here, net.add_node("lb", 11), work)
    finally:
        purged = subprocess.run(["dpkg", "--purge", "kahooks"], capture_output=True, text=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)
        user_after = here.user_exists()
        ensure_script_user()  # whatever happened above: the other lab tests run scripts as this user
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "not empty so not removed" not in purged.stdout + purged.stderr, purged.stdout + purged.stderr
    left = snapshot() - before
    assert not left, sorted(left)
    assert user_after == user_before, "purge removes keepalived_script only when the package made it"


def test_apt_install_on_a_fresh_debian_root(deb: Path) -> None:
    """The README's `apt install ./kahooks.deb` on a minimal Debian that never saw kahooks' libraries."""
    parent = Path(tempfile.mkdtemp(prefix="kahooks-fresh-"))
    try:
        made = subprocess.run(["bash", str(CHECKOUT / "run"), "fresh-root", str(parent / "root"), str(deb),
                               "systemd-sysv"], capture_output=True, text=True, timeout=480)
        assert made.returncode == 0, made.stderr[-3000:]
        fresh = System(parent / "root")
        assert not fresh.user_exists()
        for absent in ("python3-click", "python3-psutil", "keepalived"):
            assert fresh.run(["dpkg-query", "-W", "-f=${Status}", absent]).stdout != "install ok installed", absent
        work = fresh.path("/srv/kahooks-test")
        work.mkdir(mode=0o755)
        # A lab node: its network reaches nothing beyond the lab, so the install below is offline (`./run
        # fresh-root` downloaded what apt needs); its own mount namespace holds the root's /proc and /run.
        with Network("khlfresh") as net:
            node = net.add_node("lb", 12)
            node.run(["mount", "-t", "proc", "proc", str(fresh.path("/proc"))])
            node.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", str(fresh.path("/run"))])
            installed = node.run(fresh.argv(["apt-get", "install", "-y", f"/tmp/{deb.name}", "systemd-sysv"]), check=False,
                                 timeout=300, env=clean_env() | {"DEBIAN_FRONTEND": "noninteractive"})
            assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr
            # The Depends came from apt, keepalived from the Recommends; no pip anywhere.
            for package in ("python3-click", "python3-psutil", "python3-requests", "python3-jinja2",
                            "python3-watchdog", "python3-dnspython", "python3-prometheus-client", "keepalived"):
                status = fresh.run(["dpkg-query", "-W", "-f=${Status}", package]).stdout
                assert status == "install ok installed", (package, status)
            assert fresh.run(["python3", "-m", "pip", "--version"]).returncode != 0
            assert fresh.path("/var/lib/kahooks/created-keepalived_script").exists()
            check_what_was_installed(fresh)
            run_under_keepalived(fresh, node, Path("/srv/kahooks-test"))
        shutil.rmtree(work)
        run_the_unit_under_systemd(fresh)
        first_steps_with_a_packaged_example(fresh)
        purged = fresh.run(["dpkg", "--purge", "kahooks"])
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert not fresh.user_exists(), "the package made keepalived_script, so its purge removes it"
        left = leftovers(fresh.root)
        assert not left, left
    finally:
        assert parent.as_posix() not in Path("/proc/mounts").read_text(), "a mount inside the fresh root outlived it"
        shutil.rmtree(parent, ignore_errors=True)


UNIT_CONFIG = """\
spool_dir = "/var/spool/kahooks"
[serve]
notify_fifo = "/run/kahooks/notify.fifo"
metrics_listen = "127.0.0.1:9650"
[checks.svc]
run = "ka-check-process --pidfile /run/svc.pid"
interval = 30
[channels.out]
type = "exec"
command = ["/bin/sh", "-c", "echo $KAHOOKS_INSTANCE $KAHOOKS_STATE >> /var/spool/kahooks/delivered"]
[[rules]]
channels = ["out"]
"""
# Inside the booted root: keepalived's FIFO line written as keepalived writes it (held open until
# delivered), then what /metrics says of it and of the check.
FIFO_AND_METRICS = """\
import os, time, urllib.request
fd = os.open("/run/kahooks/notify.fifo", os.O_RDWR | os.O_NONBLOCK)
os.write(fd, b'INSTANCE "VI_1" MASTER 100\\n')
deadline = time.monotonic() + 15
def delivered():
    try:
        return "VI_1 MASTER" in open("/var/spool/kahooks/delivered").read()
    except FileNotFoundError:
        return False
while time.monotonic() < deadline and not delivered():
    time.sleep(0.05)
os.close(fd)
print(urllib.request.urlopen("http://127.0.0.1:9650/metrics", timeout=5).read().decode())
"""


def run_the_unit_under_systemd(system: System) -> None:
    """Boot the root with systemd (systemd-nspawn, no network) and start kahooks.service as packaged:
    inside its sandbox (ProtectSystem=strict, six capabilities) it hears a service die, writes the
    track file, reads the FIFO, delivers, serves /metrics, reloads and stops; the journal has each
    line once."""
    system.path("/etc/kahooks/kahooks.toml").write_text(UNIT_CONFIG)
    service = system.path("/usr/local/bin/svc")
    service.write_text("#!/bin/sh\necho $$ > /run/svc.pid\nexec sleep infinity\n")
    service.chmod(0o755)
    system.path("/etc/systemd/system/keepalived.service").symlink_to("/dev/null")  # no keepalived.conf here
    booted = subprocess.Popen(["systemd-nspawn", "-q", "-D", str(system.root), "-b", "--console=pipe",
                               "--private-network", "--register=no", "--keep-unit"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        import psutil

        init = wait_for(lambda: next((child.pid for child in psutil.Process(booted.pid).children()
                                      if child.name() == "systemd"), None) or booted.poll() is not None, 20,
                        "systemd to start in the root")
        assert booted.poll() is None, booted.stdout.read() if booted.stdout else ""

        def inside(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run(["nsenter", "-t", str(init), "-a", "-r", "-w", *argv], capture_output=True,
                                  text=True, env=clean_env(), timeout=60)

        # Until systemd's own socket is up, systemctl cannot even ask: ask again.
        try:
            wait_for(lambda: inside("systemctl", "is-system-running", "--wait").stdout.strip() in ("running", "degraded"),
                     60, "the root to finish booting", poll=0.2)
        except LabError:
            raise AssertionError(inside("systemctl", "--failed", "--no-pager")) from None
        track = Path(f"/proc/{init}/root/run/kahooks/track/svc")
        read = lambda: track.read_text() if track.exists() else None  # noqa: E731
        assert inside("systemd-run", "--unit=svc", "/usr/local/bin/svc").returncode == 0
        started = inside("systemctl", "start", "kahooks")
        assert started.returncode == 0, started
        try:
            wait_for(lambda: read() == "0\n", 15, "the healthy track file")
        except LabError:
            raise AssertionError(inside("journalctl", "-u", "kahooks", "--no-pager").stdout) from None
        assert inside("systemctl", "kill", "svc").returncode == 0
        wait_for(lambda: read() == "1\n", 5, "the service's death in the track file")
        metrics = inside("python3", "-c", FIFO_AND_METRICS)
        assert metrics.returncode == 0, metrics
        # Last: what keepalived's ka-notify runs recorded earlier, still waiting in the spool, went first.
        delivered = Path(f"/proc/{init}/root/var/spool/kahooks/delivered").read_text().splitlines()
        assert delivered[-1:] == ["VI_1 MASTER"], delivered
        assert 'kahooks_vrrp_state{iname="VI_1",state="MASTER"} 1.0' in metrics.stdout, metrics.stdout
        assert 'kahooks_check_up{check="svc"} 0.0' in metrics.stdout, metrics.stdout
        reloaded = inside("systemctl", "reload", "kahooks")
        assert reloaded.returncode == 0, reloaded.stderr + inside("journalctl", "-u", "kahooks", "--no-pager").stdout
        wait_for(lambda: "reloaded /etc/kahooks/kahooks.toml" in inside("journalctl", "-b", "-u", "kahooks",
                                                                        "-o", "cat").stdout, 10, "the reload")
        assert inside("systemctl", "stop", "kahooks").returncode == 0
        assert inside("systemctl", "show", "-p", "Result", "--value", "kahooks").stdout.strip() == "success"
        journal = inside("journalctl", "-b", "-u", "kahooks", "-o", "cat").stdout
        assert journal.count("serving 1 check") == 1, journal  # syslog and stderr would both reach it
        assert "Traceback" not in journal, journal
    finally:
        booted.terminate()  # systemd-nspawn powers the root off
        try:
            booted.wait(60)
        except subprocess.TimeoutExpired:
            booted.kill()
            booted.wait()
    system.path("/etc/systemd/system/keepalived.service").unlink()


def first_steps_with_a_packaged_example(system: System) -> None:
    """A new user's first steps: a packaged keepalived.conf example, then init, validate and doctor.

    The example must name the programs where the package put them, and the doctor must be able to
    ask keepalived -t here (a chroot, where unshare cannot remount /proc)."""
    example = "/usr/share/kahooks/contrib/keepalived/haproxy-pair.conf"
    assert system.run(["cp", example, "/etc/keepalived/keepalived.conf"]).returncode == 0
    for argv in (["kahooks", "init", "--force"], ["kahooks", "validate"]):
        outcome = system.run(argv)
        assert outcome.returncode == 0 and not outcome.stderr, outcome
    doctor = system.run(["kahooks", "doctor", "--json"])
    assert doctor.returncode == 0, doctor  # no errors
    findings = json.loads(doctor.stdout)["findings"]
    assert not [finding for finding in findings if finding["severity"] == "error"], findings
    # keepalived -t ran: it says that this root has no eth1 (a warning: this is not the node).
    assert any(finding["code"] == "keepalived-t" and "eth1" in finding["message"] for finding in findings), findings


def leftovers(root: Path) -> list[str]:
    """Anything in a purged root that names kahooks or its programs, but dpkg's and apt's own records."""
    found = []
    for directory, directories, files in os.walk(root):
        inside = "/" + os.path.relpath(directory, root)
        if inside.startswith(("/var/lib/dpkg", "/var/cache/apt", "/proc", "/tmp")):
            directories.clear()
            continue
        found += [os.path.join(inside, name) for name in directories + files
                  if "kahooks" in name or name.startswith(("ka-check-", "ka-notify"))]
    return sorted(found)


def check_what_was_installed(system: System) -> None:
    """The programs on the system Python, the conffile valid, the spool, man pages, completion, the unit."""
    assert system.user_exists()
    for program in PROGRAMS:
        path = system.path("/usr/bin") / program
        assert path.read_text().splitlines()[0] in ("#! /usr/bin/python3", "#!/usr/bin/python3"), \
            (program, path.read_text()[:60])
        assert system.path(f"/usr/share/man/man1/{program}.1.gz").exists(), program
        assert system.path(f"/usr/share/bash-completion/completions/{program}").exists(), program
        version = system.run([f"/usr/bin/{program}", "--version"])
        assert version.returncode == 0 and "0.1.0" in version.stdout, version
    validated = system.run(["/usr/bin/kahooks", "validate"])
    assert validated.returncode == 0 and validated.stdout.startswith("/etc/kahooks/kahooks.toml: OK"), validated
    assert system.path("/etc/kahooks/conf.d").is_dir()
    conffiles = system.run(["dpkg-query", "--showformat=${Conffiles}", "-W", "kahooks"]).stdout
    for conffile in ("/etc/kahooks/kahooks.toml", "/etc/logrotate.d/kahooks", "/etc/rsyslog.d/30-kahooks.conf"):
        assert conffile in conffiles, conffiles
    spool = system.run(["stat", "-c", "%U %a", "/var/spool/kahooks"]).stdout.split()
    assert spool == [USER, "750"], spool
    owners = system.run(["find", "/var/spool/kahooks", "!", "-user", USER]).stdout
    assert not owners, f"not keepalived_script's in the spool: {owners}"
    unit = system.path("/lib/systemd/system/kahooks.service").read_text()
    assert "ExecStart=/usr/bin/kahooks serve" in unit and "ProtectSystem=strict" in unit
    if system.root == Path("/") and shutil.which("systemd-analyze"):
        verified = subprocess.run(["systemd-analyze", "verify", "/lib/systemd/system/kahooks.service"],
                                  capture_output=True, text=True)
        problems = [line for line in verified.stderr.splitlines() if "kahooks.service" in line]
        assert not problems, verified.stderr
        # The sandbox, scored by systemd itself: a plain root service scores 9.6 ("UNSAFE"); this must stay
        # under 5.0 (the threshold is in tenths).
        exposure = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=50",
                                   "/lib/systemd/system/kahooks.service"], capture_output=True, text=True)
        assert exposure.returncode == 0, exposure.stdout[-600:] + exposure.stderr


def run_the_daemon(work: Path) -> None:
    """`kahooks serve` on Debian's libraries (watchdog 2.2, prometheus_client 0.16): a service's death
    reaches its track file, a FIFO line its channel and /metrics."""
    import urllib.request

    from kahooks.lab.netns import free_port

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


def run_under_keepalived(system: System, node: Node, work: Path) -> None:
    """Real keepalived, script security on: every check runs as keepalived_script and does its job.

    `work` is a folder inside `system`; `node` is the lab node keepalived runs in."""
    host_work = system.path(work)
    (host_work / "www").mkdir()
    (host_work / "www" / "index.html").write_text("healthy\n")
    (host_work / "heartbeat").write_text("")
    (host_work / "keepalived.conf").write_text(keepalived_conf(work))
    node.popen(system.argv(["/usr/bin/python3", "-m", "http.server", "-b", "127.0.0.1", "-d", str(work / "www"),
                            "8080"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    wait_for(lambda: node.run(system.argv(["/usr/bin/ka-check-port", "127.0.0.1:8080"]), check=False,
                              env=clean_env()).returncode == 0, 10, "the backend")
    tested = node.run(system.argv(["keepalived", "-t", "-f", str(work / "keepalived.conf")]), check=False,
                      env=clean_env())
    assert tested.returncode == 0, tested.stdout + tested.stderr
    log = open(host_work / "keepalived.log", "wb")
    node.popen(system.argv(["keepalived", "-n", "-l", "-D", "-f", str(work / "keepalived.conf"),
                            "-p", "/run/keepalived.pid", "-r", "/run/vrrp.pid"]),
               stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    text = lambda: (host_work / "keepalived.log").read_text(errors="replace")  # noqa: E731
    wait_for(lambda: "(VI_OK) Entering MASTER STATE" in text(), 30, "VI_OK to become MASTER")
    output = text()
    # VI_BAD started with its check failing: keepalived keeps it in FAULT (it logs no transition for that).
    assert "(VI_BAD) Entering MASTER STATE" not in output, output
    addresses = node.addresses()
    assert "192.0.2.61" in addresses and "192.0.2.62" not in addresses, addresses
    for name in ("chk_process", "chk_port", "chk_http", "chk_exec", "chk_heartbeat"):
        assert f"VRRP_Script({name}) succeeded" in output, (name, output)
    assert "VRRP_Script(chk_closed) failed" in output, output
    for warning in ("Unsafe permissions", "Disabling track script", "cannot be executed"):
        assert warning not in output, output
    # ka-notify ran as keepalived_script and recorded into the package's spool.
    uid = int(system.run(["id", "-u", USER]).stdout)
    spool = system.path("/var/spool/kahooks")
    wait_for(lambda: any(os.stat(os.path.join(root, name)).st_uid == uid
                         for root, _, names in os.walk(spool) for name in names), 10,
             "ka-notify, run by keepalived, to write its spool")
    queue = system.run(["/usr/bin/ka-notify", "queue"])
    assert queue.returncode in (0, 1) and "Traceback" not in queue.stderr, queue
    # Leftover delivery workers (they idle out after a minute) would hold the spool during the purge.
    node.stop()
    subprocess.run(["pkill", "-u", str(uid), "-f", "ka-notify worker"], check=False)
    time.sleep(0.2)
