"""--help, man pages and completion: all rendered from the programs' own option specs, for every program."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from kahooks.hooks import manual
from tests.support.programs import run

PROGRAMS = sorted(entry.name for entry in metadata.distribution("kahooks").entry_points if entry.group == "console_scripts")


def spec_names(page: manual.Program) -> set[str]:
    names = {name for opt in page.flags for name in opt.names}
    for command in page.commands:
        names |= spec_names(command)
    return names


def test_there_is_a_page_for_every_installed_program() -> None:
    assert sorted(page.name for page in manual.programs()) == PROGRAMS


@pytest.mark.parametrize("name", PROGRAMS)
def test_help_has_description_examples_and_exit_status(name: str) -> None:
    shown = run(name, "--help")
    assert shown.code == 0 and not shown.stderr, shown
    for section in ("description:", "examples:", "exit status:"):
        assert section in shown.stdout, (section, shown.stdout)
    page = manual.program(name)
    top_level = {name for opt in page.flags for name in opt.names}
    for option in top_level:
        assert option in shown.stdout, option
    version = run(name, "-V")
    assert version.code == 0 and version.stdout == f"{name} (kahooks) {metadata.version('kahooks')}\n", version


@pytest.mark.parametrize("name", PROGRAMS)
def test_the_man_page_renders_cleanly_and_lists_every_option(name: str, tmp_path: Path) -> None:
    assert subprocess.run([sys.executable, "-P", "-m", "kahooks.hooks.manual", "man", str(tmp_path)]).returncode == 0
    page = tmp_path / f"{name}.1"
    warnings = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True,
                              env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"})
    assert warnings.returncode == 0 and not warnings.stderr, warnings.stderr
    text = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                          env={"MANWIDTH": "200", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin", "MAN_KEEP_FORMATTING": ""},
                          ).stdout
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{heading}\n" in text, heading
    for option in spec_names(manual.program(name)):
        assert option in text.replace("\u2010", "-"), option  # man may hyphenate: U+2010


def complete(tmp_path: Path, program: str, line: str) -> list[str]:
    """What bash completes for `line` (the last word being typed), with the generated completion file."""
    directory = tmp_path / "bash"
    if not directory.exists():
        assert subprocess.run([sys.executable, "-P", "-m", "kahooks.hooks.manual", "bash", str(directory)]).returncode == 0
    words = line.split(" ")
    script = (f"source {directory / program}\n"
              f"COMP_WORDS=({' '.join(repr(word) for word in words)}); COMP_CWORD={len(words) - 1}\n"
              f"_kahooks_{program.replace('-', '_')}\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    done = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, cwd=tmp_path / "files")
    assert done.returncode == 0 and not done.stderr, done.stderr
    return [word for word in done.stdout.splitlines() if word]


def test_bash_completes_options_subcommands_choices_and_files(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "kahooks.toml").write_text("")
    (tmp_path / "files" / "ca.pem").write_text("")
    assert complete(tmp_path, "ka-check-port", "ka-check-port --ti") == ["--timeout"]
    assert complete(tmp_path, "ka-check-port", "ka-check-port --tls --ca c") == ["ca.pem"]
    assert complete(tmp_path, "ka-check-port", "ka-check-port -t ") == []  # a number: nothing to offer
    assert complete(tmp_path, "ka-check-http", "ka-check-http --fol") == ["--follow"]
    assert complete(tmp_path, "ka-notify", "ka-notify re") == ["retry-dead"]
    assert complete(tmp_path, "ka-notify", "ka-notify -c k") == ["kahooks.toml"]
    assert complete(tmp_path, "kahooks", "kahooks s") == ["serve", "status"]
    assert complete(tmp_path, "kahooks", "kahooks lab d") == ["demo", "diff", "down"]
    assert complete(tmp_path, "kahooks", "kahooks validate -c k") == ["kahooks.toml"]
    assert complete(tmp_path, "kahooks", "kahooks serve --log-format j") == ["json"]
    assert "--peer" in complete(tmp_path, "kahooks", "kahooks doctor --p")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (./run test installs it)")
def test_zsh_completion_parses_and_registers_every_program(tmp_path: Path) -> None:
    assert subprocess.run([sys.executable, "-P", "-m", "kahooks.hooks.manual", "zsh", str(tmp_path)]).returncode == 0
    assert subprocess.run(["zsh", "-n", str(tmp_path / "_kahooks")], capture_output=True).returncode == 0
    script = (f"fpath=({tmp_path} $fpath); autoload -U compinit; compinit -u -d {tmp_path}/dump; "
              "for p in " + " ".join(PROGRAMS) + "; do print -r -- \"$p=$_comps[$p]\"; done")
    done = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"{name}=_kahooks" for name in PROGRAMS], done.stdout
