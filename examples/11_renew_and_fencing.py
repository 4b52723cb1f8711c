"""Step 11: renewing a lease, and fencing out stale holders.

What it teaches:

* ``await lease.renew(seconds)`` pushes a live lease's deadlines forward;
  ``renew()`` with no argument extends by the lease's own ``lease_seconds``;
* renewal never revives a lease that has been released or has expired;
* ``lease.fencing_token`` is an integer that strictly increases with every
  grant. Hand it to the resource you protect and let the resource refuse
  writes carrying a token older than the newest it has seen. That stops a
  holder that stalled past its expiry (a long GC pause, a frozen VM) from
  overwriting the work of the holder that replaced it.

Run it: ``python examples/11_renew_and_fencing.py``
"""

from __future__ import annotations

import asyncio
import itertools
import time

from leasepool import LeasedExecutorManager, LeaseExpiredError


class FencedStore:
    """A toy storage service that honours fencing tokens."""

    def __init__(self) -> None:
        self.highest_token = -1
        self.value: str | None = None

    def write(self, token: int, value: str) -> bool:
        if token < self.highest_token:
            return False
        self.highest_token = token
        self.value = value
        return True


async def renewing(manager: LeasedExecutorManager) -> None:
    lease = await manager.acquire(owner="renewer", lease_seconds=0.3)
    try:
        original_deadline = lease.hard_expires_at
        await lease.renew(1.0)
        moved = lease.hard_expires_at - original_deadline
        print(f"renew(1.0) moved the hard deadline by {moved:.2f} s")

        await asyncio.sleep(0.4)
        print("Past the original deadline, still usable:", await lease.run(str.upper, "ok"))

        await lease.renew()
        print("renew() with no argument extends by lease_seconds again")
    finally:
        await lease.release()

    try:
        await lease.renew(5)
    except LeaseExpiredError as exc:
        print("Renewing a released lease was refused:", exc)


async def fencing(manager: LeasedExecutorManager) -> None:
    store = FencedStore()
    tokens = []
    for _ in range(3):
        async with await manager.acquire(owner="token-demo") as lease:
            tokens.append(lease.fencing_token)
    print("Tokens from three successive leases:", tokens)
    print("Strictly increasing:", all(a < b for a, b in itertools.pairwise(tokens)))

    # Holder A takes a short lease, then stalls past its expiry.
    stale = await manager.acquire(owner="holder-a", lease_seconds=0.1)
    stale_token = stale.fencing_token
    await asyncio.sleep(0.2)

    # Holder B is granted the executor after A's lease expired, and writes.
    async with await manager.acquire(owner="holder-b", timeout=2) as fresh:
        print("holder-b write accepted:", store.write(fresh.fencing_token, "from B"))

    # A wakes up and, unaware, tries to write with its old token.
    print("holder-a write accepted:", store.write(stale_token, "from A"))
    print("Store still holds:", store.value)
    await stale.release()


async def main() -> None:
    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=1,
        workers_per_pool=1,
        lease_grace_seconds=0,
    )
    await manager.start()
    try:
        started = time.monotonic()
        await renewing(manager)
        await fencing(manager)
        print("renewals counted:", manager.stats()["counters"]["renewals"])
        print(f"done in {time.monotonic() - started:.1f} s")
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
