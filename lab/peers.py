"""What a lab's notifications go to, run inside the hub namespace as one process.

`python -m kahooks.lab.peers DIR ADDRESS VIP DNSPORT` serves SMTP (aiosmtpd, port 2525) and
Slack's webhook contract (port 8081) on ADDRESS, and watches from the hub, every 20 ms: who
answers HTTP on the VIP, and which node holds the VIP's DNS record (BIND on DNSPORT).
Everything it sees goes to DIR/seen.jsonl as {"t": epoch, "kind": ..., "what": ...}, so a
demo or a test can build a timeline. It stops on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kahooks.system.signals import set_on_signals

SMTP_PORT = 2525
SLACK_PORT = 8081
SLACK_PATH = "/services/T0LAB/B0LAB/lab"
POLL = 0.02


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def write(self, kind: str, what: str, **extra: object) -> None:
        line = json.dumps({"t": time.time(), "kind": kind, "what": what, **extra})
        with self.lock, open(self.path, "a") as handle:
            handle.write(line + "\n")


def read_journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def who_answers(vip: str) -> str:
    try:
        with urllib.request.urlopen(f"http://{vip}/", timeout=0.2) as response:
            return response.read().decode().strip() or "?"
    except Exception:
        return ""


def dns_holder(address: str, port: int, vip: str) -> str:
    import dns.message
    import dns.query

    name = f"{vip.replace('.', '-')}._kahooks.www.example.test."
    try:
        response = dns.query.tcp(dns.message.make_query(name, "TXT"), address, port=port, timeout=0.5)
    except Exception:
        return "?"
    values = [rdata.to_text().strip('"') for rrset in response.answer for rdata in rrset]
    return values[0] if values else ""


def watch(journal: Journal, stop: threading.Event, address: str, vip: str, dns_port: int) -> None:
    answering, holder = None, None
    while not stop.is_set():
        now_answering = who_answers(vip)
        if now_answering != answering:
            journal.write("vip", f"{now_answering} answers on {vip}" if now_answering else f"nobody answers on {vip}",
                          node=now_answering)
            answering = now_answering
        now_holder = dns_holder(address, dns_port, vip)
        if now_holder != holder and now_holder != "?":
            journal.write("dns", f"DNS: www.example.test {vip} held by {now_holder or 'nobody'}", node=now_holder)
            holder = now_holder
        stop.wait(POLL)


def serve_smtp(journal: Journal, address: str) -> Any:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:
            import email

            mail = email.message_from_bytes(envelope.content)
            journal.write("email", f"email: {mail['Subject']}", subject=mail["Subject"], to=envelope.rcpt_tos)
            return "250 Message accepted"

    controller = Controller(Handler(), hostname=address, port=SMTP_PORT)
    controller.start()
    return controller


def serve_slack(journal: Journal, address: str) -> Any:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            ok = self.path == SLACK_PATH
            if ok:
                payload = json.loads(body)
                journal.write("slack", f"slack: {payload.get('text')}", text=payload.get("text"))
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"no_service")

    server = ThreadingHTTPServer((address, SLACK_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str]) -> int:
    directory, address, vip, dns_port = Path(argv[0]), argv[1], argv[2], int(argv[3])
    journal = Journal(directory / "seen.jsonl")
    stop = threading.Event()
    set_on_signals(stop, (signal.SIGTERM,))  # no lock taken inside a signal handler
    smtp = serve_smtp(journal, address)
    slack = serve_slack(journal, address)
    watcher = threading.Thread(target=watch, args=(journal, stop, address, vip, dns_port), daemon=True)
    watcher.start()
    (directory / "peers.ready").touch()
    stop.wait()
    smtp.stop()
    slack.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
