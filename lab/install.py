"""Install kahooks the documented way for the lab: a root-owned venv keepalived may run scripts from.

keepalived with `enable_script_security` runs checks as `keepalived_script`, and
refuses a script whose path has a component that is not root-owned or is
group/world-writable. So the lab installs this checkout into /opt/kahooks-lab
with an interpreter that user can execute (a Python under /root cannot be), and
creates the `keepalived_script` system user if it is missing. Reinstalls only
when the checkout changed.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kahooks.lab.netns import LabError

PREFIX = Path("/opt/kahooks-lab")
SCRIPT_USER = "keepalived_script"


def find_checkout(start: Path | None = None) -> Path:
    """The kahooks source tree at or above `start` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        project = folder / "pyproject.toml"
        if project.exists() and 'name = "kahooks"' in project.read_text() and (folder / "lab").is_dir():
            return folder
    raise LabError(f"no kahooks checkout at or above {here}: run from the source tree (the lab installs it)")


def ensure_script_user() -> None:
    try:
        pwd.getpwnam(SCRIPT_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", SCRIPT_USER], check=True)


def runs_as_script_user(python: str) -> bool:
    entry = pwd.getpwnam(SCRIPT_USER)
    result = subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
                             python, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                            capture_output=True, cwd="/")
    return result.returncode == 0


def interpreter() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3") or "", sys.executable):
        if candidate and os.path.exists(candidate) and runs_as_script_user(candidate):
            return candidate
    raise LabError(f"no Python 3.11+ that {SCRIPT_USER} can execute (a Python under /root is not reachable); "
                   f"install Debian's python3 and python3-venv")


def package_folders(checkout: Path) -> list[str]:
    """The folders the package is built from: the core and every family pyproject's package-dir joins."""
    import tomllib

    package_dir = tomllib.loads((checkout / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return ["kahooks", *sorted(package_dir.values())]


def source_digest(checkout: Path) -> str:
    """A digest of what gets installed, so an unchanged checkout is not reinstalled."""
    digest = hashlib.sha256()
    for folder in package_folders(checkout):
        for path in sorted((checkout / folder).rglob("*.py")):
            digest.update(str(path.relative_to(checkout)).encode())
            digest.update(path.read_bytes())
    digest.update((checkout / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def ensure_installed(checkout: Path, prefix: Path = PREFIX) -> Path:
    """The lab's bin directory, with ka-check-*, ka-notify and kahooks from this checkout.

    One installer at a time: the suite's parallel workers each ask, and a second `useradd` or a wheel
    built into the same build/ folder at once would fail."""
    import fcntl
    import time

    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f"{prefix.name}.lock", "a") as lock:
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"{prefix} stayed locked by another installer for 10 minutes") from None
                time.sleep(0.1)
        return _install(checkout, prefix)


def _install(checkout: Path, prefix: Path) -> Path:
    ensure_script_user()
    stamp = prefix / "installed-from"
    wanted = source_digest(checkout)
    if stamp.exists() and stamp.read_text() == wanted and (prefix / "bin" / "ka-notify").exists():
        return prefix / "bin"
    python = interpreter()
    if not (prefix / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(prefix)], check=True)
    pip = [str(prefix / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory() as wheels:
        # Build the wheel with the caller's (dev) environment: Debian's venv has an old setuptools.
        # Without a stale build/ tree: setuptools would ship modules since renamed or removed.
        shutil.rmtree(checkout / "build", ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-w", wheels, str(checkout)], check=True,
                       stdout=subprocess.DEVNULL)
        wheel = next(Path(wheels).glob("kahooks-*.whl"))
        subprocess.run([*pip, "--force-reinstall", "--no-deps", str(wheel)], check=True)
        subprocess.run([*pip, str(wheel)], check=True)  # dependencies, when missing
    os.chmod(prefix, 0o755)
    stamp.write_text(wanted)
    return prefix / "bin"
