"""Fire concurrent requests at the example web app and check the global capacity held.

Each ``POST /work`` answer carries the wall-clock start and end of the work as
the worker itself measured them; the largest number of those intervals that
overlap is the concurrency actually reached across every replica and worker
process. It must never exceed the pool's capacity.

    python deploy/load.py --url http://localhost:8000 --requests 48 --concurrency 24

Standard library only, so it runs in any Python >= 3.11. Exit status: 0 when the
concurrency stayed within the capacity and every answer was 200 or 503, 1
otherwise, 2 when the app could not be reached at all.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# The targets are our own services: never send this traffic through a proxy
# that the environment may name in http_proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class Answer:
    target: str
    status: int  # 0: no HTTP answer at all (connection refused, timeout)
    body: dict[str, Any]


def max_concurrency(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals ``[start, end)`` that overlap at any instant."""
    pairs = list(intervals)
    # At equal times an end (-1) sorts before a start (+1): work that ends exactly
    # when other work starts did not run alongside it.
    events = sorted([(start, 1) for start, _ in pairs] + [(end, -1) for _, end in pairs])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def expand_targets(urls: Sequence[str]) -> list[str]:
    """One target per address a URL's host resolves to.

    Under Compose the name ``web`` resolves to every replica; connecting by
    name would let the resolver's order pick one replica for most requests.
    """
    targets: list[str] = []
    for url in urls:
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        host, port = parts.hostname, parts.port or 80
        if host is None:
            raise SystemExit(f"not an http URL: {url!r}")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise SystemExit(f"cannot resolve {host!r}: {exc}") from None
        addresses = sorted({str(info[4][0]) for info in infos if info[0] == socket.AF_INET})
        if not addresses:  # IPv6 only: keep the name
            targets.append(f"{parts.scheme}://{parts.netloc}")
        for address in addresses:
            targets.append(f"{parts.scheme}://{address}:{port}")
    return list(dict.fromkeys(targets))


def request(target: str, method: str, path: str, timeout: float) -> Answer:
    data = b"" if method == "POST" else None
    req = urllib.request.Request(target + path, data=data, method=method)
    try:
        with _OPENER.open(req, timeout=timeout) as response:
            return Answer(target, response.status, json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"detail": raw.decode(errors="replace")[:200]}
        return Answer(target, exc.code, body)
    except (OSError, ValueError) as exc:
        return Answer(target, 0, {"detail": f"{type(exc).__name__}: {exc}"})


def wait_until_ready(targets: Sequence[str], seconds: float) -> list[str]:
    """Targets whose /healthz answered 200 within ``seconds``."""
    deadline = time.monotonic() + seconds
    pending = list(targets)
    ready: list[str] = []
    while pending and time.monotonic() < deadline:
        for target in list(pending):
            if request(target, "GET", "/healthz", timeout=2).status == 200:
                pending.remove(target)
                ready.append(target)
        if pending:
            time.sleep(0.5)
    return ready


def run(args: argparse.Namespace) -> int:
    urls = args.url or os.environ.get("LOAD_TARGETS", "http://localhost:8000").split(",")
    targets = expand_targets([url.strip() for url in urls if url.strip()])
    ready = wait_until_ready(targets, args.wait)
    if not ready:
        print(f"no target answered /healthz within {args.wait:g} s: {targets}", file=sys.stderr)
        return 2
    capacity = args.capacity
    if capacity is None:
        # "pool" is read from Redis by the app; "coordinator" is that worker's
        # last sight of it, a fallback for an app without the "pool" section.
        stats = request(ready[0], "GET", "/stats", timeout=10).body
        seen = stats.get("pool", {}).get("capacity") or stats.get("coordinator", {}).get("capacity")
        capacity = int(seen) if seen else None

    print(
        f"firing {args.requests} requests (ms={args.ms}), {args.concurrency} at a time, "
        f"at {len(ready)} target(s): {', '.join(ready)}"
    )
    path = f"/work?ms={args.ms}"
    started = time.monotonic()
    step = args.ramp / args.requests

    def fire(i: int) -> Answer:
        # Spread the starts: connections that all arrive in one instant are often
        # accepted by a single uvicorn worker process, which drains the shared
        # listening socket's whole backlog at once, leaving the others idle.
        delay = started + i * step - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return request(ready[i % len(ready)], "POST", path, args.timeout)

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        answers = list(pool.map(fire, range(args.requests)))
    elapsed = time.monotonic() - started

    served = [a for a in answers if a.status == 200]
    peak = max_concurrency([(a.body["started_at"], a.body["ended_at"]) for a in served])
    by_status = collections.Counter(a.status for a in answers)
    by_worker = collections.Counter(f"{a.body.get('host')}:{a.body.get('pid')}" for a in served)
    waited = [float(a.body.get("waited_ms", 0.0)) for a in served]
    unexpected = [a for a in answers if a.status not in (200, 503)]
    within = capacity is None or peak <= capacity
    summary = {
        "requests": len(answers),
        "elapsed_s": round(elapsed, 3),
        "status": {str(code): n for code, n in sorted(by_status.items())},
        "workers": dict(sorted(by_worker.items())),
        "waited_ms_median": round(statistics.median(waited), 1) if waited else None,
        "waited_ms_max": round(max(waited), 1) if waited else None,
        "max_concurrency": peak,
        "capacity": capacity,
        "within_capacity": within,
        "errors": [{"target": a.target, "status": a.status, **a.body} for a in unexpected[:5]],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"answers: {dict(by_status)} in {elapsed:.2f} s")
        print(f"served by {len(by_worker)} worker process(es):")
        for worker, count in sorted(by_worker.items()):
            print(f"  {worker:<32} {count}")
        if waited:
            median = summary["waited_ms_median"]
            print(f"waited for a lease: median {median} ms, max {max(waited):.0f} ms")
        for error in summary["errors"]:
            print(f"unexpected answer: {error}")
        verdict = "OK" if within else "EXCEEDED"
        print(f"max observed concurrency: {peak} / capacity {capacity}  {verdict}")
    return 0 if within and not unexpected else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        action="append",
        help="base URL of the app; repeatable (default: $LOAD_TARGETS, comma-separated, "
        "else http://localhost:8000)",
    )
    parser.add_argument("--requests", type=int, default=48, help="requests in all (default 48)")
    parser.add_argument("--concurrency", type=int, default=24, help="at once (default 24)")
    parser.add_argument("--ms", type=int, default=300, help="work per request in ms (default 300)")
    parser.add_argument(
        "--capacity", type=int, help="expected capacity (default: read from GET /stats)"
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=0.5,
        help="spread the request starts over this many seconds (default 0.5)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, s")
    parser.add_argument("--wait", type=float, default=60.0, help="wait this long for /healthz")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    if args.ramp < 0:
        parser.error("--ramp must not be negative")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
