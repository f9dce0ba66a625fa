"""Start-up is part of the product: a check imports only what its probe needs.

Each entry point runs once in a fresh interpreter against a real target, then
reports every module it loaded. The guard: for every kind the checks folder
declares, what it loads must be within a bare interpreter, the runner's
`check_cli.STARTUP_IMPORTS` and the check's own `STARTUP_IMPORTS` (a standard
library name there brings what it imports itself, as measured in a fresh
interpreter of this very Python). A new import fails it, a slow machine never does.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading

import pytest

from kahooks.checks import kinds, load_check_class
from kahooks.hooks import check_cli
from tests.support.startup import allowed_modules

# Never on any check's path: each costs 10-100 ms of start-up.
HEAVY = {"requests", "urllib3", "jinja2", "watchdog", "click", "psutil", "dns", "argparse", "typing",
         "dataclasses", "inspect", "subprocess", "asyncio", "email.mime", "logging", "tomllib"}
# Only where the probe uses them.
NETWORK = {"socket", "ssl", "http.client", "threading"}

PROBE = """
import sys
sys.argv = {argv!r}
from kahooks.hooks import check_cli
try:
    check_cli.main()
except SystemExit as exit:
    code = exit.code
loaded = sorted(sys.modules)  # before json, which loads re and enum itself
import json
print(json.dumps({{"code": code, "modules": loaded}}))
"""


def loaded_modules(kind: str, *argv: str) -> tuple[int, set[str]]:
    script = PROBE.format(argv=[f"/usr/local/bin/ka-check-{kind}", *argv, "--no-syslog"])
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def top_level(modules: set[str]) -> set[str]:
    return modules | {name.split(".")[0] for name in modules}


@pytest.fixture(scope="module")
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def test_process_check_loads_no_network_or_heavy_modules() -> None:
    code, modules = loaded_modules("process", "init-or-anything")
    assert code in (0, 1)
    # enum (pulled in by `signal`) alone costs a fifth of a bare interpreter's start-up.
    forbidden = HEAVY | NETWORK | {"enum", "signal", "re"}
    assert not forbidden & top_level(modules) - {"http"}, forbidden & modules


def test_port_check_loads_socket_but_not_tls(listener) -> None:
    code, modules = loaded_modules("port", f"127.0.0.1:{listener.getsockname()[1]}")
    assert code == 0
    assert "socket" in modules
    assert not (HEAVY | {"ssl", "http.client", "threading"}) & modules


def test_http_check_loads_http_client_but_not_requests(listener) -> None:
    code, modules = loaded_modules("http", f"http://127.0.0.1:{listener.getsockname()[1]}/", "--timeout",
                                   "0.2")
    assert code == 1  # the listener never answers: a timeout, but the path is the same
    assert "http.client" in modules
    assert not HEAVY & top_level(modules) - {"email"}, HEAVY & modules


def test_exec_check_loads_no_subprocess_module() -> None:
    code, modules = loaded_modules("exec", "--", "true")
    assert code == 0
    assert not (HEAVY | NETWORK) & modules, (HEAVY | NETWORK) & modules


def test_heartbeat_guard_loads_nothing_but_the_core(tmp_path) -> None:
    beat = tmp_path / "heartbeat"
    beat.write_text("1 0\n")
    code, modules = loaded_modules("heartbeat", str(beat))
    assert code == 0
    assert not (HEAVY | NETWORK | {"enum", "re"}) & top_level(modules) - {"http"}, (HEAVY | NETWORK) & modules


def _first_program_example(kind: str) -> list[str]:
    import shlex

    from kahooks.checks import PROGRAM_PREFIX, load_check_class

    lines = [line for line, _ in load_check_class(kind).EXAMPLES if line.startswith(PROGRAM_PREFIX)]
    assert lines, f"{kind}: no example runs {PROGRAM_PREFIX}{kind}"
    return shlex.split(lines[0])[1:]


def _kinds() -> list[str]:
    from kahooks.checks import kinds

    return kinds()


@pytest.mark.parametrize("kind", _kinds())
def test_every_kind_starts_without_heavy_modules(kind: str) -> None:
    """The budget holds for a kind nobody wrote a test above for: its first example, run as keepalived would."""
    code, modules = loaded_modules(kind, *_first_program_example(kind))
    assert code in (0, 1)
    assert not HEAVY & modules, HEAVY & modules
@pytest.fixture(scope="module")
def web():
    """A real HTTP server on loopback that answers 200."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def healthy_samples(tmp_path, listener, web) -> dict[str, list[str]]:
    """A healthy run of each kind whose examples need a target made here (a listener, a server, a file)."""
    beat = tmp_path / "heartbeat"
    beat.write_text("1\n")
    with open("/proc/self/comm") as handle:
        own_name = handle.read().strip()  # this test process, alive: the process check finds it
    return {
        "process": [own_name],
        "port": [f"127.0.0.1:{listener.getsockname()[1]}"],
        "http": [web],
        "exec": ["--", "true"],
        "heartbeat": [str(beat)],
    }


@pytest.mark.parametrize("kind", kinds())
def test_startup_loads_only_the_allow_list(kind: str, healthy_samples) -> None:
    # A kind without a sample here runs its first example, healthy or not (a failed probe loads what a
    # healthy one does here: the same modules for the heartbeat's either way), so a new check needs no line in
    # this file; a sample, where the example's target is made here, guards the healthy path itself.
    sample = healthy_samples.get(kind)
    argv = sample or _first_program_example(kind)
    code, modules = loaded_modules(kind, *argv)
    assert code == 0 or (sample is None and code == 1), f"ka-check-{kind} {argv} exited {code}"
    allowed = check_cli.STARTUP_IMPORTS | load_check_class(kind).STARTUP_IMPORTS | {f"kahooks.checks.{kind}"}
    within = allowed_modules(allowed)
    new = sorted(modules - within)
    assert not new, (f"ka-check-{kind} now loads {new} at start-up: import it where it is used, or add it to "
                     f"STARTUP_IMPORTS (checks/{kind}.py, or hooks/check_cli.py) if the probe cannot do without")
