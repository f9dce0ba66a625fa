"""Telling systemd how `kahooks serve` is doing (Type=notify), without a library: one datagram to
$NOTIFY_SOCKET, as sd_notify(3) sends it. Outside systemd there is no socket and nothing is sent.

READY=1 is what makes keepalived wait: its unit is ordered after ours, and with Type=notify systemd
starts it only once our track files, their directories and the notify FIFO exist.

A notification never blocks: a datagram socket whose reader is slow (or gone, with its queue full)
would hold the daemon in its start-up, deaf to SIGTERM. The datagram is sent with MSG_DONTWAIT and
dropped, with a warning, when it would wait.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("kahooks.serve")


def notify(state: str) -> bool:
    """Send `state` ("READY=1", "STOPPING=1", "STATUS=..."); False when not under systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address.startswith(("/", "@")):
        return False
    if address.startswith("@"):  # the abstract namespace
        address = "\0" + address[1:]
    what = state.split("=")[0]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
            sock.connect(address)
            sock.send(state.encode(), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        return True
    except BlockingIOError:
        log.warning("cannot tell systemd %s: its notify socket %s is full; dropped", what, address.lstrip("\0"))
        return False
    except OSError as exc:
        log.warning("cannot tell systemd %s: %s", what, exc)
        return False
