"""The reference for ka-notify's handler: a minimal durable recorder, the standard library alone.

`python3 notify_reference.py SPOOL WORD...` writes keepalived's words to a new file in SPOOL, fsyncs
the file and the folder (the event is on disk before it returns, as ka-notify promises) and exits.
What any handler that keeps the promise must cost: an interpreter's start, one file, two fsyncs.
"""

import os
import sys
import time

spool, words = sys.argv[1], sys.argv[2:]
folder = os.open(spool, os.O_RDONLY | os.O_DIRECTORY)
name = f"{time.time_ns():020d}-{os.getpid()}.event"
fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, dir_fd=folder)
os.write(fd, (" ".join(words) + "\n").encode())
os.fsync(fd)
os.close(fd)
os.fsync(folder)
os.close(folder)
