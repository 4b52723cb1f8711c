"""The coordinator contract as a pytest suite you can run against your own coordinator.

Subclass :class:`CoordinatorContract` in a test module (its name must start with
``Test``) and override the ``make_coordinator`` fixture with one that returns a
factory: ``factory(capacity)`` makes a new, unstarted coordinator of a pool no other
test uses. Every rule of :class:`leasepool.Coordinator` is then a test of your class::

    import pytest
    from leasepool.testing.contract import CoordinatorContract

    class TestMyCoordinator(CoordinatorContract):
        @pytest.fixture
        def make_coordinator(self, tmp_path):
            return lambda capacity: MyCoordinator(tmp_path, capacity=capacity)

This module needs pytest (``leasepool.testing`` itself does not). It needs no asyncio
plugin: each test runs in an event loop of its own, in which the factory is called
and every started coordinator is closed.

Invariants of the suite:

* Time is manual by default: the coordinator is started on a
  :class:`~leasepool.testing.ManualClock` that only the tests move, so nothing
  sleeps. A coordinator that keeps time elsewhere (a server) sets ``real_time = True``
  and a short ``time_unit``; every wait then has a wide margin (``eventually_seconds``).
* A test touches the coordinator only through the ``Coordinator`` interface.
* ``WouldBlock`` from ``acquire_nowait``/``release_nowait`` must change nothing; the
  caller falls back to the async call, exactly as the manager does.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from leasepool.testing._harness import CoordinatorFactory, Harness
from leasepool.testing._rules import CoreRules
from leasepool.testing._rules_nowait import NoWaitRules

__all__ = ["CoordinatorContract", "CoordinatorFactory", "Harness"]


class CoordinatorContract(CoreRules, NoWaitRules):
    """The contract suite; subclass it as ``Test...`` and override ``make_coordinator``.

    Class attributes tune it to your coordinator; the defaults suit one that runs on
    the clock passed to ``start`` and keeps no state outside the process.
    """

    real_time: ClassVar[bool] = False
    """False: coordinators start on a ManualClock that the tests advance. True: on the
    real monotonic clock, and the tests sleep."""
    time_unit: ClassVar[float] = 10.0
    """Seconds in one unit of test time; leases last a few units. Keep it short (a
    fraction of a second) with ``real_time``, long enough for one round trip."""
    settle_seconds: ClassVar[float] = 0.05
    """Real time only: how long to let in-flight events finish."""
    eventually_seconds: ClassVar[float] = 5.0
    """Real time only: the longest wait for something that must happen."""

    @pytest.fixture
    def make_coordinator(self) -> CoordinatorFactory:
        """Override: return ``factory(capacity)`` -> a new, unstarted coordinator.

        Each call must give a coordinator of the same fresh pool, one no other test
        uses; it may be an ``async`` function. It is called inside the test's loop.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override the make_coordinator fixture"
        )

    @pytest.fixture
    def contract_harness(self, make_coordinator: CoordinatorFactory) -> Harness:
        """The harness each test drives: builds coordinators from the factory, moves time."""
        return Harness(
            make_coordinator,
            real_time=self.real_time,
            unit=self.time_unit,
            settle_seconds=self.settle_seconds,
            eventually_seconds=self.eventually_seconds,
        )
