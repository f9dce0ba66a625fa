"""The keepalived.conf reader reads what keepalived reads, and says FILE:LINE when it cannot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kahooks.doctor.conf import ConfError, decomment, read


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("line, kept", [
    ("priority 100 # the MASTER", "priority 100"),
    ("priority 100 ! old style", "priority 100"),
    ('script "/bin/echo #not a comment"', 'script "/bin/echo #not a comment"'),
    ("auth_pass se\\#cret", "auth_pass se#cret"),
    ("   # whole line", ""),
])
def test_comments_as_keepalived_strips_them(line: str, kept: str) -> None:
    assert decomment(line) == kept


def test_blocks_quotes_and_one_line_blocks(tmp_path: Path) -> None:
    conf = write(tmp_path / "keepalived.conf", """vrrp_script chk { script "/usr/bin/test -e '/run/a b'"
    interval 2 }
vrrp_instance VI_1
{
    virtual_ipaddress { 192.0.2.1/24 dev eth0 }
    priority 150
}
""")
    document = read(str(conf), config_id="lb1")
    script, instance = document.statements
    assert script.words == ["vrrp_script", "chk"] and script.line == 1
    assert script.first("script").args == ["/usr/bin/test -e '/run/a b'"]
    assert script.value("interval") == "2"
    assert instance.words == ["vrrp_instance", "VI_1"] and instance.value("priority") == "150"
    assert instance.first("virtual_ipaddress").children[0].words == ["192.0.2.1/24", "dev", "eth0"]
    assert instance.first("priority").where == f"{conf}:6"


def test_includes_are_globs_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "10-a.conf", "vrrp_script a {\n    interval 1\n}\n")
    write(tmp_path / "conf.d" / "20-b.conf", "vrrp_script b {\n    interval 1\n}\n")
    main = write(tmp_path / "keepalived.conf", "include conf.d/*.conf\ninclude missing/*.conf\n")
    document = read(str(main), config_id="lb1")
    assert [statement.args[0] for statement in document.statements] == ["a", "b"]
    assert document.statements[1].file == str(tmp_path / "conf.d" / "20-b.conf") and document.statements[1].line == 1
    assert any("matches no file" in note for _, _, note in document.notes)


def test_definitions_and_conditional_lines(tmp_path: Path) -> None:
    conf = write(tmp_path / "keepalived.conf", """$PRIO=150
$IFACE = eth1
vrrp_instance VI_1 {
    interface $IFACE
    @lb1 priority $PRIO
    @lb2 priority 100
    @^lb1 nopreempt
    virtual_router_id ${PRIO}
}
""")
    lb1 = read(str(conf), config_id="lb1").statements[0]
    assert lb1.value("interface") == "eth1" and lb1.value("priority") == "150" and not lb1.has("nopreempt")
    assert lb1.value("virtual_router_id") == "150"
    lb2 = read(str(conf), config_id="lb2").statements[0]
    assert lb2.value("priority") == "100" and lb2.has("nopreempt")


@pytest.mark.parametrize("text, line, message", [
    ("vrrp_instance VI_1 {\n    priority 100\n", 1, "never closed"),
    ("vrrp_instance VI_1 {\n}\n}\n", 3, "'}' without a block"),
    ('vrrp_script a {\n    script "/bin/true\n}\n', 2, "unterminated quote"),
])
def test_what_keepalived_cannot_read_is_one_line_with_file_and_line(tmp_path: Path, text: str, line: int,
                                                                      message: str) -> None:
    conf = write(tmp_path / "keepalived.conf", text)
    with pytest.raises(ConfError) as caught:
        read(str(conf))
    assert str(caught.value).startswith(f"{conf}:{line}: ") and message in str(caught.value)


def test_a_missing_file_and_an_include_loop(tmp_path: Path) -> None:
    with pytest.raises(ConfError, match="cannot read"):
        read(str(tmp_path / "nope.conf"))
    loop = write(tmp_path / "loop.conf", "include loop.conf\n")
    with pytest.raises(ConfError, match="nested more than"):
        read(str(loop))


def test_long_lines_and_many_quotes_are_read_in_linear_time(tmp_path: Path) -> None:
    """The tokenizer and decomment are one pass each: a 1 MB word and 100k quotes take well under a second."""
    path = tmp_path / "keepalived.conf"
    path.write_text("global_defs {\n    router_id " + "x" * 1_000_000 + "\n    notify_fifo " + '""' * 50_000
                    + "\n}\n" + "# " + '"' * 100_001 + "\n")
    started = time.monotonic()
    document = read(str(path), "node")
    assert time.monotonic() - started < 5
    assert len(document.statements[0].children[0].args[0]) == 1_000_000  # type: ignore[index]
