"""What the first hardening round left: every way out redacted (rule 7), exec's --expect-output bounded.

Real programs, a real rsyslogd, a real rebind channel whose real command fails printing a credential
(the way a reload script that curls a URL does), ka-notify and kahooks as keepalived and operators run them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kahooks.events.event import Event
from kahooks.lab.rsyslog import Rsyslog
from tests.support.notify import worker_for, write_config
from tests.support.programs import assert_timed_out, run
from tests.support.serve import Served, head

SECRET = "hunter2-s3cret"
# A reload script failing the way curl-based ones do: the URL it posted to, password and token, on its output.
LEAKY = f"echo \"POST https://ops:{SECRET}@hooks.example.net/reload?token={SECRET} failed: 503\"; exit 1"


def _failing_rebind(tmp_path: Path, max_attempts: int) -> tuple[Path, Path]:
    """A rebind channel `svc` (VIP 127.0.0.1, here) whose command fails quoting a credential; ALERTs go to
    an exec channel that writes what it was given. (config, the alerts file)"""
    alerts = tmp_path / "alerts"
    script = f'echo "$KAHOOKS_DETAIL|$KAHOOKS_SUBJECT" >> {alerts}; echo "$KAHOOKS_BODY" >> {alerts}.body'
    channels = (f'[channels.svc]\ntype = "rebind"\ncommand = {json.dumps(["sh", "-c", LEAKY])}\nports = [9]\n'
                f'[channels.people]\ntype = "exec"\ncommand = {json.dumps(["sh", "-c", script])}\n')
    rules = '[[rules]]\nstates = ["MASTER"]\nchannels = ["svc"]\n\n[[rules]]\nstates = ["ALERT"]\nchannels = ["people"]'
    path = write_config(tmp_path, channels, rules=rules, vips=("127.0.0.1",), delivery=(
        f"flap_window = 0\nbackoff_initial = 0.05\nbackoff_max = 0.1\nmax_attempts = {max_attempts}"))
    return path, alerts


@pytest.fixture(scope="module")
def gave_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The failing rebind delivered until it gave up: (the spool folder, the alerts the people got)."""
    tmp_path = tmp_path_factory.mktemp("gave-up")
    path, alerts = _failing_rebind(tmp_path, max_attempts=2)
    _, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    assert worker.drain(15)
    return spool.root, alerts


def test_the_alert_a_failing_channel_raises_carries_no_credential_to_the_others(gave_up: tuple[Path, Path]) -> None:
    """It did: `svc: ... exited 1: POST https://ops:hunter2-s3cret@...` went to the people's channel."""
    _, alerts = gave_up
    sent = alerts.read_text()
    assert sent.count("\n") == 2 and "exited 1" in sent and "ops:***@hooks.example.net" in sent, sent
    body = Path(f"{alerts}.body").read_text()
    assert SECRET not in sent + body, sent + body


def test_a_dead_letter_keeps_no_credential_in_the_spool(gave_up: tuple[Path, Path]) -> None:
    """It did: dead/svc/*.json held `last_error` with the password, readable by the spool's owner."""
    spool_root, _ = gave_up
    dead = list((spool_root / "dead" / "svc").glob("*.json"))
    assert len(dead) == 1
    letter = json.loads(dead[0].read_text())
    assert "ops:***@" in letter["last_error"] and "token=***" in letter["last_error"], letter
    assert SECRET not in dead[0].read_text()


def test_the_spool_listing_shows_no_credential_of_a_retried_or_an_old_dead_letter(tmp_path: Path) -> None:
    """`ka-notify queue` printed `last error: ... https://ops:hunter2-s3cret@...` of a letter waiting for
    its retry (the worker saves the error as it is) and of a dead letter buried before `bury` redacted."""
    path, _ = _failing_rebind(tmp_path, max_attempts=50)
    _, spool, worker = worker_for(path)
    spool.record(Event.new("INSTANCE", "VI_1", "MASTER", 100, "test"))
    worker.fan_out_pending()
    worker.channel_pass("svc")  # one attempt: the letter waits for its retry with the raw error saved
    queued = next((spool.root / "queue" / "svc").glob("*.json"))
    assert SECRET in queued.read_text()  # the worker's own record of the attempt (the spool is its owner's)
    dead = spool.root / "dead" / "svc"
    dead.mkdir(parents=True, exist_ok=True)
    old = json.loads(queued.read_text())
    (dead / queued.name).write_text(json.dumps(old))  # as an older kahooks buried it, secret and all
    listed = run("ka-notify", "-c", str(path), "queue")
    assert listed.code == 0, listed
    queued_line, dead_line = (line for line in listed.stdout.splitlines() if line.startswith("  "))
    assert "1 queued; 1 dead" in listed.stdout, listed
    assert "ops:***@hooks.example.net" in queued_line and "ops:***@hooks.example.net" in dead_line, listed
    assert SECRET not in listed.stdout + listed.stderr, listed


def test_ka_notify_complains_without_credentials_on_stderr_and_to_syslog(tmp_path: Path, rsyslog: Rsyslog) -> None:
    """keepalived runs ka-notify with its output discarded, so a complaint goes to syslog too; it quoted
    a setting's value whole (a URL pasted into the wrong key)."""
    config = tmp_path / "kahooks.toml"
    config.write_text(f'spool_dir = "{tmp_path / "spool"}"\n[channels.log]\ntype = "syslog"\n'
                      f'facility = "https://ops:{SECRET}@hooks.example.net/"\n')
    outcome = run("ka-notify", "-c", str(config), "--instance", "VI_1", "--state", "MASTER",
                  env={"KAHOOKS_SYSLOG_SOCKET": str(rsyslog.socket)})
    assert outcome.code == 1 and "channels.log.facility" in outcome.stderr, outcome
    logged = rsyslog.wait_for("channels.log.facility")
    for text in (outcome.stderr, logged):
        assert "ops:***@hooks.example.net" in text and SECRET not in text, text


BAD_CHECKS = f"""
[channels.log]
type = "syslog"
facility = "https://ops:{SECRET}@hooks.example.net/"
[checks.web]
run = "ka-check-http http://ops:{SECRET}@127.0.0.1:0/"
[checks.api]
run = "ka-check-http --header 'X-Api-Key {SECRET}' http://127.0.0.1:1/"
"""


@pytest.mark.parametrize("command", [["validate"], ["serve"]])
def test_kahooks_config_errors_show_no_url_password_nor_a_malformed_headers_value(tmp_path: Path,
                                                                                 command: list[str]) -> None:
    """`kahooks validate` and `kahooks serve` printed `URL 'http://ops:hunter2-s3cret@...'` and
    `--header 'X-Api-Key hunter2-s3cret'` (no colon: no line-wise redaction sees a header there; the
    check's command line tells, as check_cli's own usage error does)."""
    config = tmp_path / "kahooks.toml"
    config.write_text(f'spool_dir = "{tmp_path / "spool"}"\n[serve]\nstate_dir = "{tmp_path / "state"}"\n'
                      + BAD_CHECKS)
    outcome = run("kahooks", *command, "-c", str(config), timeout=60)
    assert outcome.code == 1, outcome
    assert "checks.web.run" in outcome.stderr and "checks.api.run" in outcome.stderr, outcome
    assert "channels.log.facility: 'https://ops:***@hooks.example.net/'" in outcome.stderr, outcome
    assert "http://ops:***@127.0.0.1:0/" in outcome.stderr and "X-Api-Key ***" in outcome.stderr, outcome
    assert SECRET not in outcome.stdout + outcome.stderr, outcome


def test_a_redirects_target_is_shown_as_its_origin_only() -> None:
    """The one helper now holds what notifiers/_http.py's where() did."""
    from kahooks.output import redact

    assert redact.origin("https://hooks.slack.com/services/T0/B0/xyz?x=1") == "https://hooks.slack.com/…"
    assert redact.origin("http://[2001:db8::1]:8080/") == "http://[2001:db8::1]:8080/"
    assert redact.origin("/relative/path") == "?" and redact.origin("http://[::1") == "?"



# --- ka-check-exec --expect-output: a pattern against output others can shape ------------------------------

EVIL = "(a+)+$"


def test_a_backtracking_expect_output_pattern_fails_the_check_in_time() -> None:
    """The command's output can echo what others wrote (a log tail, a peer's answer). With `re`,
    `(a+)+$` against 3000 a's and a '!' ran until the check's hard timer killed it: `timed out after 2 s`,
    saying nothing of why. Now the probe itself fails in time, naming the pattern."""
    crafted = "python3 -c \"print('a' * 3000 + '!')\""
    outcome = run("ka-check-exec", "--timeout", "2", "--expect-output", EVIL, "--", "sh", "-c", crafted,
                  timeout=60)
    assert_timed_out(outcome, 2, f"/{EVIL}/ gave up on the output", where=(f"/{EVIL}/", "the output"))
    assert outcome.seconds < 3.5, outcome
    plain = run("ka-check-exec", "--timeout", "2", "--expect-output", "a{3000}!$", "--", "sh", "-c", crafted)
    assert plain.code == 0, plain  # the syntax is still re's, through `regex`


def test_the_daemon_fails_a_backtracking_expect_output_probe_and_keeps_its_heartbeat(tmp_path: Path) -> None:
    """In `kahooks serve` a `re` match holds the interpreter: the heartbeat stalled for as long as it ran."""
    config = head(tmp_path) + f"""
[checks.evil]
run = "ka-check-exec --timeout 1 --expect-output '{EVIL}' -- python3 -c \\"print('a' * 3000 + '!')\\""
interval = 1
"""
    with Served(tmp_path, config) as served:
        served.wait_track("evil", "1", timeout=15)
        gaps = served.heartbeat_gaps(2.5)
        status = json.loads((served.state / "status.json").read_text())["checks"]["evil"]
    # heartbeat_interval 0.2; 2 cores shared with other runs: a gap of about 1 s was seen under load. Without
    # the bound the match held the daemon for longer than the 15 s wait above.
    assert gaps and max(gaps) < 3.0, gaps
    assert "gave up on the output" in status["why"], status
