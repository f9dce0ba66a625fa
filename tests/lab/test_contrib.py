"""The shipped keepalived.conf examples are accepted by real keepalived (`keepalived -t`) in a lab node."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from kahooks.lab.install import ensure_installed
from kahooks.lab.netns import Network

pytestmark = pytest.mark.root
CHECKOUT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((CHECKOUT / "contrib" / "keepalived").glob("*.conf"))


def as_installed(example: Path, lab_bin: Path, work: Path) -> str:
    """The example as a node has it once installed: the programs are the lab's (the docs put them in
    /usr/local/bin), and /run/kahooks/track exists (the package's tmpfiles.d, or kahooks serve, ordered
    before keepalived, makes it). keepalived 2.3.3 refuses a track_file whose folder is missing (realpath
    fails: "track file not found, ignoring", exit 5 from -t); 2.2.7 said nothing. Here /run/kahooks is a
    folder of the test's, so this machine's /run is left alone."""
    run = work / "run-kahooks"
    (run / "track").mkdir(parents=True, exist_ok=True)
    os.chmod(run, 0o755)
    return example.read_text().replace("/usr/local/bin/", f"{lab_bin}/").replace("/run/kahooks/", f"{run}/")


def test_every_example_passes_keepalived_config_test() -> None:
    assert len(EXAMPLES) >= 3
    lab_bin = ensure_installed(CHECKOUT)
    work = Path(tempfile.mkdtemp(prefix="kahooks-contrib-test-"))
    os.chmod(work, 0o755)
    with Network("khlconf") as net:
        node = net.add_node("lb", 11)  # its own pid namespace: `keepalived -t` in ours ends by SIGTERM
        net.add_link("lb")  # eth1, which the haproxy example tracks
        for example in EXAMPLES:
            conf = work / example.name
            conf.write_text(as_installed(example, lab_bin, work))
            result = node.run(["keepalived", "-t", "-f", str(conf)], check=False)
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{example.name}: {output}"
            for warning in ("Unsafe permissions", "not found", "doesn't exist", "Disabling"):
                assert warning not in output, f"{example.name}: {output}"


def test_the_doctor_finds_no_error_in_any_example_nor_in_the_pair_it_makes(tmp_path: Path) -> None:
    """The examples are what the README tells people to copy: the doctor must pass them, each node
    alone and with its peer (the same file at priority 100, as their comments say)."""
    import json
    import subprocess

    lab_bin = ensure_installed(CHECKOUT)
    work = Path(tempfile.mkdtemp(prefix="kahooks-contrib-doctor-"))
    for example in EXAMPLES:
        conf = work / example.name
        conf.write_text(as_installed(example, lab_bin, work))
        peer = work / f"peer-{example.name}"
        peer.write_text(conf.read_text().replace("priority 150", "priority 100"))
        for args in ([str(conf)], [str(conf), "--peer", str(peer)]):
            result = subprocess.run([str(lab_bin / "kahooks"), "doctor", "--json", "-f", *args],
                                    capture_output=True, text=True, timeout=60)
            errors = [item for item in json.loads(result.stdout)["findings"] if item["severity"] == "error"]
            assert result.returncode == 0 and errors == [], (example.name, errors, result.stderr)
