"""The one error hierarchy of kahooks; everything raised on purpose derives from KahooksError."""

from __future__ import annotations


class KahooksError(Exception):
    """Base of every error kahooks raises deliberately; its text is one line for an operator."""


class UsageError(KahooksError):
    """Bad command-line options or configuration values: the user must change something."""


class ProbeTimeout(KahooksError):
    """A probe ran out of its time budget."""
