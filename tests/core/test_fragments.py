"""conf.d drop-ins: merged after the main file, every problem named FILE:LINE of the file that holds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kahooks.notifiers import channel_types
from kahooks.settings import fragments
from kahooks.settings.config import ConfigError, load

MAIN = """\
spool_dir = "/var/spool/kahooks"

[channels.log]
type = "syslog"
address = "udp://127.0.0.1:514"

[[rules]]
channels = ["log"]
"""


def layout(tmp_path: Path, **drop_ins: str) -> str:
    main = tmp_path / "kahooks.toml"
    main.write_text(MAIN)
    (tmp_path / "conf.d").mkdir()
    for name, text in drop_ins.items():
        (tmp_path / "conf.d" / f"{name}.toml").write_text(text)
    return str(main)


def test_drop_ins_add_channels_and_rules_in_name_order(tmp_path: Path) -> None:
    path = layout(tmp_path,
                  b_page='[channels.page]\ntype = "exec"\ncommand = ["true"]\n\n[[rules]]\nstates = ["FAULT"]\n'
                         'channels = ["page"]\n',
                  a_host='host = "lb9"\n[delivery]\nmax_attempts = 3\n')
    (tmp_path / "conf.d" / "notes.txt").write_text("not toml, not read")
    config = load(path, channel_types())
    assert config.files == [path, str(tmp_path / "conf.d/a_host.toml"), str(tmp_path / "conf.d/b_page.toml")]
    assert set(config.channels) == {"log", "page"} and config.host == "lb9"
    assert config.delivery["max_attempts"] == 3 and config.delivery["backoff_max"] == 300.0  # table merged
    from kahooks.events.event import Event

    assert config.channels_for(Event.new("INSTANCE", "VI_1", "FAULT", 100, "t")) == ["log", "page"]


def test_a_problem_names_the_drop_in_and_its_line(tmp_path: Path) -> None:
    path = layout(tmp_path, **{"20-mail": '# mail\n\n[channels.mail]\ntype = "exec"\ncommand = ["true"]\ntimeout = "soon"\n'
                                          '[[rules]]\nchannels = ["mail", "nowhere"]\n'})
    fragment = tmp_path / "conf.d" / "20-mail.toml"
    with pytest.raises(ConfigError) as raised:
        load(path, channel_types())
    lines = raised.value.lines()
    assert any(line.startswith(f"{fragment}:6: channels.mail.timeout:") for line in lines), lines
    # rules[1] of the merged list is the fragment's first [[rules]], on its line 8
    assert any(line.startswith(f"{fragment}:8: rules[1].channels: no channel named 'nowhere'") for line in lines), lines


def test_a_broken_drop_in_is_named(tmp_path: Path) -> None:
    path = layout(tmp_path, bad="[channels.x\n")
    with pytest.raises(ConfigError) as raised:
        load(path, channel_types())
    assert raised.value.lines()[0].startswith(f"{tmp_path}/conf.d/bad.toml: syntax:")


def test_identity_changes_when_a_drop_in_comes_or_goes(tmp_path: Path) -> None:
    path = layout(tmp_path)
    before = fragments.identity(path)
    (tmp_path / "conf.d" / "x.toml").write_text("")
    added = fragments.identity(path)
    assert added != before
    (tmp_path / "conf.d" / "x.toml").unlink()
    assert fragments.identity(path) != added


def test_validate_lists_the_drop_ins(tmp_path: Path) -> None:
    path = layout(tmp_path, extra='[instances.VI_1]\nvips = ["192.0.2.1"]\n')
    done = subprocess.run([str(Path(sys.executable).parent / "kahooks"), "validate", "-c", path],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path} + {tmp_path}/conf.d/extra.toml: OK"), done.stdout
