"""The text of every file a lab pair's nodes run from: keepalived.conf pieces, haproxy.cfg, kahooks.toml.

Kept apart from `pair.py`, which starts and drives the nodes: the seeds' configurations
are read here in one place, and `squidpair.py` builds its own pair from the same pieces.
"""

from __future__ import annotations

CHECKS = {
    # name: (vrrp_script script line, user it runs as)
    "kahooks": ("{bin}/ka-check-process haproxy", "keepalived_script"),
    "killall": ("/usr/bin/killall -0 haproxy", "root"),  # as the seeds run it: root, or EPERM on haproxy
    "http": ("{bin}/ka-check-http http://127.0.0.1:8080/", "keepalived_script"),
    # kahooks serve runs `ka-check-process haproxy` in-process; keepalived only guards its heartbeat.
    "daemon": ("{bin}/ka-check-heartbeat {state}/heartbeat --max-age 3", "keepalived_script"),
}


def vrrp_script(name: str, script: str, interval: int, user: str, extra: str = "") -> str:
    return (f'vrrp_script {name} {{\n    script "{script}"\n    interval {interval}\n{extra}'
            f"    user {user}\n}}\n")


def vrrp_instance(instance: str, router_id: int, priority: int, vip: str, tracks: str, notify: str | None,
                  notify_user: str = "") -> str:
    """An instance as the seeds write them (state BACKUP on both nodes, preemption by priority)."""
    notify_line = f'    notify "{notify}"{" " + notify_user if notify_user else ""}\n' if notify else ""
    return VRRP_INSTANCE.format(instance=instance, router_id=router_id, priority=priority, vip=vip,
                                tracks=tracks, notify=notify_line)


PROBER = """\
import sys, time, urllib.request
last = None
while True:
    try:
        answer = urllib.request.urlopen("{url}", timeout=0.05).read().decode().strip()
    except Exception:
        answer = "-"
    if answer != last:
        print(answer, flush=True)
        last = answer
    time.sleep({interval})
"""

HAPROXY_CFG = """\
global
    maxconn 256
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend www
    bind {vip}:80
    default_backend app
backend app
    server local 127.0.0.1:8080
"""

GLOBAL_DEFS = """\
global_defs {{
    router_id {name}
    enable_script_security
    script_user keepalived_script
}}
"""

VRRP_INSTANCE = """\
vrrp_instance {instance} {{
    state BACKUP
    interface eth0
    virtual_router_id {router_id}
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
{tracks}{notify}}}
"""

TRACK_FILE = """\
track_file kahooks_haproxy {{
    file {file}
    weight 0
    init_file 1
}}
"""

DAEMON_TOML = """
[serve]
state_dir = "{state}"
{fifo}
[checks.haproxy]
run = "{bin}/ka-check-process haproxy"
interval = {interval}
"""

# Every lab node's kahooks.toml starts so: quick retries, no flap summaries (each transition is shown).
NODE_TOML_HEAD = """\
host = "{host}"
spool_dir = "{spool}"

[delivery]
flap_window = 0
backoff_initial = 0.2
backoff_max = 2
"""

KAHOOKS_TOML = NODE_TOML_HEAD + """
[instances.VI_1]
vips = ["{vip}"]

[channels.syslog]
type = "syslog"
address = "udp://{hub}:{syslog_port}"
facility = "local3"

[channels.dns]
type = "dns"
server = "{hub}:{dns_port}"
zone = "example.test"
name = "www"
ttl = 30
key_file = "{key}"

[channels.email]
type = "email"
server = "{hub}:{smtp_port}"
security = "none"
from = "keepalived@{host}.example.test"
to = "ops@example.test"

[channels.slack]
type = "slack"
url = "http://{hub}:{slack_port}{slack_path}"

[[rules]]
channels = ["syslog", "dns", "email", "slack"]
"""
