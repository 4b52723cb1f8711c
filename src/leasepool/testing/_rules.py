"""The coordinator rules every implementation keeps, as tests (see :mod:`.contract`).

Each test names the rule of :class:`leasepool.Coordinator` it checks and drives the
coordinator only through that interface, on the harness's clock.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from leasepool._coordinator import ReleaseOutcome
from leasepool._errors import LeaseUnavailableError
from leasepool.testing._harness import Harness, in_own_loop, live_count, live_ids, start_waiter


class CoreRules:
    """Capacity, queueing, timeouts, cancellation, release, renewal, revocation, fencing."""

    @in_own_loop
    async def test_capacity_is_never_exceeded(self, contract_harness: Harness) -> None:
        """``acquire`` never grants more than ``capacity`` live slots at once."""
        h = contract_harness
        c = await h.make(capacity=3)
        requests = [h.request() for _ in range(10)]
        tasks = [asyncio.ensure_future(c.acquire(r, wait=True, deadline=None)) for r in requests]
        released: set[str] = set()
        for _ in range(10):
            await h.eventually(
                lambda: sum(t.done() for t in tasks) - len(released) == min(3, 10 - len(released)),
                "a free slot was not granted",
            )
            await h.settle()
            held = [t.result() for t in tasks if t.done() and t.result().lease_id not in released]
            assert len(held) <= 3
            assert await live_count(c) <= 3
            victim = held[0]
            assert await c.release(victim.lease_id) is ReleaseOutcome.RELEASED
            released.add(victim.lease_id)
        assert all(t.done() for t in tasks)
        assert await live_count(c) == 0

    @in_own_loop
    async def test_wait_false_is_refused_when_full(self, contract_harness: Harness) -> None:
        """``wait=False`` raises ``LeaseUnavailableError`` when the pool is full."""
        h = contract_harness
        c = await h.make(capacity=1)
        held = await c.acquire(h.request(), wait=False, deadline=None)
        with pytest.raises(LeaseUnavailableError):
            await c.acquire(h.request(), wait=False, deadline=None)
        assert live_ids(await c.status()) == {held.lease_id}

    @in_own_loop
    async def test_wait_false_never_barges_ahead_of_a_waiter(
        self, contract_harness: Harness
    ) -> None:
        """``wait=False`` is refused while others wait, even as a slot frees."""
        h = contract_harness
        c = await h.make(capacity=1)
        held = await c.acquire(h.request(), wait=False, deadline=None)
        waiter_request = h.request()
        waiter = await start_waiter(h, c, waiter_request)
        await c.release(held.lease_id)
        # The freed slot belongs to the queued waiter, not to a newcomer.
        with pytest.raises(LeaseUnavailableError):
            await c.acquire(h.request(), wait=False, deadline=None)
        grant = await asyncio.wait_for(waiter, 5)
        assert grant.lease_id == waiter_request.lease_id
        assert live_ids(await c.status()) == {waiter_request.lease_id}

    @in_own_loop
    async def test_waiters_are_served_first_in_first_out(self, contract_harness: Harness) -> None:
        """Waiters are granted in the order they started waiting."""
        h = contract_harness
        c = await h.make(capacity=1)
        held = await c.acquire(h.request(), wait=False, deadline=None)
        requests = [h.request() for _ in range(5)]
        waiters = [await start_waiter(h, c, r) for r in requests]
        order: list[str] = []
        current = held.lease_id
        for _ in requests:
            await c.release(current)
            done, _ = await asyncio.wait(waiters, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1, "exactly one waiter gets the one freed slot"
            task = done.pop()
            waiters.remove(task)
            current = task.result().lease_id
            order.append(current)
        assert order == [r.lease_id for r in requests]

    @in_own_loop
    async def test_timeout_raises_timeout_error_and_leaks_no_slot(
        self, contract_harness: Harness
    ) -> None:
        """A waiter past its deadline gets ``TimeoutError`` and leaves no slot behind."""
        h = contract_harness
        c = await h.make(capacity=1)
        held = await c.acquire(h.request(), wait=False, deadline=None)
        waiter = await start_waiter(h, c, h.request(), deadline=h.deadline(1))
        await h.pass_time(1.5)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(waiter, 5)
        await c.release(held.lease_id)
        await h.settle()
        fresh = await c.acquire(h.request(), wait=False, deadline=None)
        assert live_ids(await c.status()) == {fresh.lease_id}

    @in_own_loop
    async def test_deadline_does_not_matter_when_a_slot_is_free(
        self, contract_harness: Harness
    ) -> None:
        """A free slot is granted even with a deadline already due."""
        h = contract_harness
        c = await h.make(capacity=1)
        grant = await c.acquire(h.request(), wait=True, deadline=h.deadline(0))
        assert live_ids(await c.status()) == {grant.lease_id}

    @in_own_loop
    async def test_cancelled_waiter_leaks_nothing(self, contract_harness: Harness) -> None:
        """A cancelled waiter leaves no slot behind."""
        h = contract_harness
        c = await h.make(capacity=1)
        held = await c.acquire(h.request(), wait=False, deadline=None)
        waiter = await start_waiter(h, c, h.request())
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await c.release(held.lease_id)
        await h.settle()
        fresh = await c.acquire(h.request(), wait=False, deadline=None)
        assert live_ids(await c.status()) == {fresh.lease_id}

    @pytest.mark.parametrize("spin", [0, 1, 2, 3, 5, 8, 13, 40])
    @in_own_loop
    async def test_cancellation_at_any_moment_around_a_grant_leaks_nothing(
        self, contract_harness: Harness, spin: int
    ) -> None:
        """Cancel a waiter ``spin`` loop turns after the release that frees its slot."""
        h = contract_harness
        c = await h.make(capacity=1)
        held = await c.acquire(h.request(), wait=False, deadline=None)
        waiter = await start_waiter(h, c, h.request())
        await c.release(held.lease_id)
        for _ in range(spin):
            await asyncio.sleep(0)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        kept = set() if waiter.cancelled() else {waiter.result().lease_id}

        async def settled() -> bool:
            return live_ids(await c.status()) == kept

        for _ in range(100):
            if await settled():
                break
            await h.pass_time(0.02)
        assert live_ids(await c.status()) == kept
        for lease_id in kept:
            await c.release(lease_id)
        await h.settle()
        fresh = await c.acquire(h.request(), wait=False, deadline=None)
        assert live_ids(await c.status()) == {fresh.lease_id}

    @in_own_loop
    async def test_release_outcomes_and_idempotency(self, contract_harness: Harness) -> None:
        """``release`` says RELEASED, EXPIRED or UNKNOWN, and is idempotent."""
        h = contract_harness
        c = await h.make(capacity=2)
        grant = await c.acquire(h.request(), wait=False, deadline=None)
        assert await c.release(grant.lease_id) is ReleaseOutcome.RELEASED
        assert await c.release(grant.lease_id) is ReleaseOutcome.UNKNOWN
        assert await c.release("never-granted") is ReleaseOutcome.UNKNOWN
        short = await c.acquire(h.request(lease_units=1), wait=False, deadline=None)
        await h.pass_time(2)
        assert await c.release(short.lease_id) is ReleaseOutcome.EXPIRED
        assert await c.release(short.lease_id) is ReleaseOutcome.UNKNOWN

    @in_own_loop
    async def test_release_completes_when_the_caller_is_cancelled(
        self, contract_harness: Harness
    ) -> None:
        """``release`` completes even when the awaiting task is cancelled."""
        h = contract_harness
        c = await h.make(capacity=1)
        grant = await c.acquire(h.request(), wait=False, deadline=None)
        task = asyncio.ensure_future(c.release(grant.lease_id))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for _ in range(100):
            if not (await c.status()).leases:
                break
            await h.settle()
        assert (await c.status()).leases == ()
        await c.acquire(h.request(), wait=False, deadline=None)

    @in_own_loop
    async def test_renew_extends_a_live_lease_and_never_shortens_it(
        self, contract_harness: Harness
    ) -> None:
        """``renew`` extends a live lease, keeps its token, never shortens it."""
        h = contract_harness
        c = await h.make(capacity=1)
        grant = await c.acquire(h.request(lease_units=2), wait=False, deadline=None)
        before = (await c.status()).leases[0]
        renewed = (await c.renew({grant.lease_id: 8 * h.unit}))[grant.lease_id]
        assert renewed is not None
        assert renewed.fencing_token == grant.fencing_token
        assert renewed.hard_deadline > grant.hard_deadline
        assert renewed.soft_deadline > grant.soft_deadline
        await h.pass_time(3)  # past the original expiry
        after = (await c.status()).leases
        assert [r.lease_id for r in after] == [grant.lease_id]
        assert after[0].hard_ms > before.hard_ms
        shorter = (await c.renew({grant.lease_id: 0.1 * h.unit}))[grant.lease_id]
        assert shorter is not None
        assert shorter.hard_deadline >= renewed.hard_deadline
        assert shorter.soft_deadline >= renewed.soft_deadline
        assert (await c.status()).leases[0].hard_ms >= after[0].hard_ms

    @in_own_loop
    async def test_renew_never_revives_a_gone_lease(self, contract_harness: Harness) -> None:
        """``renew`` answers None for a released, expired or unknown lease."""
        h = contract_harness
        c = await h.make(capacity=3)
        released = await c.acquire(h.request(), wait=False, deadline=None)
        await c.release(released.lease_id)
        expired = await c.acquire(h.request(lease_units=1), wait=False, deadline=None)
        await h.pass_time(2)
        result = await c.renew({released.lease_id: 10 * h.unit, expired.lease_id: 10 * h.unit})
        assert result == {released.lease_id: None, expired.lease_id: None}
        assert await c.renew({"never-granted": 10 * h.unit}) == {"never-granted": None}
        assert (await c.status()).leases == ()

    @in_own_loop
    async def test_renew_takes_a_batch_in_one_call(self, contract_harness: Harness) -> None:
        """``renew`` takes many leases in one call, each with its own length."""
        h = contract_harness
        c = await h.make(capacity=3)
        a = await c.acquire(h.request(lease_units=2), wait=False, deadline=None)
        b = await c.acquire(h.request(lease_units=2), wait=False, deadline=None)
        gone = await c.acquire(h.request(lease_units=2), wait=False, deadline=None)
        await c.release(gone.lease_id)
        result = await c.renew(
            {a.lease_id: 6 * h.unit, b.lease_id: 7 * h.unit, gone.lease_id: h.unit}
        )
        assert set(result) == {a.lease_id, b.lease_id, gone.lease_id}
        ra, rb = result[a.lease_id], result[b.lease_id]
        assert ra is not None and rb is not None and result[gone.lease_id] is None
        assert ra.hard_deadline > a.hard_deadline and rb.hard_deadline > b.hard_deadline
        assert rb.hard_deadline > ra.hard_deadline
        assert await c.renew({}) == {}

    @in_own_loop
    async def test_revoke_removes_the_lease_and_calls_on_lost(
        self, contract_harness: Harness
    ) -> None:
        """``revoke`` removes a live lease and calls ``on_lost`` once."""
        h = contract_harness
        c = await h.make(capacity=1)
        grant = await c.acquire(h.request(), wait=False, deadline=None)
        assert await c.revoke(grant.lease_id) is True
        await h.eventually(lambda: grant.lease_id in h.lost, "on_lost was not called")
        assert await c.revoke(grant.lease_id) is False
        assert await c.revoke("never-granted") is False
        assert await c.release(grant.lease_id) is ReleaseOutcome.UNKNOWN
        assert await c.renew({grant.lease_id: h.unit}) == {grant.lease_id: None}
        assert h.lost.count(grant.lease_id) == 1
        await c.acquire(h.request(), wait=False, deadline=None)

    @in_own_loop
    async def test_revoke_hands_the_slot_to_a_waiter(self, contract_harness: Harness) -> None:
        """A revoked lease's slot goes to a waiter."""
        h = contract_harness
        c = await h.make(capacity=1)
        grant = await c.acquire(h.request(), wait=False, deadline=None)
        waiter = await start_waiter(h, c, h.request())
        assert await c.revoke(grant.lease_id)
        await asyncio.wait_for(waiter, 5)

    @in_own_loop
    async def test_growing_capacity_wakes_waiters(self, contract_harness: Harness) -> None:
        """Growing the capacity grants exactly the new slots, first in first out."""
        h = contract_harness
        c = await h.make(capacity=1)
        await c.acquire(h.request(), wait=False, deadline=None)
        waiters = [await start_waiter(h, c, h.request()) for _ in range(3)]
        await c.set_capacity(3)
        await h.eventually(lambda: sum(t.done() for t in waiters) >= 2, "new slots not granted")
        await h.settle()
        assert sum(t.done() for t in waiters) == 2, "exactly the two new slots are granted"
        assert [t.done() for t in waiters] == [True, True, False], f"FIFO {c.statistics()}"
        assert await live_count(c) == 3
        waiters[2].cancel()

    @in_own_loop
    async def test_shrinking_capacity_never_revokes(self, contract_harness: Harness) -> None:
        """Shrinking the capacity never revokes; new grants wait until under it."""
        h = contract_harness
        c = await h.make(capacity=3)
        grants = [await c.acquire(h.request(), wait=False, deadline=None) for _ in range(3)]
        await c.set_capacity(1)
        await h.settle()
        assert live_ids(await c.status()) == {g.lease_id for g in grants}
        assert h.lost == []
        renewed = await c.renew({g.lease_id: 50 * h.unit for g in grants})
        assert all(v is not None for v in renewed.values())
        with pytest.raises(LeaseUnavailableError):
            await c.acquire(h.request(), wait=False, deadline=None)
        await c.release(grants[0].lease_id)
        await c.release(grants[1].lease_id)
        with pytest.raises(LeaseUnavailableError):
            await c.acquire(h.request(), wait=False, deadline=None)
        await c.release(grants[2].lease_id)
        await c.acquire(h.request(), wait=False, deadline=None)
        assert (await c.status()).capacity == 1

    @in_own_loop
    async def test_fencing_tokens_strictly_increase(self, contract_harness: Harness) -> None:
        """Fencing tokens strictly increase per pool, handoffs included."""
        h = contract_harness
        c = await h.make(capacity=2)
        tokens: list[int] = []
        for _ in range(10):
            grant = await c.acquire(h.request(), wait=True, deadline=None)
            tokens.append(grant.fencing_token)
            await c.release(grant.lease_id)
        # Waiters granted by handoff too.
        held = await c.acquire(h.request(), wait=False, deadline=None)
        held2 = await c.acquire(h.request(), wait=False, deadline=None)
        tokens += [held.fencing_token, held2.fencing_token]
        waiter = await start_waiter(h, c, h.request())
        await c.release(held.lease_id)
        tokens.append((await asyncio.wait_for(waiter, 5)).fencing_token)
        assert all(isinstance(t, int) for t in tokens)
        assert tokens == sorted(set(tokens)), tokens

    @in_own_loop
    async def test_expired_slot_is_reclaimed_and_granted_to_a_waiter(
        self, contract_harness: Harness
    ) -> None:
        """A slot is reclaimed at its hard expiry, not before, and goes to a waiter."""
        h = contract_harness
        c = await h.make(capacity=1)
        abandoned = await c.acquire(
            h.request(lease_units=2, grace_units=1), wait=False, deadline=None
        )
        waiter = await start_waiter(h, c, h.request())
        await h.pass_time(2)
        assert not waiter.done(), "granted before the hard expiry"
        await h.pass_time(1.5)
        grant = await asyncio.wait_for(waiter, 5)
        assert grant.fencing_token > abandoned.fencing_token
        assert live_ids(await c.status()) == {grant.lease_id}
        assert await c.release(abandoned.lease_id) in (
            ReleaseOutcome.EXPIRED,
            ReleaseOutcome.UNKNOWN,
        )

    @in_own_loop
    async def test_hard_deadline_is_never_later_than_the_coordinators_expiry(
        self, contract_harness: Harness
    ) -> None:
        """``Grant.hard_deadline`` is never later than the coordinator's own expiry."""
        h = contract_harness
        c = await h.make(capacity=1)
        sent = h.clock.monotonic()
        grant = await c.acquire(h.request(lease_units=4, grace_units=2), wait=False, deadline=None)
        record = (await c.status()).leases[0]
        server_seconds = (record.hard_ms - record.acquired_ms) / 1000
        assert grant.hard_deadline <= sent + server_seconds + 0.001
        assert grant.soft_deadline <= grant.hard_deadline
        renewed = (await c.renew({grant.lease_id: 10 * h.unit}))[grant.lease_id]
        assert renewed is not None
        record = (await c.status()).leases[0]
        # The renewal was sent after ``sent``, so the same bound holds on the new expiry.
        assert renewed.hard_deadline <= sent + (record.hard_ms - record.acquired_ms) / 1000 + 0.001
