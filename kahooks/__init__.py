"""kahooks: track-script checks, notify handlers and a daemon for keepalived.

This package root is the small core every family shares (errors, deadlines,
check results, option parsing). It must stay import-light: every check that
keepalived forks once a second imports it.
"""

__version__ = "0.1.0"
