"""Addresses and connections under one deadline: HOST:PORT parsing, resolving, connecting.

getaddrinfo() cannot be given a timeout, so a name that is not an IP literal is
resolved in a daemon thread the probe stops waiting for when its time is up.
"""

from __future__ import annotations

import socket

from kahooks.errors import KahooksError, ProbeTimeout, os_words

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kahooks.deadline import Deadline



def parse_hostport(raw: str, default_port: int | None = None) -> tuple[str, int]:
    """'127.0.0.1:80', 'name:80' or '[::1]:80' -> (host, port). Raises ValueError."""
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        if not bracket or not host:
            raise ValueError("IPv6 address needs a closing ']', as in [::1]:80")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':PORT' after ']'")
    else:
        if raw.count(":") > 1:
            raise ValueError("put an IPv6 address in brackets, as in [::1]:80")
        host, _, port_text = raw.partition(":")
        if not host:
            raise ValueError("missing host, as in 127.0.0.1:80")
    if not port_text:
        if default_port is None:
            raise ValueError("missing :PORT")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve(host: str, port: int, deadline: Deadline) -> list[tuple[int, tuple]]:
    """(family, sockaddr) pairs for host:port, in getaddrinfo order, within the deadline."""
    literal = ip_literal(host)
    if literal is not None:
        # The first getaddrinfo() call costs ~5 ms (libc loads its resolver config); a literal needs none.
        return [(literal, (host, port) if literal == socket.AF_INET else (host, port, 0, 0))]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        infos = _resolve_name(host, port, deadline)
    return [(info[0], info[4]) for info in infos]


def ip_literal(host: str) -> int | None:
    """AF_INET or AF_INET6 when host is an IP address literal (without a %scope), else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return family
        except OSError:
            continue
    return None


def _resolve_name(host: str, port: int, deadline: Deadline) -> list:
    import threading

    outcome: list = []

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(deadline.require(f"resolving {host}"))
    if not outcome:
        raise ProbeTimeout(f"resolving {host}: no answer within {deadline.seconds:g} s")
    if isinstance(outcome[0], OSError):
        raise KahooksError(f"cannot resolve {host}: {reason(outcome[0])}")
    return outcome[0]


def connect(host: str, port: int, deadline: Deadline) -> socket.socket:
    """A connected TCP socket to host:port, trying each address until one answers."""
    errors = []
    for family, sockaddr in resolve(host, port, deadline):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.require(f"connecting to {format_hostport(host, port)}"))
            sock.connect(sockaddr)
            return sock
        except TimeoutError:
            sock.close()
            raise ProbeTimeout(f"{format_hostport(host, port)}: no answer within "
                               f"{deadline.seconds:g} s") from None
        except OSError as exc:
            sock.close()
            errors.append(reason(exc))
        except BaseException:
            sock.close()
            raise
    raise KahooksError(f"{format_hostport(host, port)}: {', '.join(errors) or 'no address'}")


def reason(exc: OSError) -> str:
    """'connection refused' rather than '[Errno 111] Connection refused'."""
    text = os_words(exc)
    return text[:1].lower() + text[1:]
