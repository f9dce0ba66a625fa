"""Logging for the long-running parts (worker, FIFO reader, daemon): syslog, and stderr when asked
(but not when stderr is the journal, which hears syslog already) or when there is no syslog to hear
it (a container without /dev/log): a delivery failure must never go unseen. A worker started by a
handler has its stderr in the spool's state/worker.log.
"""

from __future__ import annotations

import logging
import sys

from kahooks.output import localsyslog, redact

SEVERITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class LocalSyslogHandler(logging.Handler):
    def __init__(self, ident: str, also_stderr: bool = False) -> None:
        super().__init__()
        self.ident = ident
        self.also_stderr = also_stderr  # a stderr handler is installed too: no need to fall back

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not localsyslog.send(self.ident, self.format(record), SEVERITIES.get(record.levelno, 6)) \
                    and not self.also_stderr:
                # No syslog socket, or it refused: stderr rather than nowhere.
                text = self.format(record)
                sys.stderr.write((text if text.startswith("{") else f"{self.ident}: {record.levelname} {text}") + "\n")
                sys.stderr.flush()
        except Exception:
            self.handleError(record)


class Redacting(logging.Formatter):
    """Every record's text, traceback included, through redact.text: no call site can forget it
    (a channel's error quoting its webhook URL, a check's summary quoting a URL with a password)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact.text(super().format(record))


class JsonLines(logging.Formatter):
    """One JSON object a line, for log shippers: time (ISO 8601, UTC), level, logger, message, ident, pid;
    the message and traceback through redact.text, as Redacting does."""

    def __init__(self, ident: str) -> None:
        super().__init__()
        self.ident = ident

    def format(self, record: logging.LogRecord) -> str:
        import datetime
        import json
        import os

        data = {"time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                    timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "message": redact.text(record.getMessage()),
                "ident": self.ident, "pid": os.getpid()}
        if record.exc_info:
            data["traceback"] = redact.text(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def stderr_is_journal() -> bool:
    """systemd connected stderr to the journal: JOURNAL_STREAM names its device:inode (systemd.exec(5))."""
    import os

    try:
        status = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or replaced by something without a descriptor
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{status.st_dev}:{status.st_ino}"


def setup(ident: str, verbose: bool = False, to_stderr: bool = False, log_format: str = "text") -> logging.Logger:
    logger = logging.getLogger("kahooks")
    logger.handlers.clear()
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if to_stderr and stderr_is_journal():
        # Under systemd, journald reads /dev/log as well: stderr too would put every line in the journal
        # twice (once without its severity). Without a syslog socket the handler still falls back to stderr.
        to_stderr = False
    syslog = LocalSyslogHandler(ident, also_stderr=to_stderr)
    syslog.setFormatter(JsonLines(ident) if log_format == "json" else Redacting("%(message)s"))
    logger.addHandler(syslog)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(JsonLines(ident) if log_format == "json"
                            else Redacting("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(stream)
    logger.propagate = False
    return logger
