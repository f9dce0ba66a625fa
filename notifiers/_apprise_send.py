"""The apprise channel's child: `python -P -m kahooks.notifiers._apprise_send`, run through kahooks.system.commands.

Apprise reads whole answers into memory and waits as long as its services let it; so it runs
here, in a process of its own, under an address-space limit (RLIMIT_AS), a deadline and an
output cap kept by the parent. The request comes in the environment (KAHOOKS_APPRISE: the URLs
carry tokens, and a command line is readable by every user; an environment is not). One line
per URL goes to stdout as it is done: `KAHOOKS-APPRISE <index> ok|failed|unusable`, so a child
stopped at its deadline still tells which URLs took the message.
"""

from __future__ import annotations

import json
import os
import sys

VARIABLE = "KAHOOKS_APPRISE"
MARK = "KAHOOKS-APPRISE"


def main() -> int:
    request = json.loads(os.environ.pop(VARIABLE))
    import resource

    limit = int(request["memory"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        import apprise
    except ImportError:
        print(f"{MARK} missing", flush=True)
        return 0
    import logging

    logging.disable(logging.CRITICAL)  # Apprise's own lines can name a URL, token and all
    for index in request["indexes"]:
        sender = apprise.Apprise()
        if not sender.add(request["urls"][index]):
            outcome = "unusable"
        else:
            try:
                outcome = "ok" if sender.notify(title=request["title"], body=request["body"]) else "failed"
            except MemoryError:  # an answer bigger than the limit: this URL failed, the others may not
                outcome = "failed"
        print(f"{MARK} {index} {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
