"""Send one message to the local syslog socket (/dev/log), the way glibc's syslog() does.

Written out rather than using the stdlib syslog module so the socket path can be
chosen (KAHOOKS_SYSLOG_SOCKET: containers that mount the log socket elsewhere,
and tests that point it at their own rsyslogd). Never raises: logging must not
turn a check's answer into a crash.
"""

from __future__ import annotations

import os
import time

DEFAULT_SOCKET = "/dev/log"
FACILITY_DAEMON = 3
SEVERITY_WARNING = 4


def socket_path() -> str:
    return os.environ.get("KAHOOKS_SYSLOG_SOCKET") or DEFAULT_SOCKET


def send(ident: str, message: str, severity: int = SEVERITY_WARNING,
         facility: int = FACILITY_DAEMON, path: str | None = None) -> bool:
    """Log `message` as `ident[pid]`; False when there is no syslog socket or it refused."""
    path = path or socket_path()
    if not os.path.exists(path):
        return False
    import socket

    stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
    record = f"<{facility * 8 + severity}>{stamp} {ident}[{os.getpid()}]: {message}".encode("utf-8", "replace")
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):  # /dev/log is a datagram socket; a few are stream
        try:
            with socket.socket(socket.AF_UNIX, kind) as sock:
                sock.settimeout(0.2)
                sock.connect(path)
                sock.sendall(record if kind == socket.SOCK_DGRAM else record + b"\n")
                return True
        except OSError as exc:
            if getattr(exc, "errno", None) != 91:  # EPROTOTYPE: wrong socket type, try the other
                return False
    return False
