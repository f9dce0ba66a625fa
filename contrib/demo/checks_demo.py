"""The kahooks check demo: each ka-check-* against a live local service, then against it broken.

Run with `./run demo`. Everything it starts is on loopback and is stopped at
the end, whatever happens. The keepalived lab (contrib/lab) replaces this with a
real failover once it exists.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ENV = {**os.environ, "KAHOOKS_SYSLOG_SOCKET": "/nonexistent"}  # keep the demo out of this machine's logs


def check(program: str, *args: str) -> None:
    started = time.monotonic()
    out = subprocess.run([str(BIN / program), *args], capture_output=True, text=True, env=ENV)
    took = (time.monotonic() - started) * 1000
    shown = " ".join(args)
    print(f"  $ {program} {shown}\n    exit {out.returncode} in {took:4.0f} ms  {out.stdout.strip()}")


class Health(http.server.BaseHTTPRequestHandler):
    healthy = True

    def do_GET(self) -> None:
        status, body = (200, b"OK\n") if Health.healthy else (503, b"draining\n")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kahooks-demo-"))
    service_path = workdir / "kh-demo-proxy"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", service_path)
    service = subprocess.Popen([str(service_path), "600"])
    pidfile = workdir / "kh-demo-proxy.pid"
    pidfile.write_text(f"{service.pid}\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/health"
    maintenance = workdir / "maintenance"
    try:
        print("kahooks checks, as keepalived runs them: one line of output, exit 0 (healthy) or 1.\n")
        print("1. Everything healthy")
        check("ka-check-process", "kh-demo-proxy", "--pidfile", str(pidfile))
        check("ka-check-port", f"127.0.0.1:{port}")
        check("ka-check-port", f"127.0.0.1:{port}", "--listening")
        check("ka-check-http", url, "--status", "200", "--contains", "OK")
        check("ka-check-exec", "--timeout", "2", "--", "sh", "-c", "echo config OK")

        print("\n2. The proxy is killed, the web service starts answering 503, a config check hangs")
        service.kill()
        service.wait()
        Health.healthy = False
        check("ka-check-process", "kh-demo-proxy", "--pidfile", str(pidfile))
        check("ka-check-http", url, "--status", "200")
        check("ka-check-exec", "--timeout", "0.3", "--", "sleep", "30")

        print("\n3. The web service stops listening")
        server.shutdown()
        server.server_close()
        check("ka-check-port", f"127.0.0.1:{port}")
        check("ka-check-port", f"127.0.0.1:{port}", "--listening")
        check("ka-check-http", url, "--timeout", "0.5")

        print("\n4. Draining a node before a deploy: the maintenance file fails every check")
        maintenance.touch()
        check("ka-check-exec", "--maintenance-file", str(maintenance), "--", "true")

        print("\n5. Standalone monitoring (--nagios): exit 0 OK, 2 CRITICAL, 3 UNKNOWN, with perfdata")
        check("ka-check-exec", "--nagios", "--", "true")
        check("ka-check-process", "--nagios", "--min-count", "none", "haproxy")
        return 0
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGKILL)
            service.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
