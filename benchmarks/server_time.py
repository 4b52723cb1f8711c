"""Redis server time per acquire+release: ours next to redis-py's asyncio Lock.

What it measures: the CPU time the Redis server spends on one acquire + release, as Redis
itself reports it in ``INFO commandstats``. One measurement is ``CONFIG RESETSTAT``, then
``--cycles`` sequential acquire+release cycles, then ``INFO commandstats``; the ``usec`` of
every command listed is summed and divided by the number of cycles. The measuring commands
themselves (``CONFIG``, ``INFO``) are left out; everything else is counted, including any
background call our coordinator makes during the window (heartbeat, subscriber).

* ours: ``RedisCoordinator.acquire(GrantRequest(...), wait=False)`` + ``release(lease_id)``,
  capacity 1, driven directly (the manager adds no Redis commands of its own);
* the Lock: ``lock.acquire()`` (``SET NX PX``) + ``lock.release()`` (its release script).

Redis lists a command run by a script both on its own line and inside the script's time,
so "every command summed" counts those twice. That is the measure the target is written
in, applied alike to both sides; the script also prints "top level", the time of the
client's own commands only, read from ``SLOWLOG`` with a threshold of 0 (Redis logs a
script's inner commands there too, but with no client address, so they can be told apart),
and a per-command breakdown. The slowlog costs the server time of its own, so the top-level
figure comes from a separate, shorter pass in each round (``--cycles`` / 4), with the
slowlog off during the main one.

The two variants alternate, round after round (ours, Lock, ours, ...); the median per
round is printed with the ratio. Target: ours <= 25 us per acquire+release (every command
summed).

    python benchmarks/server_time.py                  # starts its own server, ~30 s
    python benchmarks/server_time.py --quick
    python benchmarks/server_time.py --url redis://127.0.0.1:6379/0 --cycles 5000

With ``--url`` the server's stats are reset (and its slowlog settings changed and then
restored): use a server of your own.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from _common import (
    MonotonicClock,
    bounded,
    bounded_cleanup,
    exit_if_hung,
    format_table,
    ignore_lost,
    leasepool_banner,
    local_server,
    verdict,
)

from leasepool import GrantRequest, RedisCoordinator

TARGET_US = 25.0
# Commands the measurement itself sends between RESETSTAT and the read-out.
MEASURING = ("cmdstat_config", "cmdstat_info", "cmdstat_slowlog")
# Room in the slowlog per cycle: every command is logged, those inside scripts included.
SLOWLOG_PER_CYCLE = 60


def command_usec(info: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """{command: (calls, usec)} from a parsed ``INFO commandstats``, measuring commands left out."""
    found = {}
    for key, value in info.items():
        if key.startswith("cmdstat_") and not key.startswith(MEASURING):
            found[key.removeprefix("cmdstat_")] = (int(value["calls"]), int(value["usec"]))
    return found


async def measure(
    client: aioredis.Redis, cycle: Callable[[], Awaitable[object]], cycles: int
) -> dict[str, Any]:
    """Server time of ``cycles`` back-to-back cycles, per cycle, in microseconds.

    The slowlog is off here: logging every inner command would add its own cost to the
    scripts' time. The top-level figure comes from :func:`measure_top_level`.
    """
    await client.config_resetstat()
    for _ in range(cycles):
        await cycle()
    stats = command_usec(await client.info("commandstats"))
    return {
        "summed_us": sum(usec for _, usec in stats.values()) / cycles,
        "commands": {
            name: (calls / cycles, usec / cycles) for name, (calls, usec) in stats.items()
        },
    }


async def measure_top_level(
    client: aioredis.Redis, cycle: Callable[[], Awaitable[object]], cycles: int
) -> float:
    """Microseconds per cycle of the client's own commands, from a slowlog that logs all."""
    room = SLOWLOG_PER_CYCLE * cycles + 100
    await client.config_set("slowlog-max-len", room)
    await client.config_set("slowlog-log-slower-than", 0)
    await client.slowlog_reset()
    try:
        for _ in range(cycles):
            await cycle()
    finally:
        await client.config_set("slowlog-log-slower-than", -1)
    log = await client.slowlog_get(room)
    if len(log) >= room:
        raise SystemExit("the slowlog filled up: the top-level figure would be short")
    # A command run by a script is logged too, with no client address ("?:0").
    top = sum(
        entry["duration"]
        for entry in log
        if entry["client_address"] != b"?:0" and not _is_measuring(entry["command"])
    )
    return top / cycles


def _is_measuring(command: bytes | str) -> bool:
    text = command.decode(errors="replace") if isinstance(command, bytes) else command
    return text.split(" ", 1)[0].upper() in {"CONFIG", "INFO", "SLOWLOG"}


async def run(url: str, cycles: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    ids = itertools.count()
    pool = f"bench-st-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    saved = await client.config_get("slowlog-*")
    await client.config_set("slowlog-log-slower-than", -1)
    coordinator = RedisCoordinator(client, pool=pool, capacity=1)
    await coordinator.start(clock=MonotonicClock(), on_lost=ignore_lost)
    lock = client.lock(f"{pool}-lock", timeout=30)

    async def ours() -> None:
        grant = await coordinator.acquire(
            GrantRequest(f"b{next(ids)}", "bench", 30, 5), wait=False, deadline=None
        )
        await coordinator.release(grant.lease_id)

    async def redis_lock() -> None:
        await lock.acquire()
        await lock.release()

    variants = {"ours": ours, "lock": redis_lock}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    try:
        for cycle in variants.values():  # warm-up: scripts load, connections open
            for _ in range(50):
                await cycle()
        for _ in range(rounds):
            for name, cycle in variants.items():
                limit = 30 + cycles * 0.01
                results[name].append(await bounded(measure(client, cycle, cycles), limit, name))
            for name, cycle in variants.items():
                top = await bounded(
                    measure_top_level(client, cycle, max(1, cycles // 4)), limit, name
                )
                results[name][-1]["top_level_us"] = top
    finally:
        # Bounded: a close that never returns is a finding to print, not a reason to hang.
        await bounded_cleanup(coordinator.close(), 30, "closing the coordinator")
        await client.config_set("slowlog-log-slower-than", saved["slowlog-log-slower-than"])
        await client.config_set("slowlog-max-len", saved["slowlog-max-len"])
        keys = [k async for k in client.scan_iter(match=f"leasepool:{{{pool}}}:*")]
        await client.delete(*keys, f"{pool}-lock")
        await client.aclose()
    return results


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rounds in results.items():
        names = sorted({command for r in rounds for command in r["commands"]})
        out[name] = {
            "summed_us": statistics.median(r["summed_us"] for r in rounds),
            "summed_us_rounds": [round(r["summed_us"], 2) for r in rounds],
            "top_level_us": statistics.median(r["top_level_us"] for r in rounds),
            "commands": {
                command: [
                    statistics.median(r["commands"].get(command, (0, 0))[i] for r in rounds)
                    for i in (0, 1)
                ]
                for command in names
            },
        }
    return out


def report(summary: dict[str, Any], cycles: int, rounds: int) -> None:
    print(leasepool_banner())
    print(f"python {sys.version.split()[0]}, {rounds} rounds x {cycles} cycles, alternating")
    print()
    labels = {"ours": "ours RedisCoordinator", "lock": "redis-py asyncio Lock"}
    rows = [
        [labels[name], f"{s['summed_us']:.1f}", f"{s['top_level_us']:.1f}",
         " ".join(f"{x:.0f}" for x in s["summed_us_rounds"])]
        for name, s in summary.items()
    ]  # fmt: skip
    headers = ["server us per acquire+release", "every cmd summed", "top level", "rounds"]
    print(format_table(headers, rows))
    print()
    rows = [
        [f"{labels[name]}: {command}", f"{calls:.2f}", f"{usec:.1f}"]
        for name, s in summary.items()
        for command, (calls, usec) in s["commands"].items()
    ]
    print(format_table(["command (per cycle)", "calls", "us"], rows))
    ours, lock = summary["ours"], summary["lock"]
    print()
    print(f"ratio ours / Lock (every cmd summed): {ours['summed_us'] / lock['summed_us']:.2f}x")
    print(
        f"ratio ours / Lock (top level):        {ours['top_level_us'] / lock['top_level_us']:.2f}x"
    )
    summed = ours["summed_us"]
    print(f"target ours <= {TARGET_US:g} us (every cmd summed): {summed:.1f} us", end=" ")
    print(verdict(summed <= TARGET_US))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--url", "--redis-url", help="use this server (its stats get reset) instead of starting one"
    )
    parser.add_argument("--cycles", type=int, default=1500, help="acquire+release per measurement")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="500 cycles x 2 rounds")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    args = parser.parse_args(argv)
    cycles, rounds = (500, 2) if args.quick else (args.cycles, args.rounds)
    if cycles < 1 or rounds < 1:
        parser.error("--cycles and --rounds must be >= 1")
    if args.url:
        summary = summarize(asyncio.run(run(args.url, cycles, rounds)))
    else:
        with local_server() as url:
            summary = summarize(asyncio.run(run(url, cycles, rounds)))
    report(summary, cycles, rounds)
    if args.json:
        print(json.dumps(summary))
    exit_if_hung()


if __name__ == "__main__":
    main()
