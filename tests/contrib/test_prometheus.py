"""contrib/prometheus: the alert rules' unit tests (promtool), and a real Prometheus scraping a real
`kahooks serve`, whose rules fire for a real failed check and an instance with no MASTER."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from kahooks.lab.netns import free_port, wait_for
from tests.support.prometheus import PROMETHEUS, PROMTOOL, Prometheus
from tests.support.serve import Served, head, write_fifo

pytestmark = pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="prometheus is not installed "
                                "(./run test installs it)")
CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    checked = subprocess.run([PROMTOOL, "check", "rules", str(CONTRIB / "kahooks-rules.yml")], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", "kahooks-rules.test.yml"], cwd=CONTRIB, capture_output=True,
                            text=True)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_a_real_prometheus_scrapes_kahooks_serve_and_the_rules_fire(tmp_path: Path) -> None:
    metrics_port = free_port()
    config = head(tmp_path, f'metrics_listen = "127.0.0.1:{metrics_port}"\n'
                            f'notify_fifo = "{tmp_path}/state/notify.fifo"\n').replace(
        "[delivery]\n", "[delivery]\nmax_attempts = 2\nbackoff_max = 0.2\n") + f"""
[checks.refused]
run = "ka-check-port 127.0.0.1:{free_port()}"
interval = 0.2

[channels.fine]
type = "exec"
command = ["/bin/true"]

[channels.broken]
type = "exec"
command = ["/bin/false"]

[[rules]]
channels = ["fine", "broken"]
"""
    # The timing of each rule is promtool's to test (above); here every `for:` is one second, so that
    # what is checked is the wiring: the names, labels and values the rules read are what is scraped.
    rules = re.sub(r"\bfor: \S+", "for: 1s", (CONTRIB / "kahooks-rules.yml").read_text())
    prometheus_config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [kahooks-rules.yml]
scrape_configs:
  - job_name: kahooks
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
        labels: {{cluster: lab}}
"""
    with Served(tmp_path, config) as served:
        served.wait_track("refused", "1")
        prometheus = Prometheus(prometheus_config, {"kahooks-rules.yml": rules})
        try:
            # The transition (and the dead letter it makes) after Prometheus has seen the spool empty:
            # "dead letters growing" is a change between scrapes.
            wait_for(lambda: prometheus.query('kahooks_spool_incoming{job="kahooks"}'), 30, "a first scrape")
            write_fifo(served.state / "notify.fifo", ['INSTANCE "VI_1" BACKUP 100'])
            def firing() -> dict[str, dict]:
                return {alert["labels"]["alertname"]: alert["labels"] for alert in prometheus.alerts()
                        if alert["state"] == "firing"}

            wait_for(lambda: {"KahooksCheckFailing", "KeepalivedNoMaster", "KahooksDeadLettersGrowing"} <= set(firing()),
                     60, "the failed check's, the MASTER-less instance's and the dead letters' alerts to fire")
            alerts = firing()
            assert alerts["KahooksCheckFailing"]["check"] == "refused"
            assert alerts["KahooksCheckFailing"]["instance"] == f"127.0.0.1:{metrics_port}"
            assert (alerts["KeepalivedNoMaster"]["cluster"], alerts["KeepalivedNoMaster"]["iname"]) == ("lab", "VI_1")
            assert alerts["KahooksDeadLettersGrowing"]["channel"] == "broken"
            assert "KahooksHeartbeatStale" not in alerts and "KahooksDown" not in alerts
            check_the_dashboard_against(prometheus)
            # Once the instance is MASTER, the no-master alert ends.
            write_fifo(served.state / "notify.fifo", ['INSTANCE "VI_1" MASTER 100'])
            wait_for(lambda: "KeepalivedNoMaster" not in firing(), 30, "the no-master alert to end")
        finally:
            prometheus.stop()


def check_the_dashboard_against(prometheus: Prometheus) -> None:
    """Every query of the Grafana dashboard runs, and every kahooks metric it names was really scraped."""
    import json

    dashboard = json.loads((CONTRIB.parent / "grafana" / "kahooks-fleet.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(expressions) >= 9
    scraped = {row["metric"]["__name__"] for row in prometheus.query('{job="kahooks"}')}
    for expression in expressions:
        for name in re.findall(r"\bkahooks_[a-z_]+", expression):
            assert name in scraped, (name, sorted(scraped))
        runnable = expression.replace("$__rate_interval", "1m").replace("$cluster", ".*")
        prometheus.query(runnable)  # raises on a query Prometheus refuses (HTTP 400)
    populated = [expression for expression in expressions
                 if prometheus.query(expression.replace("$__rate_interval", "1m").replace("$cluster", ".*"))]
    assert len(populated) == len(expressions), set(expressions) - set(populated)
