"""Process backend costs: lease.run vs run_in_executor, pre-warm, cloudpickle vs pickle.

    python benchmarks/process_overhead.py [--seconds S] [--rounds R] [--workers N]
                                          [--gap G] [--samples K] [--quick] [--json]

Three comparisons, side by side in one run:

1. Round trips per second of a no-op on a process pool of ``--workers`` workers:
   ``lease.run`` on a held lease (and a full acquire+run+release cycle) against a plain
   ``loop.run_in_executor`` on a ``ProcessPoolExecutor`` of the same size. Variants are
   interleaved within each round and the order flips every other round; the median over
   rounds is reported.
2. First-call latency: a fresh manager is started, the application idles for ``--gap``
   seconds, then one acquire+run+release is timed; with and without pre-warm, for the
   fork and the forkserver start methods (plus a plain executor's first call).
3. Serializer cost per call: ``lease.run`` with ``serializer="pickle"`` against
   ``"cloudpickle"`` (which pickles in the caller), for a no-op, for a call carrying a
   payload, and for a lambda (which only cloudpickle can send).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import pickle
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from _common import cycles_per_second, format_table
from _process_work import noop, size_of

QUICK = {"seconds": 0.1, "rounds": 4, "samples": 2, "gap": 0.5}
DEFAULT = {"seconds": 0.25, "rounds": 20, "samples": 3, "gap": 1.0}

PAYLOAD = list(range(2_000))  # about 10 KB pickled


@dataclass(frozen=True)
class Variant:
    key: str
    label: str


VARIANTS = (
    Variant("plain", "plain run_in_executor (ProcessPoolExecutor)"),
    Variant("lease_run", "lease.run, pickle"),
    Variant("lease_cycle", "acquire+run+release, pickle"),
    Variant("cloud_run", "lease.run, cloudpickle"),
    Variant("payload_pickle", "lease.run(payload), pickle"),
    Variant("payload_cloud", "lease.run(payload), cloudpickle"),
    Variant("cloud_lambda", "lease.run(lambda), cloudpickle"),
)

RATIOS = (
    ("lease.run / plain run_in_executor", "lease_run", "plain", 0.9),
    ("acquire+run+release / plain run_in_executor", "lease_cycle", "plain", None),
    ("cloudpickle / pickle, no-op", "cloud_run", "lease_run", None),
    ("cloudpickle / pickle, 10 KB payload", "payload_cloud", "payload_pickle", None),
    ("cloudpickle lambda / pickle function", "cloud_lambda", "lease_run", None),
)


# --- round trips ---------------------------------------------------------------------------


async def _round_trips(
    args: argparse.Namespace,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Every variant's executor lives for the whole section; windows alternate between them.

    Keeping them all up (idle workers sleep on their queue) lets the timed windows be
    short and interleaved, so the machine's drift hits every variant alike.
    """
    from leasepool import LeasedExecutorManager

    loop = asyncio.get_running_loop()
    plain = ProcessPoolExecutor(max_workers=args.workers)
    managers = {
        serializer: LeasedExecutorManager(
            backend="process",
            max_pools=2,
            min_pools=2,
            workers_per_pool=args.workers,
            serializer=serializer,
        )
        for serializer in ("pickle", "cloudpickle")
    }
    for manager in managers.values():
        await manager.start()
    held = await managers["pickle"].acquire(lease_seconds=3600)
    cloud = await managers["cloudpickle"].acquire(lease_seconds=3600)

    async def lease_cycle() -> None:
        lease = await managers["pickle"].acquire()
        await lease.run(noop)
        await lease.release()

    cycles: dict[str, Callable[[], Awaitable[object]]] = {
        "plain": lambda: loop.run_in_executor(plain, noop),
        "lease_run": lambda: held.run(noop),
        "lease_cycle": lease_cycle,
        "cloud_run": lambda: cloud.run(noop),
        "payload_pickle": lambda: held.run(size_of, PAYLOAD),
        "payload_cloud": lambda: cloud.run(size_of, PAYLOAD),
        "cloud_lambda": lambda: cloud.run(lambda: None),
    }
    warmup = max(0.05, args.seconds / 5)
    samples: dict[str, list[float]] = {v.key: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v.key: [] for v in VARIANTS}
    try:
        for variant in VARIANTS:  # start-up and first-call costs stay out of the windows
            await cycles_per_second(cycles[variant.key], warmup, 0.0)
        for index in range(args.rounds):
            order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                rate, cpu_us = await _window(cycles[variant.key], args.seconds)
                samples[variant.key].append(rate)
                cpu[variant.key].append(cpu_us)
            summary = "  ".join(f"{v.key}={samples[v.key][-1]:,.0f}/s" for v in VARIANTS)
            print(f"round {index + 1}/{args.rounds}: {summary}", file=sys.stderr, flush=True)
    finally:
        await held.release()
        await cloud.release()
        for manager in managers.values():
            await manager.stop()
        plain.shutdown()
    return samples, cpu


async def _window(cycle: Callable[[], Awaitable[object]], seconds: float) -> tuple[float, float]:
    """(cycles per second, this process's CPU microseconds per cycle) over ``seconds``.

    The CPU figure counts every thread of this process (the event loop, the executors'
    manager and queue threads), not the workers: it is the parent's cost of a call, and
    unlike the rate it hardly moves when other programs load the machine.
    """
    count = 0
    cpu_start, start = time.process_time(), time.perf_counter()
    deadline = start + seconds
    while True:
        await cycle()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    return count / (now - start), 1e6 * (time.process_time() - cpu_start) / count


def run_rounds(args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    return asyncio.run(_round_trips(args))


# --- first-call latency ----------------------------------------------------------------------


async def _first_call(
    method: str, prewarm: bool | None, workers: int, gap: float
) -> tuple[float, float]:
    """(seconds in start(), seconds for the first acquire+run+release after ``gap``)."""
    context = multiprocessing.get_context(method)
    loop = asyncio.get_running_loop()
    if prewarm is None:  # plain executor: "start" is its constructor
        started = time.perf_counter()
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        start_cost = time.perf_counter() - started
        await asyncio.sleep(gap)
        try:
            began = time.perf_counter()
            await loop.run_in_executor(executor, noop)
            return start_cost, time.perf_counter() - began
        finally:
            executor.shutdown()
    from leasepool import LeasedExecutorManager

    manager = LeasedExecutorManager(
        backend="process",
        max_pools=1,
        workers_per_pool=workers,
        prewarm=prewarm,
        mp_context=context,
    )
    started = time.perf_counter()
    await manager.start()
    start_cost = time.perf_counter() - started
    await asyncio.sleep(gap)
    try:
        began = time.perf_counter()
        lease = await manager.acquire()
        await lease.run(noop)
        await lease.release()
        return start_cost, time.perf_counter() - began
    finally:
        await manager.stop()


FIRST_CALL_CASES = (
    ("plain executor (lazy)", None),
    ("leasepool prewarm=False", False),
    ("leasepool prewarm=True", True),
)


def first_call_latency(args: argparse.Namespace) -> list[dict[str, Any]]:
    methods = [m for m in ("fork", "forkserver") if m in multiprocessing.get_all_start_methods()]
    results = []
    for method in methods:
        for label, prewarm in FIRST_CALL_CASES:
            starts, firsts = [], []
            for _ in range(args.samples):
                start_cost, first = asyncio.run(
                    _first_call(method, prewarm, args.workers, args.gap)
                )
                starts.append(start_cost)
                firsts.append(first)
            results.append(
                {
                    "method": method,
                    "label": label,
                    "prewarm": prewarm,
                    "start_ms": 1e3 * statistics.median(starts),
                    "first_ms": 1e3 * statistics.median(firsts),
                    "first_ms_max": 1e3 * max(firsts),
                }
            )
            print(
                f"first call {method} {label}: {results[-1]['first_ms']:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    return results


# --- in-process serialisation cost ------------------------------------------------------------


def dumps_cost() -> dict[str, float]:
    """Microseconds to serialise one call in the caller, without any worker."""
    import cloudpickle

    def per_call(fn: Callable[[], object], n: int = 2_000) -> float:
        began = time.perf_counter()
        for _ in range(n):
            fn()
        return 1e6 * (time.perf_counter() - began) / n

    call = (noop, (), {})
    with_payload = (size_of, (PAYLOAD,), {})
    return {
        "pickle no-op": per_call(lambda: pickle.dumps(call, pickle.HIGHEST_PROTOCOL)),
        "cloudpickle no-op": per_call(lambda: cloudpickle.dumps(call, pickle.HIGHEST_PROTOCOL)),
        "pickle 10 KB payload": per_call(
            lambda: pickle.dumps(with_payload, pickle.HIGHEST_PROTOCOL)
        ),
        "cloudpickle 10 KB payload": per_call(
            lambda: cloudpickle.dumps(with_payload, pickle.HIGHEST_PROTOCOL)
        ),
        "cloudpickle lambda": per_call(
            lambda: cloudpickle.dumps((lambda: None, (), {}), pickle.HIGHEST_PROTOCOL)
        ),
    }


# --- report ------------------------------------------------------------------------------------


def build_report(
    args: argparse.Namespace,
    samples: dict[str, list[float]],
    cpu: dict[str, list[float]],
    first: list[dict[str, Any]],
    dumps: dict[str, float],
) -> dict[str, Any]:
    medians = {key: statistics.median(values) for key, values in samples.items()}
    ratios = []
    for label, top, bottom, target in RATIOS:
        value = medians[top] / medians[bottom]
        paired = statistics.median(
            a / b for a, b in zip(samples[top], samples[bottom], strict=True)
        )
        status = None if target is None else ("PASS" if value >= target else "BELOW")
        ratios.append(
            {
                "label": label,
                "value": value,
                "per_round_median": paired,
                "extra_us_per_call": 1e6 / medians[top] - 1e6 / medians[bottom],
                "extra_cpu_us_per_call": statistics.median(cpu[top])
                - statistics.median(cpu[bottom]),
                "target": target,
                "status": status,
            }
        )
    speedups = []
    for method in sorted({row["method"] for row in first}):
        rows = {row["prewarm"]: row for row in first if row["method"] == method}
        if False in rows and True in rows:
            speedups.append(
                {
                    "label": f"first call {method}: prewarm=False / prewarm=True",
                    "value": rows[False]["first_ms"] / rows[True]["first_ms"],
                }
            )
    return {
        "config": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "workers": args.workers,
            "gap": args.gap,
            "samples": args.samples,
            "python": sys.version.split()[0],
            "default_start_method": multiprocessing.get_start_method(),
        },
        "variants": {
            v.key: {
                "label": v.label,
                "median": medians[v.key],
                "rounds": samples[v.key],
                "cpu_us_per_call": statistics.median(cpu[v.key]),
            }
            for v in VARIANTS
        },
        "ratios": ratios,
        "first_call": first,
        "first_call_speedups": speedups,
        "dumps_us": dumps,
    }


def render_text(report: dict[str, Any]) -> str:
    config = report["config"]
    lines = [
        f"leasepool process overhead: {config['workers']} workers per pool; "
        f"{config['rounds']} rounds x {config['seconds']:g} s per variant (median over rounds); "
        f"Python {config['python']}, default start method {config['default_start_method']}",
        "",
        "1. Round trips (no-op task)",
    ]
    rows = [
        [
            v["label"],
            f"{v['median']:,.0f}",
            f"{min(v['rounds']):,.0f}",
            f"{max(v['rounds']):,.0f}",
            f"{1e6 / v['median']:.0f}",
            f"{v['cpu_us_per_call']:.0f}",
        ]
        for v in report["variants"].values()
    ]
    headers = ["variant", "median/s", "min/s", "max/s", "us/call", "parent CPU us/call"]
    lines += [format_table(headers, rows), ""]
    rows = [
        [
            r["label"],
            f"{r['value']:.2f}",
            f"{r['per_round_median']:.2f}",
            f"{r['extra_us_per_call']:+.0f}",
            f"{r['extra_cpu_us_per_call']:+.0f}",
            "" if r["target"] is None else f">= {r['target']:g}",
            r["status"] or "",
        ]
        for r in report["ratios"]
    ]
    lines += [
        format_table(
            ["ratio (throughput)", "of medians", "per-round", "+us/call", "+CPU us", "target", ""],
            rows,
        ),
        "",
        f"2. First call after start() and {config['gap']:g} s idle "
        f"(median of {config['samples']}; acquire+run+release, or run_in_executor)",
    ]
    rows = [
        [
            f"{row['method']:<10} {row['label']}",
            f"{row['start_ms']:.1f}",
            f"{row['first_ms']:.1f}",
            f"{row['first_ms_max']:.1f}",
        ]
        for row in report["first_call"]
    ]
    lines += [format_table(["case", "start() ms", "first call ms", "max ms"], rows), ""]
    rows = [[s["label"], f"{s['value']:.1f}x"] for s in report["first_call_speedups"]]
    lines += [format_table(["pre-warm speed-up", "ratio"], rows), ""]
    lines.append("3. Serialising one call in the caller (no worker involved)")
    rows = [[label, f"{us:.1f}"] for label, us in report["dumps_us"].items()]
    lines.append(format_table(["dumps", "us/call"], rows))
    return "\n".join(lines)


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--seconds", type=positive, help=f"per variant (default {DEFAULT['seconds']})"
    )
    parser.add_argument("--rounds", type=int, help=f"default {DEFAULT['rounds']}")
    parser.add_argument("--workers", type=int, default=2, help="workers per pool (default 2)")
    parser.add_argument(
        "--gap",
        type=positive,
        help=f"idle seconds before the first call (default {DEFAULT['gap']})",
    )
    parser.add_argument(
        "--samples", type=int, help=f"first-call samples per case (default {DEFAULT['samples']})"
    )
    parser.add_argument("--quick", action="store_true", help="~20 s smoke run")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else DEFAULT
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rounds < 1 or args.samples < 1 or args.workers < 1:
        parser.error("--rounds, --samples and --workers must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    samples, cpu = run_rounds(args)
    first = first_call_latency(args)
    dumps = dumps_cost()
    report = build_report(args, samples, cpu, first, dumps)
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
