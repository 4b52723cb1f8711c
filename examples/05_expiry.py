"""Step 05: soft expiry, grace, and hard expiry.

What it teaches:

* every lease has a soft deadline (``lease_seconds`` after it was granted) and a
  hard deadline ``lease_grace_seconds`` later;
* at soft expiry the manager logs a warning, counts it, and calls the optional
  ``on_soft_expiry=`` callback with the lease. Work is still accepted during
  the grace period, so a caller can finish up (or renew, see step 11);
* at hard expiry the lease is revoked: ``lease.executor.submit`` raises
  ``LeaseExpiredError``. Work already running is left alone;
* ``manager.stats()["counters"]`` counts soft and hard expiries.

Run it: ``python examples/05_expiry.py``
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from leasepool import ExecutorLease, LeasedExecutorManager, LeaseExpiredError


def echo(value: str) -> str:
    return value


def warn_owner(lease: ExecutorLease) -> None:
    # A real service might page someone, or record which caller overstays.
    print(f"on_soft_expiry: lease {lease.lease_id} of {lease.owner!r} reached soft expiry")


async def sleep_until(deadline: float) -> None:
    # Lease timestamps are on the monotonic clock.
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def main() -> None:
    # Show the manager's own soft-expiry warning in line with our prints.
    logging.basicConfig(
        stream=sys.stdout, level=logging.WARNING, format="log %(levelname)s: %(message)s"
    )

    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=1,
        workers_per_pool=1,
        lease_grace_seconds=0.5,
        on_soft_expiry=warn_owner,
    )
    await manager.start()
    try:
        lease = await manager.acquire(owner="expiry-demo", lease_seconds=0.3)
        now = time.monotonic()
        print(f"Soft expiry in {lease.soft_expires_at - now:.2f} s")
        print(f"Hard expiry in {lease.hard_expires_at - now:.2f} s")
        print("Before soft expiry:", await lease.run(echo, "accepted"))

        await sleep_until(lease.soft_expires_at + 0.1)
        print("During grace:", await lease.run(echo, "still accepted"))

        await sleep_until(lease.hard_expires_at + 0.1)
        try:
            lease.executor.submit(echo, "too late")
        except LeaseExpiredError as exc:
            print("Late submit was rejected:", exc)

        counters = manager.stats()["counters"]
        print("soft_expiries:", counters["soft_expiries"])
        print("hard_expiries:", counters["hard_expiries"])

        # Releasing an expired lease is allowed and changes nothing.
        await lease.release()
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
