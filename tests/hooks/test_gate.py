"""`kahooks doctor --gate`: the exit status Ansible's validate: and pre-commit act on, one line per error."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from tests.support.programs import run

SEEDS = Path(__file__).resolve().parents[1] / "doctor" / "seeds"
HOOKS = Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml"


def pair(tmp_path: Path, broken: bool) -> tuple[Path, Path]:
    """A real pair (seed 002); broken: weight -1 cannot beat the peer's priority, so it never fails over."""
    made = []
    for name in ("lb1", "lb2"):
        path = tmp_path / f"{name}.keepalived.conf"
        text = (SEEDS / f"002-{name}.conf").read_text()
        path.write_text(text.replace("weight 2", "weight -1") if broken else text)
        made.append(path)
    return made[0], made[1]


def test_a_broken_pair_is_refused_with_one_line_per_error(tmp_path: Path) -> None:
    lb1, lb2 = pair(tmp_path, broken=True)
    refused = run("kahooks", "doctor", "--gate", "--no-keepalived-test", str(lb1), "--peer", str(lb2))
    assert refused.code == 1 and refused.stdout == "", refused
    lines = refused.stderr.splitlines()
    assert lines[-1] == f"kahooks doctor: refused {lb1}: 1 error", lines
    assert re.fullmatch(rf"{re.escape(str(lb1))}:\d+: \[failover-never-happens\] .* \(fix: weight -2 .*\)", lines[0]), lines
    assert len(lines) == 2


def test_a_good_pair_is_accepted_silently(tmp_path: Path) -> None:
    lb1, lb2 = pair(tmp_path, broken=False)
    accepted = run("kahooks", "doctor", "--gate", "--no-keepalived-test", str(lb1), "--peer", str(lb2))
    assert (accepted.code, accepted.stdout, accepted.stderr) == (0, "", ""), accepted


def test_the_gate_is_pair_aware(tmp_path: Path) -> None:
    # Alone, the broken node's file has nothing to compare with: only its peer shows the failover never happens.
    lb1, lb2 = pair(tmp_path, broken=True)
    assert run("kahooks", "doctor", "--gate", "--no-keepalived-test", str(lb1)).code == 0
    assert run("kahooks", "doctor", "--gate", "--no-keepalived-test", "-f", str(lb1), "--peer", str(lb2)).code == 1


def test_every_file_is_gated_and_an_unreadable_one_is_one_line_exit_2(tmp_path: Path) -> None:
    good, _ = pair(tmp_path, broken=False)
    unclosed = tmp_path / "keepalived.conf"
    unclosed.write_text("vrrp_instance VI_1 {\n    priority 100\n")
    refused = run("kahooks", "doctor", "--gate", "--no-keepalived-test", str(good), str(unclosed), str(tmp_path / "no"))
    assert refused.code == 2, refused
    lines = refused.stderr.splitlines()
    assert len(lines) == 2 and refused.stdout == "", refused
    assert lines[0] == f"kahooks doctor: refused: {unclosed}:1: block 'vrrp_instance VI_1' is never closed"
    assert lines[1].startswith(f"kahooks doctor: refused: {tmp_path / 'no'}: cannot read"), lines


def test_file_arguments_need_the_gate() -> None:
    shown = run("kahooks", "doctor", "some.conf")
    assert shown.code == 2 and "FILE arguments go with --gate" in shown.stderr


def test_the_pre_commit_hooks_run_the_gate_on_the_files_they_match(tmp_path: Path) -> None:
    hooks = {hook["id"]: hook for hook in yaml.safe_load(HOOKS.read_text())}
    assert set(hooks) == {"kahooks-doctor", "kahooks-doctor-pair"}
    single = hooks["kahooks-doctor"]
    pattern = re.compile(single["files"])
    assert pattern.search("keepalived.conf") and pattern.search("lb1/keepalived.conf")
    assert pattern.search("site/keepalived-lb2.conf") and not pattern.search("haproxy.cfg")
    assert hooks["kahooks-doctor-pair"]["pass_filenames"] is False
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["entry"].startswith("kahooks doctor --gate")
    # As pre-commit runs them: the entry, then the matched files (or the pair's args).
    lb1, lb2 = pair(tmp_path, broken=True)
    words = shlex.split(single["entry"])
    assert "--elsewhere" in words
    assert run(*words, str(lb1), str(lb2)).code == 0  # each alone: nothing to compare with
    assert run(*shlex.split(hooks["kahooks-doctor-pair"]["entry"]), str(lb1), "--peer", str(lb2)).code == 1


def test_elsewhere_skips_what_only_the_node_can_tell(tmp_path: Path) -> None:
    # A config rendered for another machine names its scripts there: missing here is no error then.
    conf = tmp_path / "keepalived.conf"
    conf.write_text("vrrp_script chk {\n    script \"/nonexistent/ka-check-heartbeat /run/kahooks/heartbeat\"\n}\n"
                    "vrrp_instance VI_1 {\n    interface lo\n    virtual_router_id 51\n    priority 100\n"
                    "    virtual_ipaddress {\n        192.0.2.1\n    }\n    track_script {\n        chk\n    }\n}\n")
    here = run("kahooks", "doctor", "--gate", "--no-keepalived-test", str(conf))
    assert here.code == 1 and "[script-missing]" in here.stderr, here
    assert run("kahooks", "doctor", "--gate", "--elsewhere", str(conf)).code == 0
