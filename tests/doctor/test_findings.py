"""What the doctor finds in one node and between nodes: each finding by its stable code, where it is."""

from __future__ import annotations

import os
from pathlib import Path

from kahooks.doctor.report import diagnose

SEEDS = Path(__file__).parent / "seeds"


def codes(path: Path, *peers: Path) -> dict[str, list[str]]:
    """code -> the FILE:LINE of each finding with it."""
    found: dict[str, list[str]] = {}
    for item in diagnose(str(path), [str(peer) for peer in peers], "lb1", test_with_keepalived=False).findings:
        found.setdefault(item.code, []).append(f"{Path(item.file).name}:{item.line}")
    return found


def node(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def instance(priority: int, tracks: str = "", extra: str = "", vip: str = "192.0.2.10") -> str:
    return (f"vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n"
            f"    priority {priority}\n{extra}    virtual_ipaddress {{\n        {vip}\n    }}\n{tracks}}}\n")


def test_a_weight_too_small_to_move_the_vip_is_an_error_with_the_weight_that_would(tmp_path: Path) -> None:
    script = 'vrrp_script chk_haproxy {\n    script "/usr/bin/true"\n    interval 2\n    timeout 1\n    weight -30\n}\n'
    track = "    track_script {\n        chk_haproxy\n    }\n"
    lb1 = node(tmp_path, "lb1.conf", script + instance(150, track))
    lb2 = node(tmp_path, "lb2.conf", script + instance(100, track))
    report = diagnose(str(lb1), [str(lb2)], "lb1", test_with_keepalived=False)
    errors = [item for item in report.findings if item.code == "failover-never-happens"]
    assert len(errors) == 1 and errors[0].line == 16, errors  # the line tracking it
    assert "priority 150 -30 chk_haproxy = 120 >= " in errors[0].message and "lb2.conf's 100" in errors[0].message
    assert errors[0].fix.startswith("weight -51 on chk_haproxy")
    scenario = next(s for s in report.scenarios if s.node == str(lb1))
    assert scenario.master_after_failure is not None and scenario.master_after_failure.node.path == str(lb1)


def test_the_seeds_weak_checks_and_timeouts(tmp_path: Path) -> None:
    found = codes(SEEDS / "002-lb1.conf", SEEDS / "002-lb2.conf")
    assert found["weak-check-killall"] == ["002-lb1.conf:7", "002-lb2.conf:7"]
    assert found["script-relative-path"] == ["002-lb1.conf:7"]  # only this node's scripts are looked up here
    assert found["script-timeout"] == ["002-lb1.conf:6", "002-lb2.conf:6"]
    assert "failover-never-happens" not in found  # 101 vs 100+2: it does move


def test_equal_priorities_say_who_decides(tmp_path: Path) -> None:
    found = codes(SEEDS / "001-lb1.conf", SEEDS / "001-lb2.conf")
    assert found["equal-priority"] == ["001-lb2.conf:9"]


def test_script_security_unsafe_path_and_an_echoed_exit_code(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # another user could replace the script root runs
    check = shared / "check.sh"
    check.write_text("#!/bin/sh\npidof haproxy >/dev/null\necho $?\n")
    check.chmod(0o755)
    conf = node(tmp_path, "lb1.conf", "global_defs {\n    enable_script_security\n    script_user root\n}\n"
                f'vrrp_script chk {{\n    script "{check}"\n    interval 2\n    timeout 1\n}}\n'
                + instance(150, "    track_script {\n        chk\n    }\n"))
    found = codes(conf)
    assert found["script-unsafe-path"] == ["lb1.conf:6"]
    assert found["script-echoes-code"] == ["lb1.conf:6"]


def test_missing_programs_tracked_items_and_preemption(tmp_path: Path) -> None:
    conf = node(tmp_path, "lb1.conf", 'vrrp_script chk {\n    script "/nonexistent/check"\n    interval 2\n'
                "    timeout 1\n}\ntrack_file tf {\n    file /run/kahooks/track/x\n}\n"
                + instance(150, "    track_script {\n        chk\n        nothere\n    }\n    track_file {\n"
                           "        tf\n    }\n    notify /nonexistent/notify\n", "    nopreempt\n")
                .replace("state BACKUP", "state MASTER"))
    found = codes(conf)
    assert found["script-missing"] == ["lb1.conf:2"]
    assert found["track-file-no-init"] == ["lb1.conf:6"]
    assert found["track-file-weight-positive"] == ["lb1.conf:23"]  # default weight 1: a failure adds 1
    assert found["tracked-item-ignored"] == ["lb1.conf:20"]
    assert found["nopreempt-with-master"] == ["lb1.conf:14"]
    assert found["notify-missing"] == ["lb1.conf:25"]


def test_peers_that_disagree(tmp_path: Path) -> None:
    lb1 = node(tmp_path, "lb1.conf", instance(150, "    authentication {\n        auth_type PASS\n"
                                                   "        auth_pass one\n    }\n", "    advert_int 1\n"))
    lb2 = node(tmp_path, "lb2.conf", instance(100, "", "    advert_int 2\n", vip="192.0.2.11"))
    found = codes(lb1, lb2)
    assert found["peer-advert-int"] == ["lb2.conf:6"]
    assert found["peer-auth"] == ["lb2.conf:1"]  # lb2's instance has no authentication block
    assert found["peer-vips"] == ["lb2.conf:7"]


def test_two_instances_with_one_vrid_on_one_interface(tmp_path: Path) -> None:
    conf = node(tmp_path, "lb1.conf", instance(150) + instance(90, vip="192.0.2.11").replace("VI_1", "VI_2"))
    assert codes(conf)["duplicate-vrid"] == ["lb1.conf:13"]  # VI_2's virtual_router_id


def test_a_root_script_whose_interpreter_another_user_could_replace(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    os.chmod(tools, 0o777)
    interpreter = tools / "sh"
    interpreter.symlink_to("/bin/sh")
    safe = tmp_path / "safe"
    safe.mkdir()
    os.chmod(tmp_path, 0o755)
    check = safe / "check"
    check.write_text(f"#!{interpreter}\nexit 0\n")
    check.chmod(0o755)
    conf = node(tmp_path, "lb1.conf", "global_defs {\n    enable_script_security\n    script_user root\n}\n"
                f'vrrp_script chk {{\n    script "{check}"\n    interval 2\n    timeout 1\n}}\n'
                + instance(150, "    track_script {\n        chk\n    }\n"))
    report = diagnose(str(conf), [], "lb1", test_with_keepalived=False)
    unsafe = [item for item in report.findings if item.code == "script-unsafe-path"]
    assert len(unsafe) == 1 and "its interpreter's" in unsafe[0].message and str(tools) in unsafe[0].message


def test_the_address_owner_ignores_weighted_files_and_interfaces_as_keepalived_does(tmp_path: Path) -> None:
    conf = node(tmp_path, "lb1.conf", "track_file tf {\n    file /run/kahooks/track/tf\n    init_file 1\n}\n"
                + instance(255, "    track_file {\n        tf weight -60\n    }\n    track_interface {\n"
                           "        eth1 weight -10\n    }\n"))
    report = diagnose(str(conf), [], "lb1", test_with_keepalived=False)
    ignored = [item for item in report.findings if item.code == "tracked-item-ignored"]
    assert [(item.line, "address owner" in item.message and "owner" in item.fix) for item in ignored] == \
        [(14, True), (17, True)]  # the lines tracking them


def test_a_kahooks_checks_own_timeout_is_read_by_its_own_options() -> None:
    from kahooks.checks.base import DEFAULT_TIMEOUT
    from kahooks.doctor.findings import own_timeout

    assert own_timeout("/usr/local/bin/ka-check-http -t 2 http://127.0.0.1/") == 2.0
    assert own_timeout("/usr/local/bin/ka-check-http --timeout=0.5 'http://127.0.0.1/'") == 0.5
    assert own_timeout("/usr/local/bin/ka-check-process haproxy") == DEFAULT_TIMEOUT
    # After `--` the words are the command's own: its -t is not the check's.
    assert own_timeout("/usr/local/bin/ka-check-exec -- /usr/bin/probe -t 9") == DEFAULT_TIMEOUT
    # A command line the check refuses (it fails at once) or another program: keepalived's timeout bounds it.
    assert own_timeout("/usr/local/bin/ka-check-port -t nan 127.0.0.1:1") is None
    assert own_timeout("/usr/bin/curl -t 3 http://127.0.0.1/") is None
