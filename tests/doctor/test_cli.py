"""`kahooks doctor` as an operator runs it: exit status, one-line errors, text and the documented JSON."""

from __future__ import annotations

import json
import pwd
from pathlib import Path

from tests.support.programs import run

SEEDS = Path(__file__).parent / "seeds"


def test_json_has_the_documented_shape_and_exit_1_on_errors(tmp_path: Path) -> None:
    lb1 = tmp_path / "lb1.conf"
    lb1.write_text((SEEDS / "002-lb1.conf").read_text().replace("weight 2", "weight -1"))
    lb2 = tmp_path / "lb2.conf"
    lb2.write_text((SEEDS / "002-lb2.conf").read_text().replace("weight 2", "weight -1"))
    outcome = run("kahooks", "doctor", "-f", str(lb1), "--peer", str(lb2), "--json", "--no-keepalived-test")
    assert outcome.code == 1, outcome
    report = json.loads(outcome.stdout)
    assert set(report) == {"findings", "scenarios", "keepalived"}
    assert report["keepalived"]["modelled"] in ("2.2.7", "2.3.3") and report["keepalived"]["source"]
    for item in report["findings"]:
        assert set(item) == {"code", "severity", "file", "line", "message", "fix"}
        assert item["severity"] in ("error", "warning", "hint") and isinstance(item["line"], int)
    error = next(item for item in report["findings"] if item["code"] == "failover-never-happens")
    assert error["file"] == str(lb1) and "= 100 >=" in error["message"] and error["fix"].startswith("weight -2")
    mine = [scenario for scenario in report["scenarios"] if scenario["node"] == str(lb1)]
    assert mine == [{"node": str(lb1), "instance": "router37", "fails": "check_haproxy", "tracked_as": "script",
                     "master_before": str(lb1), "master_after_failure": str(lb1), "failover_s": None,
                     "failover_min_s": None, "failover_max_s": None, "master_after_recovery": str(lb1)}]


def test_text_groups_by_severity_without_colour_off_a_terminal_and_exits_0_without_errors() -> None:
    outcome = run("kahooks", "doctor", "-f", str(SEEDS / "002-lb1.conf"), "--peer", str(SEEDS / "002-lb2.conf"),
                  "--no-keepalived-test")
    assert outcome.code == 0, outcome
    assert "\033[" not in outcome.stdout
    text = outcome.stdout
    assert text.index("WARNINGS (") < text.index("HINTS (") < text.index("IF A TRACKED ITEM FAILS")
    assert "check_haproxy (script) fails on " in text and "moves to " in text and "within 5.602 s" in text
    # With no script_user, keepalived runs the scripts as keepalived_script when that user exists and as
    # root when not: then each node also gets script-security-off (a fresh machine has no such user).
    try:
        pwd.getpwnam("keepalived_script")
        as_root = False
    except KeyError:
        as_root = True
    assert ("[script-security-off]" in text) is as_root
    assert text.rstrip().endswith(f"2 nodes: 0 errors, {7 if as_root else 5} warnings, 2 hints")


def test_the_modelled_version_is_said_and_can_be_chosen(tmp_path: Path) -> None:
    """--keepalived-version picks the rules; text and JSON say which keepalived was modelled."""
    conf = tmp_path / "lb1.conf"
    conf.write_text('vrrp_script chk {\n    script "/bin/true"\n    interval 0.5\n    weight -60\n}\n'
                    "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 150\n"
                    "    virtual_ipaddress {\n        192.0.2.10\n    }\n    track_script {\n        chk\n    }\n}\n")
    old = run("kahooks", "doctor", "-f", str(conf), "--no-keepalived-test", "--keepalived-version", "2.2.7")
    assert "MODELLED: keepalived 2.2.7's rules, from --keepalived-version" in old.stdout, old
    assert "[keepalived-timer-rounded]" in old.stdout and "vrrp_vscript_interval_handler" in old.stdout
    new = run("kahooks", "doctor", "-f", str(conf), "--no-keepalived-test", "--keepalived-version", "2.3.3", "--json")
    report = json.loads(new.stdout)
    assert report["keepalived"] == {"modelled": "2.3.3", "found": "2.3.3", "source": "--keepalived-version"}
    assert not [item for item in report["findings"] if item["code"] == "keepalived-timer-rounded"]
    wrong = run("kahooks", "doctor", "-f", str(conf), "--keepalived-version", "2.4.0")
    assert wrong.code == 2 and "2.4.0" in wrong.stderr
    bad_value = run("kahooks", "doctor", "-f", str(conf), "--file-value", "tf=1e300")
    assert bad_value.code == 2 and "--file-value" in bad_value.stderr and "Traceback" not in bad_value.stderr


def test_a_file_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = run("kahooks", "doctor", "-f", str(tmp_path / "nope.conf"))
    assert missing.code == 2 and missing.stdout == "" and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith(f"kahooks doctor: {tmp_path / 'nope.conf'}: cannot read")
    broken = tmp_path / "broken.conf"
    broken.write_text("vrrp_instance VI_1 {\n    priority 100\n")
    unclosed = run("kahooks", "doctor", "-f", str(broken), "--no-keepalived-test")
    assert unclosed.code == 2 and unclosed.stderr == f"kahooks doctor: {broken}:1: block 'vrrp_instance VI_1' is never closed\n"
    assert "Traceback" not in missing.stderr + unclosed.stderr
