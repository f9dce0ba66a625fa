"""kahooks init: a starting kahooks.toml from this node's keepalived.conf, valid before it is written."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.support.programs import program, quiet_env

SEEDS = Path(__file__).resolve().parents[1] / "doctor" / "seeds"
CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "keepalived"


def init(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([program("kahooks"), "init", *args], capture_output=True, text=True, timeout=60,
                          env=quiet_env(), stdin=subprocess.DEVNULL)


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([program("kahooks"), "validate", "-c", str(path)], capture_output=True, text=True,
                          timeout=60, env=quiet_env())


def test_from_the_squid_seed_without_a_terminal_it_asks_nothing(tmp_path: Path) -> None:
    output = tmp_path / "kahooks.toml"
    result = init("-f", str(SEEDS / "004-proxy-serv01.conf"), "-o", str(output))
    assert result.returncode == 0 and result.stdout.startswith(f"wrote {output}: 2 instances, 1 check for"), result
    assert "?" not in result.stdout + result.stderr  # no question was put
    text = output.read_text()
    assert '[instances.proxy_ip1]\nvips = ["192.168.2.101"]' in text
    assert 'run = "ka-check-exec -- /usr/sbin/squid -k check"' in text and "interval = 3" in text
    assert "#   track_file chk_squid_service { file /run/kahooks/track/chk_squid_service" in text
    assert 'channels = ["syslog"]' in text and "# [channels.email]" in text
    assert validate(output).returncode == 0


def test_with_answers_the_slack_url_is_kept_in_a_file_only_root_reads(tmp_path: Path) -> None:
    output = tmp_path / "etc" / "kahooks.toml"
    result = init("-f", str(CONTRIB / "haproxy-pair-daemon.conf"), "-o", str(output), "--email-to",
                  "ops@example.net", "--smtp-server", "smtp.example.net:587", "--slack-url",
                  "https://hooks.slack.com/services/T0/B0/secret")
    assert result.returncode == 0, result
    text = output.read_text()
    assert 'notify_fifo = "/run/kahooks/notify.fifo"' in text
    assert 'channels = ["syslog", "email", "slack"]' in text and "hooks.slack.com" not in text
    secret = output.parent / "slack.url"
    assert f'url_file = "{secret}"' in text
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600 and secret.read_text().strip().endswith("/secret")
    assert validate(output).returncode == 0


def test_an_existing_file_is_kept_unless_forced_and_bad_input_is_one_line(tmp_path: Path) -> None:
    output = tmp_path / "kahooks.toml"
    output.write_text("# mine\n")
    kept = init("-f", str(SEEDS / "002-lb1.conf"), "-o", str(output))
    assert kept.returncode == 1 and "exists; --force replaces it" in kept.stderr and output.read_text() == "# mine\n"
    assert init("-f", str(SEEDS / "002-lb1.conf"), "-o", str(output), "--force").returncode == 0
    assert 'run = "ka-check-process haproxy"' in output.read_text()
    missing = init("-f", str(tmp_path / "nope.conf"), "-o", str(tmp_path / "other.toml"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "cannot read" in missing.stderr
