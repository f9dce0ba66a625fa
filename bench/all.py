"""Every row of issue 26's table in one run, each beside its reference measured in the same run.

The rows (bench/rows.py) and what measures them, with smaller counts than each bench's own default
so that the whole run stays within a few minutes (printed with each row):
- check start-up per kind against a minimal stdlib script doing the same probe (bench/checks.py);
- `ka-notify`'s return p90 against bench/notify_reference.py, in turn (bench/notify.py);
- process death -> track file renamed into place, inotify-timed (bench/daemon.py);
- the daemon's /metrics render with 50 checks and 20 instances, against prometheus_client's
  generate_latest on the same families (bench/fleet.py's daemon part);
- a FIFO line -> the exec channel started in `kahooks serve`, beside the argv handler's return
  measured above (bench/notify.py);
- 500 checks and 100 VRRP instances against 10 checks (bench/scale.py).
Then a summary with each target and met/MISSED; `--markdown` prints that summary as the table the
README embeds. Run with `./run bench all [--markdown]` as root (the wire observer's packet sockets).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.benches import sibling

HERE = Path(__file__).parent
# Counts for this run: each bench's own defaults are larger (in brackets), the whole run here stays short.
COUNTS = {"checks_runs": 15, "notify_runs": 60, "kills": 60, "metrics_seconds": 5.0, "fifo_lines": 60,
          "scale_trials": 20, "scale_seconds": 8.0}
DEFAULTS = {"checks_runs": 40, "notify_runs": 200, "kills": 200, "metrics_seconds": 20, "fifo_lines": 100,
            "scale_trials": 50, "scale_seconds": 20}


rows = sibling("rows")
checks, notify, daemon, fleet, scale = (sibling(name) for name in ("checks", "notify", "daemon", "fleet", "scale"))
percentile = daemon.percentile
Result = tuple[str, str, bool]  # measured, reference, met


def startup(runs: int) -> Result:
    services = checks.Services()
    try:
        kinds = [(group, label, argv) for group, label, argv in checks.cases(services)
                 if label == "stdlib probe" or (label.startswith("ka-check") and "--" not in label)]
        measured = checks.measure_in_turn([argv for _, _, argv in kinds], runs)
    finally:
        services.close()
    walls = {(group, label.startswith("ka-check")): wall for (group, label, _), (wall, _, _) in zip(kinds, measured)}
    ratios = {group: walls[group, True] / walls[group, False] for group, kahooks in walls if kahooks}
    print(f"check start-up, median wall of {runs} fresh processes each, rows in turn:")
    for group, ratio in ratios.items():
        print(f"   {group:<8} ka-check {walls[group, True]:6.1f} ms   stdlib probe {walls[group, False]:6.1f} ms   "
              f"{ratio:.2f}x")
    return (", ".join(f"{group} {ratio:.2f}x" for group, ratio in ratios.items()),
            ", ".join(f"{group} {walls[group, False]:.1f} ms" for group in ratios),
            all(ratio <= checks.TARGET_RATIO for ratio in ratios.values()))


def handler(work: Path, runs: int) -> tuple[Result, list[float]]:
    config = work / "kahooks.toml"
    config.write_text(f'spool_dir = "{work / "spool"}"\n[delivery]\nflap_window = 0\n'
                      '[channels.run]\ntype = "exec"\ncommand = ["true"]\n'
                      '[[rules]]\ninstances = ["VI_1"]\nchannels = ["run"]\n')
    try:
        notify.handler(config, "BACKUP")  # starts the worker and validates the config once
        paired = notify.handler_and_reference(config, work / "reference-spool", runs)
    finally:
        notify.kill_mentioning(str(work))  # the delivery worker
    walls = {what: [wall for wall, _ in pairs] for what, pairs in paired.items()}
    ratio = percentile(walls["handler"], 0.9) / percentile(walls["reference"], 0.9)
    print(f"ka-notify handler return, {runs} runs in turn with the stdlib recorder:")
    for what in ("handler", "reference"):
        print(f"   {what:<9} p50 {statistics.median(walls[what]):6.1f} ms   p90 {percentile(walls[what], 0.9):6.1f} ms"
              f"   p99 {percentile(walls[what], 0.99):6.1f} ms")
    return ((f"p90 {percentile(walls['handler'], 0.9):.1f} ms, {ratio:.2f}x",
             f"p90 {percentile(walls['reference'], 0.9):.1f} ms", ratio <= 1.3), walls["handler"])


def death(work: Path, kills: int) -> Result:
    milli = [value * 1000 for value in daemon.death_to_track_file(work, kills)]
    print(f"process death -> track file, {kills} kills: p50 {statistics.median(milli):.2f} ms   "
          f"p99 {percentile(milli, 0.99):.2f} ms   max {max(milli):.2f} ms")
    return (f"p50 {statistics.median(milli):.2f} ms, p99 {percentile(milli, 0.99):.2f} ms",
            "keepalived polling ka-check-process at interval 1: 0-1000 ms", percentile(milli, 0.99) <= 2)


def metrics(seconds: float) -> Result:
    found = fleet.daemon(seconds)
    return (f"p50 {found['render_p50']:.2f} ms, p99 {found['render_p99']:.2f} ms (its thread's CPU p99 "
            f"{found['cpu_p99']:.2f} ms)",
            f"prometheus_client generate_latest p99 {found['reference_p99']:.2f} ms", found["render_p99"] <= 2)


def fifo(work: Path, lines: int, handler_walls: list[float]) -> Result:
    work.mkdir()
    timings = notify.fifo_to_exec(work, lines)
    print(f"FIFO line -> exec channel started, {lines} lines: p50 {statistics.median(timings):.1f} ms   "
          f"p99 {percentile(timings, 0.99):.1f} ms")
    return (f"p50 {statistics.median(timings):.1f} ms, p99 {percentile(timings, 0.99):.1f} ms",
            f"argv handler return p99 {percentile(handler_walls, 0.99):.1f} ms", percentile(timings, 0.99) <= 10)


def at_scale(trials: int, seconds: float) -> Result:
    results = scale.run(trials, seconds)
    print("\n".join(scale.report(results, trials, seconds)))
    small, large = results[0], results[-1]
    growth = (large["rss"] - small["rss"]) * 1024 / (large["checks"] - small["checks"])
    p99_ok, cpu_ok = scale.verdict(results)

    def shown(result: dict[str, Any]) -> str:
        return (f"detection p99 {percentile(result['latencies'], 0.99):.1f} ms, idle "
                f"{result['share'] / result['checks'] * 1000:.3f} ms CPU/s per check")

    marginal = (large["share"] - small["share"]) * 1000 / (large["checks"] - small["checks"])
    return (f"{shown(large)} ({marginal:.3f} per check beyond {small['checks']}), RSS +{growth:.0f} KB per check",
            f"{small['checks']} checks: {shown(small)}", p99_ok and cpu_ok)


def machine() -> str:
    load1, load5, _ = os.getloadavg()
    return (f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {notify.cpu_model()}; "
            f"load average {load1:.1f} (1 min) {load5:.1f} (5 min) at the start; Python {sys.version.split()[0]}")


def markdown(found: dict[str, Result], header: str) -> str:
    lines = [f"| {' | '.join(rows.COLUMNS)} |", f"|{' --- |' * len(rows.COLUMNS)}"]
    for row in rows.ROWS:
        measured, reference, met = found[row.key]
        lines.append(f"| {row.path} | {measured} | {reference} | {row.target} | {'met' if met else 'MISSED'} |")
    return f"{header}\n\n" + "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="end with the summary as the README's table")
    args = parser.parse_args()
    header = f"./run bench all: {machine()}"
    print(header)
    print("counts (each bench's own default in brackets): "
          + ", ".join(f"{key} {value:g} ({DEFAULTS[key]:g})" for key, value in COUNTS.items()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="kahooks-bench-all-"))
    found: dict[str, Result] = {}
    spent: dict[str, float] = {}
    try:
        steps: list[tuple[str, Any]] = [
            ("startup", lambda: startup(int(COUNTS["checks_runs"]))),
            ("notify", lambda: handler_step(work / "notify")),
            ("death", lambda: death(work / "death", int(COUNTS["kills"]))),
            ("metrics", lambda: metrics(COUNTS["metrics_seconds"])),
            ("fifo", lambda: fifo(work / "fifo", int(COUNTS["fifo_lines"]), handler_walls)),
            ("scale", lambda: at_scale(int(COUNTS["scale_trials"]), COUNTS["scale_seconds"])),
        ]
        handler_walls: list[float] = []

        def handler_step(directory: Path) -> Result:
            directory.mkdir()
            result, walls = handler(directory, int(COUNTS["notify_runs"]))
            handler_walls.extend(walls)
            return result

        for key, step in steps:
            started = time.monotonic()
            print(f"\n== {key}", flush=True)
            found[key] = step()
            spent[key] = time.monotonic() - started
            sys.stdout.flush()
    finally:
        subprocess.run(["sync"], check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nsummary ({', '.join(f'{key} {seconds:.0f} s' for key, seconds in spent.items())}; "
          f"{sum(spent.values()):.0f} s in all)")
    width = max(len(row.path) for row in rows.ROWS)
    for row in rows.ROWS:
        measured, reference, met = found[row.key]
        print(f"{row.path:<{width}}  {measured}  [reference: {reference}]  target {row.target}: "
              f"{'met' if met else 'MISSED'}")
    if args.markdown:
        print()
        print(markdown(found, f"{header} (counts above: smaller than each bench's own)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
