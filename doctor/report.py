"""Put the doctor together: read the nodes, collect findings and scenarios, print text or JSON.

The JSON shape is documented in the README and kept stable:
{"findings": [{"code", "severity", "file", "line", "message", "fix"}],
 "scenarios": [{"node", "instance", "fails", "master_after_failure", "failover_s", "master_after_recovery", ...}]}
(scenarios also carry tracked_as, master_before, failover_min_s and failover_max_s; a holder is a path,
null (nobody) or "undecided" (equal priorities: the first keepalived to start wins, which no file says;
then undecided_between, undecided_why and if_master_before {path: the outcome if it holds it first});
with --live, "live" and "wire" (what kahooks serve's wire observer hears, from its status; null when it
could not be read);
"keepalived": {"modelled", "found", "source"} says which keepalived's rules made the predictions).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from kahooks.doctor import conf, election, findings, peers, running, versions
from kahooks.doctor.findings import SEVERITIES, Finding
from kahooks.doctor.model import Node, build
from kahooks.errors import KahooksError, os_words
from kahooks.system import reality


@dataclass
class Report:
    nodes: list[Node]
    findings: list[Finding]
    scenarios: list[election.Scenario]
    live: list[dict] = field(default_factory=list)
    # --live: the wire's view, given by the caller from kahooks serve's status (the doctor imports no daemon).
    wire: dict | None = None
    wire_lines: list[str] = field(default_factory=list)
    version: versions.Version = versions.Version(versions.DEFAULT, None, "the default")

    @property
    def errors(self) -> int:
        return sum(1 for item in self.findings if item.severity == "error")

    def as_json(self) -> dict:
        out: dict = {"findings": [item.as_json() for item in self.findings],
                     "scenarios": [scenario.as_json() for scenario in self.scenarios],
                     "keepalived": self.version.as_json()}
        if self.live:
            out["live"] = self.live
        if self.wire_lines:
            out["wire"] = self.wire
        return out


def diagnose(path: str, peer_paths: list[str], config_id: str | None = None, test_with_keepalived: bool = True,
             version: versions.Version | None = None, file_values: dict[str, int] | None = None,
             on_this_host: bool = True) -> Report:
    """Everything the doctor knows about `path` and its peers, as keepalived `version` (default: the local
    one) makes them; `file_values`: what each track file holds while failed. on_this_host=False: `path` is
    another machine's too (a controller's or CI's rendered copy). conf.ConfError when a file cannot be read."""
    version = version or versions.local()
    nodes = [build(conf.read(candidate, config_id), candidate, version.rules, file_values)
             for candidate in [path, *peer_paths]]
    found: list[Finding] = []
    for index, node in enumerate(nodes):
        here = index == 0 and on_this_host  # the peers' scripts live on other machines
        found.extend(findings.check_numbers(node))
        found.extend(findings.check_surprises(node))
        found.extend(findings.check_scripts(node, here))
        found.extend(findings.check_tracking_and_notify(node, here))
        found.extend(peers.check_vrids(node))
        found.extend(Finding("conf-note", "hint", file, line, note, "") for file, line, note in node.document.notes)
    found.extend(peers.check_agreement(nodes))
    scenarios = election.simulate(nodes)
    found.extend(peers.check_failover(nodes, scenarios))
    if test_with_keepalived:
        found.extend(running.config_test(path) or [])
    order = {severity: rank for rank, severity in enumerate(SEVERITIES)}
    found = sorted(set(found), key=lambda item: (order[item.severity], item.file, item.line, item.code))
    return Report(nodes, found, scenarios, version=version)


def add_live(report: Report) -> None:
    """--live: keepalived's own view of this node, and what contradicts the addresses really here."""
    node = report.nodes[0]
    try:
        instances = running.live_state()
        here = reality.addresses_here()
    except (OSError, ValueError, KahooksError) as exc:
        report.findings.append(Finding("live-unavailable", "warning", node.path, 0,
                                       f"cannot ask the running keepalived: {os_words(exc)}",
                                       "run as root where keepalived runs"))
        return
    for instance in instances:
        holding = sorted(reality.vips_present(instance.vips, here))
        report.live.append({"instance": instance.name, "state": instance.state, "priority": instance.effective_priority,
                            "base_priority": instance.base_priority, "vips_here": holding,
                            "track_scripts": instance.track_scripts})
        configured = next((item for item in node.instances if item.name == instance.name), None)
        # An instance the file does not name (keepalived runs another configuration): the file itself.
        where = configured.where if configured is not None else Finding("", "", node.path, 0, "", "")
        if instance.state == "MASTER" and instance.vips and not holding:
            report.findings.append(findings.finding("live-master-without-vip", "error", where,
                                                    f"{instance.name} is MASTER but none of {instance.vips} is on an "
                                                    f"interface here", "check `ip addr` and keepalived's log"))
        if instance.state != "MASTER" and holding:
            report.findings.append(findings.finding("live-vip-without-master", "error", where,
                                                    f"{instance.name} is {instance.state} but {', '.join(holding)} is "
                                                    f"on an interface here: two nodes may answer for it",
                                                    "remove the address by hand; check for a second keepalived"))


def paint(text: str, severity: str, colour: bool) -> str:
    codes = {"error": "31;1", "warning": "33", "hint": "36"}
    return f"\033[{codes[severity]}m{text}\033[0m" if colour else text


def render_text(report: Report, colour: bool | None = None) -> str:
    colour = sys.stdout.isatty() if colour is None else colour
    lines: list[str] = []
    for severity in SEVERITIES:
        chosen = [item for item in report.findings if item.severity == severity]
        if not chosen:
            continue
        lines.append(paint(f"{severity.upper()}S ({len(chosen)})", severity, colour))
        for item in chosen:
            place = f"{item.file}:{item.line}" if item.line else item.file
            lines.append(f"  {place}: [{item.code}] {item.message}")
            if item.fix:
                lines.append(f"      fix: {item.fix}")
        lines.append("")
    if report.scenarios:
        lines.append("IF A TRACKED ITEM FAILS")
        for scenario in report.scenarios:
            after = peers.describe(scenario.master_after_failure)
            if len(report.nodes) == 1 and scenario.master_after_failure is None:
                after = "no node it knows of (FAULT here; give --peer OTHER.conf to see who takes it)"
            timing = (f" within {scenario.failover_s:g} s (at best {scenario.failover_min_s:g} s)"
                      if scenario.failover_s is not None else "")
            if scenario.master_before is None:
                moved = "goes to"  # nobody was MASTER before (every node in FAULT)
            elif isinstance(scenario.master_before, election.Undecided):
                moved = f"(held first by {peers.describe(scenario.master_before)}: {scenario.master_before.why}) goes to"
            else:
                moved = "moves to" if scenario.master_after_failure != scenario.master_before else "stays with"
            lines.append(f"  {scenario.fails} ({scenario.kind}) fails on {scenario.node}: {scenario.instance} "
                         f"{moved} {after}{timing}; once it recovers: {peers.describe(scenario.master_after_recovery)}")
            for path, branch in scenario.branches.items():
                timing = f" within {branch.failover_max_s:g} s" if branch.failover_max_s is not None else ""
                lines.append(f"    if {path} holds it first: {peers.describe(branch.master_after_failure)}{timing}; "
                             f"once it recovers: {peers.describe(branch.master_after_recovery)}")
        lines.append("")
    for entry in report.live:
        lines.append(f"LIVE {entry['instance']}: {entry['state']}, priority {entry['priority']} "
                     f"(base {entry['base_priority']}), VIPs here: {', '.join(entry['vips_here']) or 'none'}")
    if report.wire_lines:
        lines.extend([*report.wire_lines, ""])
    lines.append(f"MODELLED: {report.version.describe()}")
    counts = {severity: sum(1 for item in report.findings if item.severity == severity) for severity in SEVERITIES}
    lines.append(f"{len(report.nodes)} node{'s' if len(report.nodes) != 1 else ''}: {counts['error']} errors, "
                 f"{counts['warning']} warnings, {counts['hint']} hints")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=1)
