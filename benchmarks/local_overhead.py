"""Local cost of a lease: ours vs plain run_in_executor vs leasepool 0.1.3.

    python benchmarks/local_overhead.py [--seconds S] [--rounds R] [--quick] [--json] [--cpu N]

Every variant runs a no-op on a one-thread executor in a tight loop for a fixed time and
counts cycles per second. Variants are interleaved within each round, and the round order
flips every other round, so slow drift of the machine hits all of them alike; the median
over rounds is reported. leasepool 0.1.3 runs this same file in a child process inside a
throwaway venv, timed inside the child.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from _common import (
    ISOLATION_FLAGS,
    REPO_ROOT,
    ReferenceUnavailableError,
    cycles_per_second,
    format_table,
    reference_python,
)

ORIGINAL_VERSION = "0.1.3"
QUICK_SECONDS, QUICK_ROUNDS = 0.2, 3
DEFAULT_SECONDS, DEFAULT_ROUNDS = 1.0, 5


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    workload: str
    in_original: bool


# Listed in run order: each "ours" variant sits next to its 0.1.3 counterpart.
VARIANTS = (
    Variant("ours_run", "ours  acquire+run+release", "lease_run", in_original=False),
    Variant("orig_run", "0.1.3 acquire+run+release", "lease_run", in_original=True),
    Variant("plain", "plain run_in_executor", "plain", in_original=False),
    Variant("ours_bare", "ours  acquire+release", "lease_bare", in_original=False),
    Variant("orig_bare", "0.1.3 acquire+release", "lease_bare", in_original=True),
    Variant("plain_child", "plain run_in_executor (0.1.3 child)", "plain", in_original=True),
)


@dataclass(frozen=True)
class Ratio:
    label: str
    numerator: str
    denominator: str
    target: float | None


RATIOS = (
    Ratio("ours acquire+run+release / plain run_in_executor", "ours_run", "plain", 0.9),
    Ratio("ours acquire+run+release / 0.1.3", "ours_run", "orig_run", 2.0),
    Ratio("ours acquire+release / 0.1.3 acquire+release", "ours_bare", "orig_bare", 2.0),
    # No target: the same workload in both processes, so anything far from 1.0 means the
    # parent/child split itself skews the comparison with 0.1.3.
    Ratio("control: plain in 0.1.3 child / plain here", "plain_child", "plain", None),
)


class WorkloadCrashedError(RuntimeError):
    """A measured workload failed; the figures of this run cannot be trusted."""


# --- workloads (run both here and, under the 0.1.3 venv, in the child) ---------------------


def noop() -> None:
    return None


def _new_manager() -> Any:
    # Imported late so the parent can explain a missing package before anything runs; the
    # child, started with the 0.1.3 venv's interpreter, resolves this to 0.1.3.
    from leasepool import LeasedExecutorManager

    return LeasedExecutorManager(backend="thread", max_pools=1, min_pools=1, workers_per_pool=1)


async def _lease_rate(seconds: float, warmup: float, *, run: bool) -> float:
    manager = _new_manager()
    await manager.start()

    async def acquire_run_release() -> None:
        lease = await manager.acquire()
        await lease.run(noop)
        await lease.release()

    async def acquire_release() -> None:
        lease = await manager.acquire()
        await lease.release()

    try:
        cycle = acquire_run_release if run else acquire_release
        return await cycles_per_second(cycle, seconds, warmup)
    finally:
        await manager.stop()


async def _plain_rate(seconds: float, warmup: float) -> float:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as executor:

        async def run_in_executor() -> None:
            await loop.run_in_executor(executor, noop)

        return await cycles_per_second(run_in_executor, seconds, warmup)


async def _lease_run_rate(seconds: float, warmup: float) -> float:
    return await _lease_rate(seconds, warmup, run=True)


async def _lease_bare_rate(seconds: float, warmup: float) -> float:
    return await _lease_rate(seconds, warmup, run=False)


WORKLOADS: dict[str, Callable[[float, float], Awaitable[float]]] = {
    "lease_run": _lease_run_rate,
    "lease_bare": _lease_bare_rate,
    "plain": _plain_rate,
}


def measure(workload: str, seconds: float, warmup: float) -> float:
    # A fresh loop and fresh executors per measurement, as in the child, so neither side
    # carries state (threads, caches, loop bookkeeping) from one variant into the next.
    return asyncio.run(WORKLOADS[workload](seconds, warmup))


def leasepool_identity() -> dict[str, str]:
    import leasepool

    try:
        found = version("leasepool")
    except PackageNotFoundError:
        found = "not installed (imported from path)"
    return {"version": found, "path": str(Path(leasepool.__file__).resolve().parent)}


def child_main(workloads: Sequence[str], seconds: float, warmup: float) -> int:
    rates = [measure(name, seconds, warmup) for name in workloads]
    print(json.dumps({"leasepool": leasepool_identity(), "rates": rates}))
    return 0


# --- parent side ----------------------------------------------------------------------------


def measure_in_original(
    python: Path, workloads: Sequence[str], seconds: float, warmup: float
) -> list[float]:
    command = [str(python), *ISOLATION_FLAGS, str(Path(__file__).resolve()), "--child"]
    command += [",".join(workloads), "--seconds", repr(seconds), "--warmup", repr(warmup)]
    limit = 60 + 3 * len(workloads) * (seconds + warmup)
    done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=False)
    if done.returncode != 0:
        raise WorkloadCrashedError(f"0.1.3 child exited {done.returncode}:\n{done.stderr}")
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    if reply["leasepool"]["version"] != ORIGINAL_VERSION:
        raise WorkloadCrashedError(f"child ran leasepool {reply['leasepool']}, not 0.1.3")
    return [float(rate) for rate in reply["rates"]]


def run_round(
    variants: Sequence[Variant], original: Path | None, seconds: float, warmup: float
) -> dict[str, float]:
    rates: dict[str, float] = {}
    # Consecutive 0.1.3 variants share one child so interpreter start-up is paid once.
    for in_original, grouped in itertools.groupby(variants, key=lambda v: v.in_original):
        group = list(grouped)
        names = [variant.workload for variant in group]
        if in_original:
            assert original is not None
            values = measure_in_original(original, names, seconds, warmup)
        else:
            values = [measure(name, seconds, warmup) for name in names]
        rates.update(zip((variant.key for variant in group), values, strict=True))
    return rates


def run_rounds(
    variants: Sequence[Variant], original: Path | None, rounds: int, seconds: float
) -> dict[str, list[float]]:
    warmup = max(0.05, seconds / 5)
    samples: dict[str, list[float]] = {variant.key: [] for variant in variants}
    for index in range(rounds):
        # Reversing every other round (ABBA) cancels linear drift between neighbours.
        order = variants if index % 2 == 0 else variants[::-1]
        rates = run_round(order, original, seconds, warmup)
        for key, rate in rates.items():
            samples[key].append(rate)
        summary = "  ".join(f"{key}={rate:,.0f}/s" for key, rate in rates.items())
        print(f"round {index + 1}/{rounds}: {summary}", file=sys.stderr, flush=True)
    return samples


def prepare_original() -> tuple[Path | None, str | None]:
    """The 0.1.3 interpreter, or None and the reason it is missing."""
    print(f"preparing leasepool {ORIGINAL_VERSION} venv ...", file=sys.stderr, flush=True)
    try:
        return reference_python(ORIGINAL_VERSION), None
    except ReferenceUnavailableError as exc:
        return None, (
            f"note: could not set up leasepool {ORIGINAL_VERSION} (no network?), so only ours "
            f"vs plain run_in_executor is reported. {exc}"
        )


def evaluate_ratios(samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    results = []
    for ratio in RATIOS:
        if ratio.numerator not in samples or ratio.denominator not in samples:
            continue
        top, bottom = samples[ratio.numerator], samples[ratio.denominator]
        value = statistics.median(top) / statistics.median(bottom)
        # Same-round pairs share the machine's state at that moment (thread placement on the
        # cores swings the rates a lot), so their median ratio is a useful cross-check.
        paired = statistics.median(a / b for a, b in zip(top, bottom, strict=True))
        status = None if ratio.target is None else ("PASS" if value >= ratio.target else "BELOW")
        results.append(
            {
                "label": ratio.label,
                "value": value,
                "per_round_median": paired,
                "target": ratio.target,
                "status": status,
            }
        )
    return results


def render_text(report: dict[str, Any]) -> str:
    config, ours = report["config"], report["ours"]
    pinned = "unpinned" if config["cpu"] is None else f"pinned to CPU {config['cpu']}"
    lines = [
        f"leasepool local overhead: {config['rounds']} rounds x {config['seconds']:g} s per "
        f"variant, median over rounds; {pinned}",
        f"ours:  leasepool {ours['version']} from {ours['path']}",
    ]
    original = report["original"]
    lines.append(f"0.1.3: {original['python'] or original['note']}")
    rows = [
        [v["label"], f"{v['median']:,.0f}", f"{min(v['rounds']):,.0f}", f"{max(v['rounds']):,.0f}"]
        for v in report["variants"].values()
    ]
    lines += ["", format_table(["variant", "median/s", "min/s", "max/s"], rows), ""]
    rows = [
        [
            r["label"],
            f"{r['value']:.2f}",
            f"{r['per_round_median']:.2f}",
            "" if r["target"] is None else f">= {r['target']:g}",
            r["status"] or "",
        ]
        for r in report["ratios"]
    ]
    lines.append(format_table(["ratio", "of medians", "per-round", "target", ""], rows))
    return "\n".join(lines)


def build_report(
    samples: dict[str, list[float]],
    args: argparse.Namespace,
    original: Path | None,
    note: str | None,
) -> dict[str, Any]:
    labels = {variant.key: variant.label for variant in VARIANTS}
    medians = {key: statistics.median(values) for key, values in samples.items()}
    return {
        "config": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "cpu": args.cpu,
            "python": sys.version.split()[0],
        },
        "ours": leasepool_identity(),
        "original": {
            "version": ORIGINAL_VERSION,
            "python": str(original) if original else None,
            "note": note,
        },
        "variants": {
            key: {"label": labels[key], "median": medians[key], "rounds": values}
            for key, values in samples.items()
        },
        "ratios": evaluate_ratios(samples),
    }


def warn_if_not_this_repo() -> None:
    path = Path(leasepool_identity()["path"])
    if not path.is_relative_to(REPO_ROOT / "src"):
        print(f"warning: 'ours' is leasepool from {path}, not this repo", file=sys.stderr)


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=positive, help=f"per variant (default {DEFAULT_SECONDS})")
    parser.add_argument("--rounds", type=int, help=f"default {DEFAULT_ROUNDS}")
    parser.add_argument("--quick", action="store_true", help="~5 s smoke run")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--cpu",
        type=int,
        metavar="N",
        help="pin this run (and its 0.1.3 children) to CPU N: steadier, but hides cross-core "
        "wake-up cost; Linux only",
    )
    # Internal: how the parent asks a 0.1.3 interpreter to run workloads.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=0.1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seconds, rounds = (
        (QUICK_SECONDS, QUICK_ROUNDS) if args.quick else (DEFAULT_SECONDS, DEFAULT_ROUNDS)
    )
    args.seconds = seconds if args.seconds is None else args.seconds
    args.rounds = rounds if args.rounds is None else args.rounds
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return child_main(args.child.split(","), args.seconds, args.warmup)
    if args.cpu is not None:
        try:
            # Set before any thread or child exists, so all of them inherit it.
            os.sched_setaffinity(0, {args.cpu})
        except (AttributeError, OSError) as exc:
            print(f"cannot pin to CPU {args.cpu}: {exc}", file=sys.stderr)
            return 2
    try:
        warn_if_not_this_repo()
    except ImportError as exc:
        print(f"cannot import leasepool ({exc}); run: pip install -e {REPO_ROOT}", file=sys.stderr)
        return 2
    original, note = prepare_original()
    if note:
        print(note, file=sys.stderr)
    variants = [v for v in VARIANTS if original is not None or not v.in_original]
    try:
        samples = run_rounds(variants, original, args.rounds, args.seconds)
    except (WorkloadCrashedError, subprocess.TimeoutExpired) as exc:
        print(f"workload crashed: {exc}", file=sys.stderr)
        return 1
    report = build_report(samples, args, original, note)
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
