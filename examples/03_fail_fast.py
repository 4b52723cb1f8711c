"""Step 03: fail fast when there is no capacity.

What it teaches:

* ``await manager.acquire(wait=False)`` either returns a lease at once or raises
  ``LeaseUnavailableError``; it never queues;
* in a web handler, that maps naturally to ``503 Service Unavailable`` with a
  ``Retry-After`` header, so the client backs off instead of piling up requests
  behind a saturated dependency.

Run it: ``python examples/03_fail_fast.py``
"""

from __future__ import annotations

import asyncio
import time

from leasepool import LeasedExecutorManager, LeaseUnavailableError


def render_report(request_id: int) -> str:
    time.sleep(0.3)
    return f"report #{request_id}"


async def handle_request(manager: LeasedExecutorManager, request_id: int) -> tuple[int, str]:
    """A framework-free stand-in for an HTTP endpoint."""
    try:
        lease = await manager.acquire(owner=f"request-{request_id}", wait=False)
    except LeaseUnavailableError:
        return 503, "Service Unavailable (Retry-After: 1)"
    async with lease:
        return 200, await lease.run(render_report, request_id)


async def main() -> None:
    # One executor: only one report can render at a time.
    manager = LeasedExecutorManager(backend="thread", max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        print("Three requests arrive at once:")
        responses = await asyncio.gather(*(handle_request(manager, i) for i in (1, 2, 3)))
        for request_id, (status, body) in zip((1, 2, 3), responses, strict=True):
            print(f"  request {request_id} -> {status} {body}")

        print("A request after the first one finished:")
        status, body = await handle_request(manager, 4)
        print(f"  request 4 -> {status} {body}")
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
