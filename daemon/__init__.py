"""`kahooks serve`: the long-running daemon that runs checks in-process and writes keepalived track files.

settings (its kahooks.toml tables), verdict (rise/fall), runner (check threads and
the pidfd watcher), filewatch (pidfiles, maintenance files), trackfile (atomic
writes), metrics (Prometheus), status (`kahooks status`), service (the daemon).
"""
