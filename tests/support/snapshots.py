"""Daemon snapshots for the tests of what renders them (/metrics, the SNMP tree, the wire report)."""

from __future__ import annotations


def nasty_snapshot() -> tuple[dict, dict]:
    """Labels with every character the format escapes, big and odd numbers: what render must get right."""
    now = 1_700_000_000.123456
    checks = {}
    for name in ('plain', 'with space', 'quote"d', 'back\\slash', 'new\nline', 'ünïcødé'):
        checks[name] = {"ok": name != "plain", "value": 253, "track_file": f"/run/kahooks/track/{name}",
                        "last": {"latency": 0.000123456789}, "latency_buckets": [1, 0, 3, 0, 0, 0, 0, 0, 0, 7],
                        "latency_total": 12345678.5, "runs": 12_345_678, "failures": 3, "changes": 2}
    snapshot = {"checks": checks, "maintenance": True, "started": now - 86400, "heartbeat": now,
                "instances": {'VI "1"': {"state": "FAULT", "since": now}},
                "transition_counts": [{"instance": 'VI "1"', "state": "FAULT", "count": 1}],
                "delivery_counts": [{"channel": "mail", "outcome": "dead", "count": 999_999},
                                    {"channel": "mail", "outcome": "delivered", "count": 1_000_000}],
                "threads": {"delivery": {"state": "restarting", "restarts": 2}}}
    # No oldest entry: its age changes between two renders.
    spool = {"incoming": 0, "queued": {"mail": 4}, "dead": 1, "dead_by_channel": {"mail": 1}, "oldest": None}
    return snapshot, spool
