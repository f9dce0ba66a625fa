"""Logging for the long-running parts (worker, FIFO reader): syslog always, stderr when asked."""

from __future__ import annotations

import logging
import sys

from kahooks import localsyslog

SEVERITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class LocalSyslogHandler(logging.Handler):
    def __init__(self, ident: str) -> None:
        super().__init__()
        self.ident = ident

    def emit(self, record: logging.LogRecord) -> None:
        try:
            localsyslog.send(self.ident, self.format(record), SEVERITIES.get(record.levelno, 6))
        except Exception:
            self.handleError(record)


def setup(ident: str, verbose: bool = False, to_stderr: bool = False) -> logging.Logger:
    logger = logging.getLogger("kahooks")
    logger.handlers.clear()
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    syslog = LocalSyslogHandler(ident)
    syslog.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(syslog)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(stream)
    logger.propagate = False
    return logger
