"""Secrets never leave in output (rule 7), patterns others feed text to never hang, Nagios ranges are strict.

Real programs, a real rsyslogd, real HTTP servers on loopback, real processes with crafted command lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kahooks.lab.rsyslog import Rsyslog
from tests.support.programs import assert_one_line_failure, quiet_env, run
from tests.support.serve import Served, head

# --- Rule 7: secrets in output -------------------------------------------------------------------------


def test_a_usage_error_shows_no_url_password_on_screen_or_in_syslog(rsyslog: Rsyslog) -> None:
    """It did: `FAIL: ka-check-http: URL 'http://user:PASSWORD@127.0.0.1:0/': has no usable port`, logged too."""
    outcome = run("ka-check-http", "http://user:PASSWORD@127.0.0.1:0/",
                  env={"KAHOOKS_SYSLOG_SOCKET": str(rsyslog.socket)})
    assert_one_line_failure(outcome, "no usable port", "http://user:***@127.0.0.1:0/")
    logged = rsyslog.wait_for("no usable port")
    assert "PASSWORD" not in outcome.stdout + outcome.stderr + logged and "user:***@" in logged, logged


def test_a_usage_error_shows_no_header_value_nor_a_token_standing_as_user(rsyslog: Rsyslog) -> None:
    env = {"KAHOOKS_SYSLOG_SOCKET": str(rsyslog.socket)}
    malformed = run("ka-check-http", "--header", "X-Api-Key k3y-v4lue-9", "http://127.0.0.1:1/", env=env)
    assert_one_line_failure(malformed, "expected 'Name: value'", "X-Api-Key ***")
    as_user = run("ka-check-http", "https://ghp_T0KEN5ecret@127.0.0.1:0/", env=env)
    assert_one_line_failure(as_user, "no usable port", "https://***@127.0.0.1:0/")
    logged = "\n".join(rsyslog.wait_for_count("ka-check", 2))
    for text in (malformed.stdout, as_user.stdout, logged):
        assert "k3y-v4lue-9" not in text and "ghp_T0KEN5ecret" not in text, text


def test_a_failed_probe_shows_no_token_from_its_query_string(http_server) -> None:
    outcome = run("ka-check-http", http_server.url("/gone?access_token=QSECRET1&Sig=QSECRET2&page=1"))
    assert_one_line_failure(outcome, "404 from", "access_token=***&Sig=***&page=1")
    assert "QSECRET" not in outcome.stdout, outcome


def test_a_probe_line_with_a_secret_in_a_commands_output_is_redacted() -> None:
    """The redaction is at the edge (check_cli), not in each check: exec's output tail is shown as it is."""
    outcome = run("ka-check-exec", "--", "sh", "-c", "echo 'login failed: password=hunter2'; exit 1")
    assert_one_line_failure(outcome, "exited 1", "password=***")
    assert "hunter2" not in outcome.stdout


LOGGING = """
import logging, sys
from kahooks import logs
log = logs.setup("kh-redact-test", to_stderr=True, log_format=sys.argv[1])
log.error("webhook %s failed: %s", "http://127.0.0.1:9/hooks/xkb7ps5u3fbhxqp1wn8q6iijbr", "Authorization: Bearer b3arer-tok")
try:
    raise ValueError("cannot post to https://svc:pw-in-trace@example.net/?api_key=k-in-trace")
except ValueError:
    log.exception("delivery bug")
"""


def test_every_log_record_goes_through_redaction_in_text_and_json(rsyslog: Rsyslog) -> None:
    """The formatter hides what a call site passes as it is (a channel's URL, a header, a traceback)."""
    for log_format in ("text", "json"):
        done = subprocess.run([sys.executable, "-c", LOGGING, log_format], capture_output=True, text=True,
                              timeout=30, env=quiet_env(KAHOOKS_SYSLOG_SOCKET=str(rsyslog.socket)))
        assert done.returncode == 0, done
        logged = "\n".join(rsyslog.wait_for_count("kh-redact-test", 2 if log_format == "text" else 4))
        for text in (done.stderr, logged):
            assert "delivery bug" in text and "hooks/***" in text and "Bearer ***" in text, text
            for secret in ("xkb7ps5u3fbhxqp1wn8q6iijbr", "b3arer-tok", "pw-in-trace", "k-in-trace"):
                assert secret not in text, (log_format, secret, text)
        if log_format == "json":
            assert all(json.loads(line)["ident"] == "kh-redact-test" for line in done.stderr.splitlines())


def test_status_json_kahooks_status_and_the_serve_log_hide_what_a_check_printed(tmp_path: Path) -> None:
    """daemon/snapshot.py redacts the whole snapshot: a check's summary (here a command's output tail)
    and the run line, in status.json, `kahooks status` and its --json; the serve log through logs."""
    config = head(tmp_path) + """
[checks.leaky]
run = "ka-check-exec -- sh -c 'echo upstream said token=T0KSECRET; exit 1'"
interval = 60
"""
    with Served(tmp_path, config) as served:
        served.wait_track("leaky", "1")
        shown = [run("kahooks", "status", "-c", str(served.config)).stdout,
                 run("kahooks", "status", "--json", "-c", str(served.config)).stdout,
                 (served.state / "status.json").read_text()]
    status = json.loads(shown[2])["checks"]["leaky"]
    assert "token=***" in status["why"] and "token=***" in status["run"], status
    for text in [*shown, served.log_text()]:
        assert "T0KSECRET" not in text, text
