"""Configuration: every problem reported with its key path and line; rules; secrets; templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from kahooks.notifiers import channel_types
from kahooks.settings.config import ChannelConfigError, ConfigError, load, secret_from_file

GOOD = """\
spool_dir = "/var/spool/kahooks"

[delivery]
max_attempts = 5
flap_window = 0

[instances.VI_1]
vips = ["192.0.2.10"]

[channels.log]
type = "syslog"
address = "udp://127.0.0.1:514"

[channels.page]
type = "exec"
command = ["true"]

[[rules]]
channels = ["log"]

[[rules]]
instances = ["VI_*"]
states = ["FAULT"]
channels = ["page", "log"]
"""



def picks(config, name: str, state: str) -> list[str]:
    """The channels the rules pick for an instance's transition (or kahooks' alert about it)."""
    from kahooks.events.event import Event

    event = Event.alert(name, "test", "test") if state == "ALERT" else Event.new("INSTANCE", name, state, 100, "test")
    return config.channels_for(event)

def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "kahooks.toml"
    path.write_text(text)
    return str(path)


def test_good_config_and_rule_matching(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD), channel_types())
    assert set(config.channels) == {"log", "page"}
    assert config.delivery["max_attempts"] == 5 and config.delivery["flap_window"] == 0
    assert picks(config, "VI_1", "MASTER") == ["log"]
    assert picks(config, "VI_1", "FAULT") == ["log", "page"]
    assert picks(config, "OTHER", "FAULT") == ["log"]
    assert config.vips("VI_1") == ["192.0.2.10"]


def test_every_problem_is_reported_with_key_and_line(tmp_path: Path) -> None:
    text = """\
spool_dir = "relative/path"
colour = "blue"

[delivery]
max_attempts = 0
backoff_max = "soon"

[instances.VI_1]
vips = ["not-an-ip"]

[channels.log]
type = "syslog"
facility = "kitchen"

[channels.mail]
type = "carrier-pigeon"

[[rules]]
states = ["MASTER", "LEADER"]
channels = ["log", "nowhere"]
"""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load(path, channel_types())
    lines = raised.value.lines()
    expected = [
        f"{path}:1: spool_dir: must be an absolute path",
        f"{path}:2: colour: unknown setting",
        f"{path}:5: delivery.max_attempts: must be from 1 to 1000",
        f"{path}:6: delivery.backoff_max: must be a number from 0 to 86400",
        f"{path}:9: instances.VI_1.vips[0]: 'not-an-ip' is not an IP address",
        f"{path}:13: channels.log.facility: 'kitchen' is not one of",
        f"{path}:16: channels.mail.type: 'carrier-pigeon' is not a channel type",
        f"{path}:19: rules[0].states: must be a list of states",
        f"{path}:20: rules[0].channels: no channel named 'nowhere'",
    ]
    for wanted in expected:
        assert any(line.startswith(wanted) for line in lines), (wanted, lines)
    assert len(lines) == len(expected), lines


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[channels.log\ntype = 'syslog'\n")
    with pytest.raises(ConfigError, match=r"syntax: .*line 1"):
        load(path, channel_types())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(str(tmp_path / "nope.toml"), channel_types())


def test_undefined_template_variable_is_a_config_error(tmp_path: Path) -> None:
    text = GOOD.replace('address = "udp://127.0.0.1:514"',
                        'address = "udp://127.0.0.1:514"\nsubject = "{{ instnace }} is {{ state }}"')
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load(path, channel_types())
    # Blamed on the key that holds the mistake, at its own line (it once said `body`).
    line = text.splitlines().index('subject = "{{ instnace }} is {{ state }}"') + 1
    assert f"{path}:{line}: channels.log.subject: template uses an undefined variable: 'instnace' is undefined" \
        in str(raised.value)


def test_template_files(tmp_path: Path) -> None:
    (tmp_path / "body.j2").write_text("{{ name }} went {{ state }} on {{ host }}\n")
    text = GOOD.replace('command = ["true"]', 'command = ["true"]\nbody_file = "body.j2"')
    config = load(write(tmp_path, text), channel_types())
    assert "body.j2" in str(config.path) or config.channels["page"].templates.sources["body"].startswith("{{ name }}")
    missing = GOOD.replace('command = ["true"]', 'command = ["true"]\nbody_file = "missing.j2"')
    with pytest.raises(ConfigError, match="channels.page.body_file: .*missing.j2: No such file"):
        load(write(tmp_path, missing), channel_types())


def test_secrets_must_not_be_world_readable(tmp_path: Path) -> None:
    secret = tmp_path / "smtp.secret"
    secret.write_text("hunter2\n")
    secret.chmod(0o640)
    assert secret_from_file(str(secret)) == "hunter2"
    secret.chmod(0o644)
    with pytest.raises(ChannelConfigError) as raised:
        secret_from_file(str(secret))
    assert "world-readable" in str(raised.value) and "hunter2" not in str(raised.value)


def test_the_shipped_example_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "contrib" / "etc" / "kahooks.toml"
    config = load(str(example), channel_types())
    assert picks(config, "VI_1", "FAULT") == ["local_log", "central_log", "page"]
    assert picks(config, "VI_1", "MASTER") == ["local_log", "central_log"]


def test_the_shipped_squid_pair_example_is_valid(tmp_path: Path) -> None:
    """The example with every kind of channel; its secret files are made here, owner-only."""
    import subprocess

    example = Path(__file__).resolve().parents[2] / "contrib" / "etc" / "kahooks-squid-pair.toml"
    (tmp_path / "dns.key").write_text(subprocess.run(["tsig-keygen", "-a", "hmac-sha256", "kahooks"],
                                                     capture_output=True, text=True, check=True).stdout)
    for name, secret in (("smtp.password", "pw"), ("slack.url", "https://hooks.slack.com/services/T/B/X"),
                         ("ntfy.token", "tk")):
        (tmp_path / name).write_text(secret + "\n")
    for secret in tmp_path.iterdir():
        secret.chmod(0o600)
    config_path = tmp_path / "kahooks.toml"
    config_path.write_text(example.read_text().replace("/etc/kahooks/", f"{tmp_path}/"))
    config = load(str(config_path), channel_types())
    assert picks(config, "proxy_ip2", "MASTER") == ["squid", "dns_rr", "mail", "chat"]
    assert picks(config, "proxy_ip1", "ALERT") == ["mail", "chat", "phone"]
    assert config.channels["dns_rr"].key_name.to_text() == "kahooks."


def test_the_shipped_daemon_example_is_valid() -> None:
    from kahooks.daemon.service import load_config

    example = Path(__file__).resolve().parents[2] / "contrib" / "etc" / "kahooks-daemon.toml"
    config = load_config(str(example))
    serve, checks = config.sections["serve"], config.sections["checks"]
    assert (serve.state_dir, serve.notify_fifo, serve.metrics_listen) == \
        ("/run/kahooks", "/run/kahooks/notify.fifo", ("127.0.0.1", 9477))
    assert checks["haproxy"].track_file == "/run/kahooks/track/haproxy"  # what haproxy-pair-daemon.conf tracks
    assert (checks["frontend"].fall, checks["frontend"].rise) == (3, 2)


def test_the_packaged_default_is_valid_and_logs_every_transition() -> None:
    """contrib/etc/kahooks-default.toml is what the Debian package installs as /etc/kahooks/kahooks.toml."""
    default = Path(__file__).resolve().parents[2] / "contrib" / "etc" / "kahooks-default.toml"
    config = load(str(default), channel_types())
    assert picks(config, "VI_1", "MASTER") == ["local_log"] and picks(config, "ANY", "FAULT") == ["local_log"]
