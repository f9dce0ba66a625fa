"""TLS for checks: client contexts, readable handshake errors, and certificate expiry.

The expiry comes from the certificate's DER bytes, which the handshake gives
even with verification off (getpeercert() returns nothing then), so
--cert-days works with --insecure against self-signed certificates.
"""

from __future__ import annotations

import ssl
import time

from kahooks.errors import KahooksError, ProbeTimeout
from kahooks.system.tls import client_context  # noqa: F401 (the checks' name for it)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from kahooks.deadline import Deadline

SECONDS_PER_DAY = 86400


def handshake(context: ssl.SSLContext, sock: socket.socket, server_name: str, deadline: Deadline) -> ssl.SSLSocket:
    """TLS over a connected socket within the deadline; closes the socket when the handshake fails."""
    sock.settimeout(deadline.require(f"TLS handshake with {server_name}"))
    try:
        return context.wrap_socket(sock, server_hostname=server_name)
    except ssl.SSLError as exc:
        sock.close()
        raise handshake_error(exc) from None
    except TimeoutError:
        sock.close()
        raise ProbeTimeout(f"TLS handshake: no answer within {deadline.seconds:g} s") from None


def handshake_error(exc: ssl.SSLError) -> KahooksError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return KahooksError(f"certificate not trusted: {exc.verify_message}")
    return KahooksError(f"TLS handshake failed: {exc.reason or exc}")


def days_left(tls_socket: ssl.SSLSocket) -> float:
    """Days until the peer certificate expires (negative when already expired)."""
    der = tls_socket.getpeercert(binary_form=True)
    if not der:
        raise KahooksError("the server sent no certificate")
    return (not_after(der) - time.time()) / SECONDS_PER_DAY


def check_expiry(tls_socket: ssl.SSLSocket, min_days: int) -> tuple[bool, str, float]:
    """(ok, note, days) for a --cert-days N requirement."""
    left = days_left(tls_socket)
    if left < 0:
        return False, f"certificate expired {-left:.0f} days ago", left
    if left < min_days:
        return False, f"certificate expires in {left:.1f} days (< {min_days})", left
    return True, f"certificate valid for {left:.0f} days", left


def not_after(der: bytes) -> float:
    """The notAfter time (epoch seconds) of a DER X.509 certificate.

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... } }
    """
    certificate = _der_children(_der_item(der, 0)[1])
    tbs = _der_children(certificate[0][1])
    index = 1 if tbs[0][0] == 0xA0 else 0  # skip the explicit version tag
    validity = _der_children(tbs[index + 3][1])
    tag, value = validity[1]
    return _der_time(tag, value)


def _der_item(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, value, next_offset) of the DER element at offset."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise KahooksError("malformed certificate")
    return tag, data[offset:end], end


def _der_children(data: bytes) -> list[tuple[int, bytes]]:
    items = []
    offset = 0
    while offset < len(data):
        tag, value, offset = _der_item(data, offset)
        items.append((tag, value))
    return items


def _der_time(tag: int, value: bytes) -> float:
    import calendar

    text = value.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSS: years 50-99 are 19xx (RFC 5280)
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
        text = text[2:]
    elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSS
        year = int(text[:4])
        text = text[4:]
    else:
        raise KahooksError("malformed certificate time")
    month, day, hour, minute, second = (int(text[i:i + 2]) for i in range(0, 10, 2))
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
