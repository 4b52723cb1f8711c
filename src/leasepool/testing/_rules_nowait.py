"""The rules of the no-wait fast path, ``acquire_nowait`` and ``release_nowait``.

Invariants the tests hold every coordinator to, whichever way it decides:

* ``WouldBlock`` is the only refusal and changes nothing: the caller falls back to
  ``acquire``/``release``, as the manager does;
* a no-wait grant counts exactly like any other (the cap, first-in-first-out, the
  fencing order, the hard-deadline promise) and any release frees it;
* it refuses before ``start``, after ``close``, when full, and when others wait.

Whether it ever completes is the class attribute ``decides_without_io``.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from leasepool._coordinator import Coordinator, Grant, GrantRequest, ReleaseOutcome
from leasepool._errors import LeaseUnavailableError, WouldBlock
from leasepool.testing._harness import (
    Harness,
    grant_either,
    in_own_loop,
    live_count,
    live_ids,
    release_either,
    start_waiter,
)


def try_acquire_nowait(
    h: Harness, c: Coordinator, request: GrantRequest, now: float | None = None
) -> Grant | None:
    """The grant, or None on ``WouldBlock``; ``now`` defaults to the harness clock."""
    try:
        return c.acquire_nowait(request, now=h.clock.monotonic() if now is None else now)
    except WouldBlock:
        return None


class NoWaitRules:
    """The no-wait fast path keeps every rule of the slow one."""

    decides_without_io: ClassVar[bool | None] = None
    """Whether ``acquire_nowait``/``release_nowait`` complete when they could: True, they
    must (a free slot with nobody waiting is granted); False, they always raise
    ``WouldBlock`` (the default ``Coordinator`` behaviour); None, either is accepted.
    The safety rules hold in every case."""

    def expect_nowait(self, completed: bool, *, could: bool, what: str) -> None:
        """Check one no-wait call against :attr:`decides_without_io`.

        ``could``: a coordinator that decides without I/O would complete this call.
        """
        if not could:
            assert not completed, f"{what} completed where it must raise WouldBlock"
        elif self.decides_without_io is True:
            assert completed, f"{what} raised WouldBlock though it could complete"
        elif self.decides_without_io is False:
            assert not completed, f"{what} completed; decides_without_io is False"

    @in_own_loop
    async def test_acquire_nowait_refuses_before_start_and_after_close(
        self, contract_harness: Harness
    ) -> None:
        """``acquire_nowait`` raises ``WouldBlock`` before ``start`` and after ``close``."""
        h = contract_harness
        c = await h.build(capacity=2)
        with pytest.raises(WouldBlock):
            c.acquire_nowait(h.request(), now=h.clock.monotonic())
        await h.start(c)
        first = try_acquire_nowait(h, c, h.request())
        self.expect_nowait(first is not None, could=True, what="acquire_nowait")
        await h.close()
        with pytest.raises(WouldBlock):
            c.acquire_nowait(h.request(), now=h.clock.monotonic())

    @in_own_loop
    async def test_acquire_nowait_grant_counts_like_acquire(
        self, contract_harness: Harness
    ) -> None:
        """A no-wait grant takes a slot, keeps the cap and the token order, and is released
        by ``release`` like any other."""
        h = contract_harness
        c = await h.make(capacity=2)
        sent = h.clock.monotonic()
        request = h.request(lease_units=4, grace_units=2)
        fast = try_acquire_nowait(h, c, request)
        self.expect_nowait(fast is not None, could=True, what="acquire_nowait")
        first = fast or await c.acquire(request, wait=False, deadline=None)
        record = (await c.status()).leases[0]
        assert first.hard_deadline <= sent + (record.hard_ms - record.acquired_ms) / 1000 + 0.001
        assert first.soft_deadline <= first.hard_deadline
        second = await c.acquire(h.request(), wait=False, deadline=None)
        assert try_acquire_nowait(h, c, h.request()) is None, "granted past the cap"
        with pytest.raises(LeaseUnavailableError):
            await c.acquire(h.request(), wait=False, deadline=None)
        assert live_ids(await c.status()) == {first.lease_id, second.lease_id}
        assert await c.release(first.lease_id) is ReleaseOutcome.RELEASED
        third = await grant_either(h, c, h.request())
        assert live_ids(await c.status()) == {second.lease_id, third.lease_id}
        assert first.fencing_token < second.fencing_token < third.fencing_token

    @in_own_loop
    async def test_acquire_nowait_never_barges_ahead_of_a_waiter(
        self, contract_harness: Harness
    ) -> None:
        """With callers queued, ``acquire_nowait`` raises ``WouldBlock``, even as a slot frees."""
        h = contract_harness
        c = await h.make(capacity=1)
        held = await grant_either(h, c, h.request())
        waiter_request = h.request()
        waiter = await start_waiter(h, c, waiter_request)
        assert try_acquire_nowait(h, c, h.request()) is None, "granted past the cap"
        # A clock reading ahead of the coordinator's timers (real clocks run on while
        # callbacks wait their turn): the held lease is past its hard deadline there,
        # yet the queued waiter still comes first.
        later = h.deadline(101)
        assert try_acquire_nowait(h, c, h.request(), now=later) is None, "barged past a waiter"
        assert await release_either(c, held.lease_id) is ReleaseOutcome.RELEASED
        assert try_acquire_nowait(h, c, h.request()) is None, "barged ahead of a waiter"
        grant = await asyncio.wait_for(waiter, 5)
        assert grant.lease_id == waiter_request.lease_id
        assert live_ids(await c.status()) == {waiter_request.lease_id}

    @in_own_loop
    async def test_release_nowait_has_the_outcomes_of_release(
        self, contract_harness: Harness
    ) -> None:
        """``release_nowait`` returns what ``release`` would; its ``WouldBlock`` frees nothing."""
        h = contract_harness
        c = await h.make(capacity=2)
        grant = await grant_either(h, c, h.request())
        try:
            outcome: ReleaseOutcome | None = c.release_nowait(grant.lease_id)
        except WouldBlock:
            outcome = None
            assert live_ids(await c.status()) == {grant.lease_id}, "WouldBlock yet released"
        self.expect_nowait(outcome is not None, could=True, what="release_nowait")
        if outcome is None:
            outcome = await c.release(grant.lease_id)
        assert outcome is ReleaseOutcome.RELEASED
        assert await release_either(c, grant.lease_id) is ReleaseOutcome.UNKNOWN
        assert await release_either(c, "never-granted") is ReleaseOutcome.UNKNOWN
        short = await grant_either(h, c, h.request(lease_units=1))
        await h.pass_time(2)
        assert await release_either(c, short.lease_id) is ReleaseOutcome.EXPIRED
        assert await release_either(c, short.lease_id) is ReleaseOutcome.UNKNOWN
        assert (await c.status()).leases == ()

    @in_own_loop
    async def test_release_nowait_hands_the_slot_to_a_waiter(
        self, contract_harness: Harness
    ) -> None:
        """A slot freed by ``release_nowait`` goes to the first waiter."""
        h = contract_harness
        c = await h.make(capacity=1)
        held = await grant_either(h, c, h.request())
        waiter_request = h.request()
        waiter = await start_waiter(h, c, waiter_request)
        assert await release_either(c, held.lease_id) is ReleaseOutcome.RELEASED
        grant = await asyncio.wait_for(waiter, 5)
        assert grant.lease_id == waiter_request.lease_id
        assert grant.fencing_token > held.fencing_token
        assert live_ids(await c.status()) == {waiter_request.lease_id}

    @in_own_loop
    async def test_mixed_fast_and_slow_paths_never_exceed_capacity(
        self, contract_harness: Harness
    ) -> None:
        """Callers that try the no-wait path first, then wait, never hold more than the cap."""
        h = contract_harness
        capacity, callers, rounds = 2, 6, 4
        c = await h.make(capacity=capacity)
        holding: set[str] = set()
        tokens: list[int] = []
        fast_grants = 0

        async def caller() -> None:
            nonlocal fast_grants
            for _ in range(rounds):
                request = h.request()
                grant = try_acquire_nowait(h, c, request)
                if grant is None:
                    grant = await c.acquire(request, wait=True, deadline=None)
                else:
                    fast_grants += 1
                holding.add(grant.lease_id)
                tokens.append(grant.fencing_token)
                assert len(holding) <= capacity
                assert await live_count(c) <= capacity
                await h.settle()
                # Counted out before the release: this count can only be low, never high.
                holding.discard(grant.lease_id)
                await release_either(c, grant.lease_id)

        await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(callers))), 30)
        assert len(tokens) == len(set(tokens)) == callers * rounds
        assert await live_count(c) == 0
        self.expect_nowait(fast_grants > 0, could=True, what="acquire_nowait")
