"""Hear the kernel add and remove IPv4 addresses in lab namespaces, stamped the moment it says so.

One rtnetlink socket per namespace, subscribed to RTMGRP_IPV4_IFADDR: keepalived's VIP
appearing on a node is an RTM_NEWADDR from that node's kernel, so the takeover time is
measured from the kernel's own report, not from a poll (finer than any polling rate, and
no process started per look). A socket belongs to the network namespace of the thread that
creates it: a short-lived thread enters the namespace (setns, which moves only that thread),
opens the socket and ends. One reader thread serves all sockets and stops with `close()`.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
RTMGRP_IPV4_IFADDR = 0x10
RTM_NEWADDR, RTM_DELADDR = 20, 21
IFA_ADDRESS, IFA_LOCAL = 1, 2
HEADER = struct.Struct("=IHHII")  # nlmsghdr
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg
ATTR = struct.Struct("=HH")  # rtattr


@dataclass(frozen=True)
class Change:
    at: float  # time.monotonic() when the kernel's message was read
    node: str
    address: str
    added: bool


def _open_in(namespace: str) -> socket.socket:
    """An rtnetlink socket inside /run/netns/NAMESPACE (opened by a thread that enters it)."""
    found: list[socket.socket | BaseException] = []

    def enter_and_open() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {namespace}")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, RTMGRP_IPV4_IFADDR))
            found.append(sock)
        except BaseException as exc:  # handed to the caller's thread
            found.append(exc)

    thread = threading.Thread(target=enter_and_open, daemon=True)
    thread.start()
    thread.join(10)
    if not found:
        raise OSError(f"could not open a netlink socket in {namespace}")
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]


def parse(data: bytes) -> list[tuple[str, bool]]:
    """(address, added) for each IPv4 RTM_NEWADDR/RTM_DELADDR in one netlink datagram; the rest skipped."""
    changes = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size or offset + length > len(data):
            break
        if kind in (RTM_NEWADDR, RTM_DELADDR) and length >= HEADER.size + IFADDR.size:
            family = data[offset + HEADER.size]
            attr, end = offset + HEADER.size + IFADDR.size, offset + length
            local = address = None
            while attr + ATTR.size <= end:
                attr_length, attr_type = ATTR.unpack_from(data, attr)
                if attr_length < ATTR.size:
                    break
                if family == socket.AF_INET and attr_length == ATTR.size + 4:
                    value = socket.inet_ntoa(data[attr + ATTR.size:attr + ATTR.size + 4])
                    local = value if attr_type == IFA_LOCAL else local
                    address = value if attr_type == IFA_ADDRESS else address
                attr += (attr_length + 3) & ~3
            if local or address:
                changes.append((local or address or "", kind == RTM_NEWADDR))
        offset += (length + 3) & ~3
    return changes


class AddressWatch:
    """Every IPv4 address change in the given namespaces ({node: namespace}), from now until close()."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self.changes: list[Change] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: dict[int, tuple[str, socket.socket]] = {}
        try:
            for node, namespace in namespaces.items():
                sock = _open_in(namespace)
                self._sockets[sock.fileno()] = (node, sock)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(list(self._sockets), [], [], 0.1)
            for fd in ready:
                node, sock = self._sockets[fd]
                try:
                    data = sock.recv(1 << 16)
                except OSError:  # ENOBUFS: changes were lost; the next snapshot still tells holders
                    continue
                now = time.monotonic()
                with self._lock:
                    self.changes.extend(Change(now, node, address, added) for address, added in parse(data))

    def first_added(self, node: str, address: str, after: float) -> float | None:
        """When `address` was first added on `node` at or after `after` (monotonic), if it was."""
        with self._lock:
            return next((change.at for change in self.changes
                         if change.added and change.node == node and change.address == address and change.at >= after),
                        None)

    def close(self) -> None:
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(2)
        for _node, sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
