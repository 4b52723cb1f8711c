"""Step 08: growing and shrinking with demand.

What it teaches:

* ``size_provider`` is a zero-argument callable that reports current demand, in
  whatever unit suits you (connected devices, tenants, queued jobs);
* the manager targets ``max(min_pools, ceil(demand / units_per_pool))``
  executors, never more than ``max_pools``;
* ``notify_scale_changed()`` asks the manager to re-check now instead of at the
  next ``check_interval`` tick;
* shrinking only closes idle executors: a leased executor is never taken away.

Run it: ``python examples/08_adaptive_sizing.py``
"""

from __future__ import annotations

import asyncio

from leasepool import LeasedExecutorManager

connected_devices: set[str] = set()


def show(label: str, manager: LeasedExecutorManager) -> None:
    print(
        f"{label:<34} devices={len(connected_devices):>2} "
        f"desired={manager.desired_executor_count()} total={manager.total_count} "
        f"leased={manager.leased_count}"
    )


async def settle(manager: LeasedExecutorManager) -> None:
    manager.notify_scale_changed()
    # Resizing happens in the manager's background task; give it a moment.
    # Leased executors are never closed, so the floor is the number leased.
    for _ in range(100):
        await asyncio.sleep(0.01)
        target = max(manager.desired_executor_count(), manager.leased_count)
        if manager.total_count == target:
            return


async def main() -> None:
    manager = LeasedExecutorManager(
        backend="thread",
        min_pools=1,
        max_pools=4,
        units_per_pool=10,
        workers_per_pool=2,
        size_provider=lambda: len(connected_devices),
        # Long on purpose: every change below is applied through notify_scale_changed().
        check_interval=60,
    )
    await manager.start()
    try:
        show("started, no devices:", manager)

        connected_devices.update(f"device-{i}" for i in range(25))
        await settle(manager)
        show("25 devices (ceil(25/10) = 3):", manager)

        connected_devices.update(f"device-{i}" for i in range(25, 90))
        await settle(manager)
        show("90 devices (capped at max_pools):", manager)

        first = await manager.acquire(owner="long-job-1")
        second = await manager.acquire(owner="long-job-2")
        connected_devices.clear()
        await settle(manager)
        show("0 devices, two leases held:", manager)
        print("The held leases still work:", await first.run(sum, [1, 2, 3]))
        await first.release()
        await second.release()
        await settle(manager)
        show("0 devices, leases released:", manager)
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
