"""kahooks.toml's defaults and ranges that the handler's fast path needs without kahooks.settings.config.

ka-notify runs for every transition keepalived reports and keepalived waits for it: importing
kahooks.settings.config (rules, their patterns, typing) costs more than recording the event. These names are
declared here once; kahooks.settings.config re-exports them for everyone else.
"""

DEFAULT_PATH = "/etc/kahooks/kahooks.toml"
DEFAULT_SPOOL = "/var/spool/kahooks"
DELIVERY_DEFAULTS = {
    # More than a day of attempts at the 300 s cap (full jitter averages 150 s): max_age ends the retries,
    # so an endpoint down for hours still gets every message when it is back.
    "max_attempts": 1000,
    "max_age": 86400.0,        # seconds an undelivered message is kept before the dead-letter directory
    "backoff_initial": 1.0,
    "backoff_max": 300.0,
    "flap_window": 10.0,       # transitions closer than this are summarised; 0 turns it off
    "worker_idle_exit": 60.0,  # a worker started by the hook exits after this long with nothing to do
}
# (lowest, highest, whole) for each: a year of max_age, a day of backoff, an hour of flap window.
DELIVERY_RANGES = {"max_attempts": (1, 1000, True), "max_age": (0, 366 * 86400, False),
                   "backoff_initial": (0, 86400, False), "backoff_max": (0, 86400, False),
                   "flap_window": (0, 3600, False), "worker_idle_exit": (0, 86400, False)}
