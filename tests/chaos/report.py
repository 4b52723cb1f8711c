"""Run the chaos suite and write its figures as a table into docs/chaos.md.

Usage, from the repository root:

    python tests/chaos/report.py                # run tests/chaos, then write the page
    python tests/chaos/report.py --from DIR     # write the page from an earlier run's JSON

An earlier run's JSON comes from ``LEASEPOOL_CHAOS_REPORT=DIR python -m pytest
tests/chaos``. The page is generated whole: edit this script, not the page.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "chaos.md"

ORDER = [
    ("kill9_holder", "`kill -9` of a holder mid-work"),
    ("kill9_waiters", "`kill -9` of the first two waiters in the queue"),
    ("sigstop_holder", "SIGSTOP of a holder past its hard expiry"),
    ("sigstop_waiter", "SIGSTOP of a waiter past its claim window"),
    ("blocked_loop_holder", "holder's event loop blocked past its hard expiry"),
    ("blocked_loop_waiter", "waiter's event loop blocked past its claim window"),
    ("stop_running_thread", "`stop()` during running work, thread backend"),
    ("stop_running_process", "`stop()` during running work, process backend"),
    ("stop_overrun_thread", "`stop()` with work past `stop_timeout`, thread backend"),
    ("stop_overrun_process", "`stop()` with work past `stop_timeout`, process backend"),
    ("redis_frozen", "Redis frozen (SIGSTOP) for 3.5 s under traffic"),
    ("redis_restart_aof", "Redis `kill -9`, restarted with AOF"),
    ("redis_restart_empty", "Redis `kill -9`, restarted without persistence"),
    ("proxy_latency", "latency and jitter through a proxy, replies slower"),
    ("proxy_partition", "holder partitioned from Redis through a proxy"),
    ("cancellation_storm", "cancellation storm: 3 processes x 5 tasks"),
    ("garbage_in_every_key", "garbage in every key, 16 cases"),
    ("churn_soak", "churn soak around a long-lived process"),
]

INTRO = """\
# Chaos suite

leasepool makes one promise: across every process and host, no more than
`capacity` leases have work running at once. `tests/chaos/` tries to break it
the way an unlucky deployment would, with real processes and a real Redis, and
runs in the normal `pytest` run (marker `chaos`).

How each scenario is judged:

- **Worker processes** take leases from Redis with
  `LeasedExecutorManager(coordinator=RedisCoordinator.from_url(...))` and run
  their work with `lease.run(...)`.
- **A protected resource**, a separate process, receives every piece of work:
  its pool, fencing token, and start and end times taken inside the work
  itself. It counts concurrency from those timestamps. At capacity 1 it also
  refuses a token lower than the highest it has accepted: that is a stale token.
- **Every submitted job** must end with a result or a clear error, that is a
  leasepool error, `TimeoutError`, or the resource's refusal. A job with
  neither, in a process the scenario did not kill, is **work lost**.
- **Faults** are injected with signals (`SIGKILL`, `SIGSTOP`), a blocking call
  in the event loop, `stop()`, a Redis server of the scenario's own (frozen,
  killed, restarted with or without AOF), a loopback TCP proxy
  (`tests/_netproxy.py`) that adds latency or cuts the link, and keys
  overwritten with garbage.

Every scenario asserts that peak ≤ cap, that no work is lost, that every error is
clear, and its own promise (see the test's docstring). The one documented
exception is a Redis restart **without persistence**. There an old holder may
overlap a new one until it learns that its lease is gone, and the resource's
fencing refuses the old holder's token. For that row, peak ≤ cap is asserted
among the leases granted after the restart.

Regenerate this page with:

```bash
python tests/chaos/report.py
```
"""


def run_suite(target: Path) -> int:
    env = dict(os.environ, LEASEPOOL_CHAOS_REPORT=str(target))
    command = [sys.executable, "-m", "pytest", "tests/chaos", "-q", "-p", "no:cacheprovider"]
    started = time.monotonic()
    code = subprocess.call(command, cwd=ROOT, env=env)
    print(f"chaos suite: exit {code} in {time.monotonic() - started:.0f} s")
    return code


def load(source: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(source.glob("*.json")):
        figures = json.loads(path.read_text())
        found[figures["scenario"]] = figures
    return found


def _seconds(value: object) -> str:
    return "-" if value is None else f"{float(value):.2f}"  # type: ignore[arg-type]


def _why(f: dict[str, Any]) -> str:
    text = str(f.get("failure", "")).replace("|", "/")
    return "**failed**: " + (text if len(text) <= 160 else text[:157] + "...")


def row(name: str, label: str, f: dict[str, Any] | None) -> str:
    if f is None:
        return f"| {label} | not run | | | | | | |"
    if "peak" not in f:
        return f"| {label} | - | - | - | - | - | - | {_why(f)} |"
    peak = f"{f['peak']} / {f['capacity']}"
    if "peak_checked" in f:
        peak += f" ({f['peak_checked']} / {f['capacity']} among new tokens)"
    stale = str(f["stale_rejected"]) if f.get("fenced") else f"n/a (cap {f['capacity']})"
    result = "pass" if f.get("passed") else _why(f)
    return (
        f"| {label} | {len(f['faults'])} | {f['grants']} | {peak} | {stale} "
        f"| {f['work_lost']} | {_seconds(f.get('slot_back_s'))} | {result} |"
    )


def soak_section(f: dict[str, Any] | None) -> list[str]:
    soak = (f or {}).get("soak")
    if not soak:
        return ["", "## Churn soak", "", "The soak did not report figures in this run."]
    start, end = soak["process_start"], soak["process_end"]
    r_start, r_end = soak["redis_start"], soak["redis_end"]
    lines = [
        "",
        "## Churn soak",
        "",
        f"{soak['processes']} short-lived processes ({soak['killed']} of them SIGKILLed) "
        "took leases around one long-lived process at capacity 2, with `auto_renew`.",
        "",
        "| Footprint | At the start | At the end |",
        "| --- | --- | --- |",
    ]
    for key, label in [
        ("rss_mb", "long-lived process RSS (MB)"),
        ("tasks", "its asyncio tasks"),
        ("threads", "its threads"),
        ("held", 'its coordinator `"held"`'),
        ("waiting", 'its coordinator `"waiting"`'),
        ("unclaimed", 'its coordinator `"unclaimed"`'),
    ]:
        lines.append(f"| {label} | {start[key]} | {end[key]} |")
    left = soak.get("tasks_left_after_stop")
    if left is not None:
        lines.append(f"| its tasks left after `stop()` | - | {len(left)} |")
    for key, label in [
        ("keys", "Redis keys of the pool"),
        ("live_leases", "live leases"),
        ("queue", "queued tickets"),
        ("tickets", "tickets hash fields"),
        ("waiters", "`waiters` zset entries"),
        ("lease_hashes", "lease hashes (all with a TTL)"),
        ("ttl_s", "longest TTL of those tables, s (-1: none)"),
    ]:
        lines.append(f"| {label} | {r_start[key]} | {r_end[key]} |")
    back = (
        f"Redis was back at its baseline {soak['reclaim_s']} s after the churn ended"
        if soak.get("reclaimed")
        else f"Redis was **not** back at its baseline {soak['reclaim_s']} s after the churn"
    )
    lines += [
        "",
        back + " (the test allows 15 s, and leftovers of dead processes in keys that "
        "expire within 300 s).",
        f"The long-lived process completed {soak['quiet_rate']} runs/s when quiet and "
        f"{soak['churn_rate']} runs/s under churn: a ratio of **{soak['ratio']}**. Its "
        f"longest stall was {soak['max_stall_s']} s. On a 2-core machine, the churning "
        "processes' own start-up competes for the CPU; `benchmarks/` measures the ratio "
        "without that.",
    ]
    return lines


def render(found: dict[str, dict[str, Any]], note: str) -> str:
    lines = [
        INTRO,
        "## Results",
        "",
        note,
        "",
        "| Scenario | Faults | Grants | Peak / cap | Stale tokens rejected | Work lost "
        "| Slot back (s) | Result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [row(name, label, found.get(name)) for name, label in ORDER]
    lines += [
        "",
        "*Slot back* is the time from the fault to the next grant of the slot to a",
        "live process (for `stop()`, from the call; for Redis, from its return; for",
        "the storm, how long the full capacity took to take again afterwards; for the",
        "soak, the long-lived process's longest wait between two runs).",
    ]
    lines += soak_section(found.get("churn_soak"))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="read JSON from this dir")
    parser.add_argument("--out", type=Path, default=PAGE)
    args = parser.parse_args()
    code = 0
    if args.source is None:
        with tempfile.TemporaryDirectory(prefix="lp-chaos-") as tmp:
            code = run_suite(Path(tmp))
            found = load(Path(tmp))
    else:
        found = load(args.source)
    note = (
        f"Generated by `tests/chaos/report.py` on {time.strftime('%Y-%m-%d')}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs."
    )
    args.out.write_text(render(found, note))
    print(f"wrote {args.out}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
