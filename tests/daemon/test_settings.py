"""The daemon's tables in kahooks.toml, through `kahooks validate` and the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from kahooks.daemon.service import load_config
from kahooks.daemon.settings import daemon_programs
from kahooks.settings.config import ConfigError
from tests.support.daemon_config import problems, write
from tests.support.programs import run


def test_a_check_is_its_vrrp_script_command_line(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, """
[checks.haproxy]
run = "/usr/local/bin/ka-check-process haproxy --pidfile /run/haproxy.pid"
rise = 2

[checks.web]
run = ["ka-check-http", "http://127.0.0.1/health", "--status", "200"]
interval = 0.5
track_file = "/run/web.track"
fail_value = -254
""")))
    checks = config.sections["checks"]
    haproxy, web = checks["haproxy"], checks["web"]
    assert (haproxy.kind, haproxy.check.name, haproxy.check.pidfile) == ("process", "haproxy", "/run/haproxy.pid")
    assert (haproxy.interval, haproxy.rise, haproxy.fall) == (1.0, 2, 1)
    assert haproxy.track_file == str(tmp_path / "state" / "track" / "haproxy")
    assert (web.kind, web.interval, web.track_file, web.ok_value, web.fail_value) == \
        ("http", 0.5, "/run/web.track", 0, -254)


def test_every_mistake_is_reported_with_its_key_and_line(tmp_path: Path) -> None:
    lines = problems(tmp_path, """
[checks.a]
run = "ka-check-port 127.0.0.1"

[checks.b]
run = "ka-check-process haproxy --nagios"

[checks.c]
run = "killall -0 haproxy"

[checks.d]
run = "ka-check-process haproxy"
fall = 0
interval = "1"

[checks.e]
run = "ka-check-process haproxy"
ok_value = 1

[checks.f]
run = "ka-check-http http://x/ --colour"

[checks.g]
run = "ka-check-http http://x/ --dynamic-weight 50"

[checks.w]
run = "ka-check-port -w 0.2 127.0.0.1:80"

[checks.x]
run = "ka-check-http --critical=1 http://127.0.0.1/"

[checks.v]
run = "ka-check-process -v haproxy"

[checks.h]
run = "ka-check-process haproxy --help"
""")
    text = "\n".join(lines)
    path = tmp_path / "kahooks.toml"
    assert f"{path}:8: checks.a.run: ka-check-port: HOST:PORT '127.0.0.1': missing :PORT" in text
    assert "checks.b.run: --nagios: the daemon writes track files" in text
    assert f"checks.c.run: must start with one of {', '.join(daemon_programs())}" in text
    assert f"{path}:18: checks.d.fall: must be a whole number from 1 to 1000" in text
    assert "checks.d.interval: must be a number of seconds" in text
    assert "checks.e.fail_value: must differ from ok_value" in text
    assert "checks.f.run: ka-check-http: unknown option --colour" in text
    assert "checks.g.run: --dynamic-weight: a weight is for keepalived's MISC_CHECK" in text
    # -w/-c are --nagios thresholds: the daemon refused --nagios but took them, silently meaning nothing.
    assert "checks.w.run: -w: thresholds for --nagios output: the daemon writes track files" in text
    assert "checks.x.run: --critical=1: thresholds for --nagios output" in text
    assert "checks.v.run: -v: run `kahooks serve -v` instead" in text
    assert "checks.h.run: --help: asks the program about itself: not a check" in text
    assert len(lines) == 12, lines


def test_a_value_that_looks_like_a_program_option_is_a_value(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, """
[checks.shell]
run = "ka-check-exec sh -c 'exit 0'"

[checks.body]
run = "ka-check-http --contains -w http://127.0.0.1/"
""")))
    checks = config.sections["checks"]
    assert (checks["shell"].kind, checks["body"].kind) == ("exec", "http")


def test_serve_and_validate_refuse_a_threshold_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[checks.web]\nrun = "ka-check-port -c 0.5 127.0.0.1:80"\n')
    for command in ("validate", "serve"):
        outcome = run("kahooks", command, "-c", str(path))
        assert outcome.code == 1, (command, outcome)
        assert "checks.web.run: -c: thresholds for --nagios output" in outcome.stderr, (command, outcome)
        assert "Traceback" not in outcome.stderr


def test_two_checks_cannot_share_a_track_file(tmp_path: Path) -> None:
    lines = problems(tmp_path, """
[checks.one]
run = "ka-check-process haproxy"
track_file = "/run/t"

[checks.two]
run = "ka-check-process squid"
track_file = "/run/t"
""")
    assert any("checks.two.track_file: /run/t is already written by check 'one'" in line for line in lines)


def test_serve_settings_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "kahooks.toml"
    path.write_text('[serve]\nstate_dir = "run/kahooks"\nmetrics_listen = "localhost"\n'
                    'metrics_textfile = "/var/lib/node/kahooks.txt"\nnotify_fifo = "/run/k.fifo"\n'
                    'deliver = false\nsurprise = 1\n')
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    text = "\n".join(caught.value.lines())
    assert "serve.state_dir: must be an absolute path" in text
    assert "serve.metrics_listen: must be 'HOST:PORT'" in text
    assert "serve.metrics_textfile: must end in .prom" in text
    assert "serve.surprise: unknown setting" in text


def test_a_fifo_without_delivery_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kahooks.toml"
    path.write_text('[serve]\nnotify_fifo = "/run/k.fifo"\ndeliver = false\n')
    with pytest.raises(ConfigError, match="needs deliver = true"):
        load_config(str(path))


def test_validate_counts_checks_and_ka_notify_ignores_the_daemon_tables(tmp_path: Path) -> None:
    path = write(tmp_path, '[checks.haproxy]\nrun = "ka-check-process haproxy"\n')
    outcome = run("kahooks", "validate", "-c", str(path))
    assert outcome.code == 0 and "1 check," in outcome.stdout, outcome
    from kahooks.notifiers import channel_types
    from kahooks.settings.config import load

    assert load(str(path), channel_types()).sections == {}  # ka-notify's loader: accepted, unread


def test_validate_reports_a_bad_check_in_one_line_each(tmp_path: Path) -> None:
    path = write(tmp_path, '[checks.haproxy]\nrun = "ka-check-process"\n')
    outcome = run("kahooks", "validate", "-c", str(path))
    assert outcome.code == 1
    assert "checks.haproxy.run: ka-check-process: give a process NAME, --cmdline or --pidfile" in outcome.stderr
    assert "Traceback" not in outcome.stderr
