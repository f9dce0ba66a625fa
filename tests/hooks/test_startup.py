"""Start-up is part of the product: a check imports only what its probe needs.

Each entry point runs once in a fresh interpreter against a real target, then
reports every module it loaded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

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
