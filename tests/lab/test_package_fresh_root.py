"""The Debian package on a fresh Debian 12 root, as the README tells a new user: `./run fresh-root`
makes a minimal system (debootstrap: none of kahooks' libraries, no keepalived_script, no venv, no
pip); `apt install ./kahooks.deb` there brings the Depends and keepalived; real keepalived runs every
check from it; the root is booted with systemd to run the packaged unit; a packaged example goes
through init, validate and doctor; dpkg --purge leaves no file naming kahooks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import pytest

from kahooks.lab.netns import LabError, Network, wait_for
from tests.lab.booted import VIP, Booted, prepare_daemon_boot, write_standin
from tests.lab.packaging import (
    CHECKOUT,
    IN_ROOT,
    OTHER_RELEASE,
    System,
    check_what_was_installed,
    clean_env,
    run_under_keepalived,
)

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs a Debian system"),
              pytest.mark.skipif(bool(IN_ROOT), reason="inside `./run in-root` (offline, a chroot): a fresh root "
                                 "needs the mirror and systemd-nspawn; the host's run installs there on each release"),
              pytest.mark.timeout(900)]


@pytest.mark.parametrize("release", [None, OTHER_RELEASE], ids=["this-release", OTHER_RELEASE])
def test_apt_install_on_a_fresh_debian_root(release: str | None, request: pytest.FixtureRequest) -> None:
    """The README's `apt install ./kahooks.deb` on a minimal Debian that never saw kahooks' libraries:
    this machine's release with the package built here, and trixie with the package built on trixie."""
    deb: Path = request.getfixturevalue("other_release_deb" if release else "deb")
    parent = Path(tempfile.mkdtemp(prefix="kahooks-fresh-"))
    try:
        chosen = ["--release", release] if release else []
        made = subprocess.run(["bash", str(CHECKOUT / "run"), "fresh-root", *chosen, str(parent / "root"), str(deb),
                               "systemd-sysv"], capture_output=True, text=True, timeout=600)
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
        write_standin(fresh)
        run_the_unit_under_systemd(fresh)
        the_daemon_and_keepalived_from_boot(fresh)
        first_steps_with_a_packaged_example(fresh)
        purged = fresh.run(["dpkg", "--purge", "kahooks"])
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert not fresh.user_exists(), "the package made keepalived_script, so its purge removes it"
        left = leftovers(fresh.root)
        assert not left, left
    finally:
        assert parent.as_posix() not in Path("/proc/mounts").read_text(), "a mount inside the fresh root outlived it"
        shutil.rmtree(parent, ignore_errors=True)


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
command = ["/bin/sh", "-c", "nice -n 5 true 2>/var/spool/kahooks/nice-$KAHOOKS_STATE; \
echo $KAHOOKS_INSTANCE $KAHOOKS_STATE >> /var/spool/kahooks/delivered"]
[[rules]]
channels = ["out"]
"""
# The unit's own advice for a command that needs a call its filter refuses (nice: setpriority): a drop-in.
LOOSENED = "[Service]\nSystemCallFilter=setpriority\n"
# Inside the booted root: keepalived's FIFO line written as keepalived writes it (held open until
# delivered), then what /metrics says of it and of the check.
FIFO_AND_METRICS = """\
import os, time, urllib.request
fd = os.open("/run/kahooks/notify.fifo", os.O_RDWR | os.O_NONBLOCK)
os.write(fd, b'INSTANCE "VI_1" %s 100\\n' % STATE)
deadline = time.monotonic() + 15
def delivered():
    try:
        return "VI_1 " + STATE.decode() in open("/var/spool/kahooks/delivered").read()
    except FileNotFoundError:
        return False
while time.monotonic() < deadline and not delivered():
    time.sleep(0.05)
os.close(fd)
print(urllib.request.urlopen("http://127.0.0.1:9650/metrics", timeout=5).read().decode())
"""


def run_the_unit_under_systemd(system: System) -> None:
    """Boot the root with systemd (no network) and start kahooks.service as packaged: inside its
    sandbox (ProtectSystem=strict, eight capabilities, a system call filter) it hears a service die, writes the track file,
    reads the FIFO, delivers, serves /metrics, reloads and stops; the journal has each line once."""
    system.path("/etc/kahooks/kahooks.toml").write_text(UNIT_CONFIG)
    system.path("/etc/systemd/system/keepalived.service").symlink_to("/dev/null")  # no keepalived.conf yet
    try:
        with Booted(system.root) as booted:
            read = lambda: booted.text("/run/kahooks/track/svc")  # noqa: E731
            assert booted.run("systemd-run", "--unit=svc", "/usr/local/bin/standin", "/run/svc.pid").returncode == 0
            started = booted.run("systemctl", "start", "kahooks")
            assert started.returncode == 0, started
            try:
                wait_for(lambda: read() == "0\n", 15, "the healthy track file")
            except LabError:
                raise AssertionError(booted.journal("kahooks")) from None
            assert booted.run("systemctl", "kill", "svc").returncode == 0
            wait_for(lambda: read() == "1\n", 5, "the service's death in the track file")
            metrics = booted.run("python3", "-c", "STATE = b'MASTER'\n" + FIFO_AND_METRICS)
            assert metrics.returncode == 0, metrics
            # Last: what keepalived's ka-notify runs recorded earlier, still waiting in the spool, went first.
            delivered = (booted.text("/var/spool/kahooks/delivered") or "").splitlines()
            assert delivered[-1:] == ["VI_1 MASTER"], delivered
            assert 'kahooks_vrrp_state{iname="VI_1",state="MASTER"} 1.0' in metrics.stdout, metrics.stdout
            assert 'kahooks_check_up{check="svc"} 0.0' in metrics.stdout, metrics.stdout
            reloaded = booted.run("systemctl", "reload", "kahooks")
            assert reloaded.returncode == 0, reloaded.stderr + booted.journal("kahooks")
            wait_for(lambda: "reloaded /etc/kahooks/kahooks.toml" in booted.journal("kahooks"), 10, "the reload")
            assert booted.run("systemctl", "stop", "kahooks").returncode == 0
            assert booted.run("systemctl", "show", "-p", "Result", "--value", "kahooks").stdout.strip() == "success"
            journal = booted.journal("kahooks")
            assert journal.count("serving 1 check") == 1, journal  # syslog and stderr would both reach it
            assert "Traceback" not in journal, journal
            # A refused call fails with EPERM (the command goes on), and the unit's drop-in allows it.
            assert "Operation not permitted" in (booted.text("/var/spool/kahooks/nice-MASTER") or ""), journal
            booted.path("/etc/systemd/system/kahooks.service.d").mkdir()
            booted.path("/etc/systemd/system/kahooks.service.d/loosen.conf").write_text(LOOSENED)
            for argv in (["systemctl", "daemon-reload"], ["systemctl", "start", "kahooks"],
                         ["python3", "-c", "STATE = b'BACKUP'\n" + FIFO_AND_METRICS], ["systemctl", "stop", "kahooks"]):
                done = booted.run(*argv)
                assert done.returncode == 0, (argv, done, booted.journal("kahooks"))
            assert booted.text("/var/spool/kahooks/nice-BACKUP") == "", booted.journal("kahooks")
    finally:
        shutil.rmtree(system.path("/etc/systemd/system/kahooks.service.d"), ignore_errors=True)
        system.path("/etc/systemd/system/keepalived.service").unlink()


def the_daemon_and_keepalived_from_boot(system: System) -> None:
    """The packaged haproxy-pair-daemon.conf as it ships, with kahooks.service and keepalived.service
    enabled and the root booted in a lab node's network (eth0, and eth1 to track): kahooks serve is up
    before keepalived (its FIFO, its track file), a stand-in haproxy decides who holds the VIP, a
    daemon killed is restarted by systemd, and a daemon stopped faults the node through the heartbeat guard."""
    prepare_daemon_boot(system)
    prepare_sandbox_work(system)
    try:
        with Network("khlboot") as net:
            node = net.add_node("lb", 14, own_pids=False)
            net.add_link("lb")
            with Booted(system.root, network_namespace=node.namespace) as booted:
                holds = lambda: VIP in node.addresses()  # noqa: E731
                for unit in ("kahooks", "keepalived"):
                    assert booted.run("systemctl", "is-active", unit).stdout.strip() == "active", booted.journal(unit)
                # Ready before keepalived starts (Type=notify): keepalived found the FIFO and the track
                # file with the daemon's first verdict (with Type=exec it dropped the track_file).
                started = booted.journal("keepalived")
                for complaint in ("Unable to open '/run/kahooks/track", "does not exist - removing"):
                    assert complaint not in started, started
                assert booted.text("/run/kahooks/track/haproxy") == "1\n"  # nothing watched runs yet
                assert booted.path("/run/kahooks/notify.fifo").stat().st_uid == 0  # ours, not keepalived's
                assert not holds()
                start_sandbox_peers(booted)
                assert booted.run("systemd-run", "--unit=haproxy", "/usr/local/bin/standin",
                                  "/run/haproxy.pid").returncode == 0
                try:
                    wait_for(holds, 20, "the VIP once haproxy runs")
                except LabError:
                    raise AssertionError(booted.journal("kahooks") + booted.journal("keepalived")) from None
                delivered = lambda: (booted.text("/var/spool/kahooks/boot-delivered") or "").splitlines()  # noqa: E731
                try:
                    wait_for(lambda: "MASTER" in delivered(), 15, "keepalived's MASTER through the FIFO, delivered")
                except LabError:
                    raise AssertionError(booted.journal("kahooks") + booted.journal("keepalived")) from None
                # A lone node's start (FAULT until haproxy runs, BACKUP, then MASTER with its own
                # gratuitous ARP) is no wire finding: the channel got no alert.
                assert "ALERT" not in delivered(), booted.journal("kahooks")
                # What operators' commands and notifiers do worked inside the unit's sandbox.
                check_sandbox_work(booted, lambda: SANDBOX_VIP in node.addresses())
                # The wire observer listens on the VRRP interface inside the unit's sandbox (AF_PACKET, CAP_NET_RAW).
                wire = lambda: (json.loads(booted.text("/run/kahooks/status.json") or "{}").get("wire")  # noqa: E731
                                or {}).get("interfaces", {})
                try:
                    wait_for(lambda: wire().get("eth0") == "listening", 10, "the wire observer listening on eth0")
                except LabError:
                    raise AssertionError(f"{wire()}\n{booted.journal('kahooks')}") from None
                old = booted.run("systemctl", "show", "-p", "MainPID", "--value", "kahooks").stdout.strip()
                assert booted.run("systemctl", "kill", "-s", "KILL", "kahooks").returncode == 0
                wait_for(lambda: booted.run("systemctl", "show", "-p", "MainPID", "--value", "kahooks").stdout.strip()
                         not in ("0", old), 15, "systemd to restart the killed daemon")
                wait_for(holds, 20, "the VIP held with the restarted daemon")
                assert booted.run("systemctl", "stop", "kahooks").returncode == 0
                wait_for(lambda: not holds(), 15, "the heartbeat guard to fault the node")
                assert "Entering FAULT STATE" in booted.journal("keepalived")
                assert booted.run("systemctl", "start", "kahooks").returncode == 0
                wait_for(holds, 20, "the VIP back with the daemon")
    finally:
        system.run(["systemctl", "disable", "kahooks", "keepalived"])
        system.path("/etc/kahooks/conf.d/50-sandbox.toml").unlink(missing_ok=True)


# What operators' commands do, run by the daemon inside the unit's sandbox on the node's first MASTER
# (once: a later MASTER finds the record): a shell, `ip address` on a VIP in the node's network, a
# process check of another user's process, syslog's socket (PrivateDevices keeps /dev/log), the system
# call filter on the commands (a refused call, setpriority, is EPERM: nice says so and carries on), a
# signal to another user's process (found through systemctl), apprise's memory cap (setrlimit); each
# step's outcome recorded in the spool. A webhook over TCP beside it.
SANDBOX_VIP = "192.0.2.123"
SANDBOX_SCRIPT = f"""\
record=/var/spool/kahooks/sandbox-steps
[ -e $record ] && exit 0
step() {{ if "$@" >>$record.out 2>&1; then echo "ok: $*"; else echo "FAILED ($?): $*"; fi >>$record.new; }}
step ip address add {SANDBOX_VIP}/32 dev eth0
step sh -c 'ip -o address show dev eth0 | grep -F " {SANDBOX_VIP}/32 "'
step ip address del {SANDBOX_VIP}/32 dev eth0
step ka-check-process --user nobody sleep
step grep -Eq '^Seccomp:[[:space:]]+2$' /proc/self/status
step test -S /dev/log
step sh -c 'case $(nice -n 5 echo carried on 2>&1) in *"Operation not permitted"*"carried on") ;; *) exit 1;; esac'
step kill -TERM "$(systemctl show -p MainPID --value other)"
step python3 -c 'import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 32, 1 << 32))'
mv $record.new $record
"""
SANDBOX_STEPS = 9
SANDBOX_CONFIG = f"""\
[channels.sandbox]
type = "exec"
command = ["/bin/sh", "-c", {json.dumps(SANDBOX_SCRIPT)}]
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:8099/hook"
[[rules]]
states = ["MASTER"]
channels = ["sandbox", "hook"]
"""
# A webhook's receiver in the booted root (outside the unit): each body appended to /run/hook-received.
RECEIVER = """\
#!/usr/bin/python3
import http.server
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open("/run/hook-received", "ab") as received:
            received.write(body + b"\\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
server = http.server.HTTPServer(("127.0.0.1", 8099), Receiver)
open("/run/hook-ready", "w").close()
server.serve_forever()
"""


def prepare_sandbox_work(system: System) -> None:
    """SANDBOX_CONFIG as a drop-in beside the daemon's configuration, and the webhook's receiver."""
    system.path("/etc/kahooks/conf.d/50-sandbox.toml").write_text(SANDBOX_CONFIG)
    receiver = system.path("/usr/local/bin/receiver")
    receiver.write_text(RECEIVER)
    receiver.chmod(0o755)


def start_sandbox_peers(booted: Booted) -> None:
    """The webhook's receiver, and another user's process for the sandboxed command to check and signal."""
    for argv in (["--unit=receiver", "/usr/local/bin/receiver"],
                 ["--unit=other", "--uid=nobody", "/bin/sleep", "infinity"]):
        started = booted.run("systemd-run", *argv)
        assert started.returncode == 0, started
    wait_for(lambda: booted.text("/run/hook-ready") is not None, 15, "the webhook's receiver")


def check_sandbox_work(booted: Booted, holds_sandbox_vip: Callable[[], bool]) -> None:
    """Every step of SANDBOX_SCRIPT worked inside the sandbox, and the webhook reached its receiver."""
    journals = lambda: booted.journal("kahooks") + booted.journal("receiver")  # noqa: E731
    try:
        wait_for(lambda: booted.text("/var/spool/kahooks/sandbox-steps") is not None, 15, "the sandboxed command")
        wait_for(lambda: "MASTER" in (booted.text("/run/hook-received") or ""), 15, "the webhook's POST")
    except LabError:
        raise AssertionError(journals()) from None
    steps = (booted.text("/var/spool/kahooks/sandbox-steps") or "").splitlines()
    output = booted.text("/var/spool/kahooks/sandbox-steps.out")
    assert len(steps) == SANDBOX_STEPS and all(step.startswith("ok: ") for step in steps), (steps, output)
    assert not holds_sandbox_vip()  # added, seen, and deleted again
    # Signalled: the other user's sleep is gone (SIGTERM, which systemd counts as a clean end).
    wait_for(lambda: booted.run("systemctl", "is-active", "other").stdout.strip() != "active", 10,
             "another user's process to end on the sandboxed command's signal")


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
