"""The shipped contract suite (:mod:`leasepool.testing.contract`), run against both
built-in coordinators exactly as the author of a custom coordinator would run it.

Memory runs on a ManualClock (nothing sleeps) and decides the no-wait calls itself.
Redis runs on real server time, with a short time unit and wide margins, and always
answers the no-wait calls with ``WouldBlock``; the suite checks it still keeps the cap.
"""

from __future__ import annotations

import pytest

from leasepool import InMemoryCoordinator, RedisCoordinator
from leasepool.testing.contract import CoordinatorContract, CoordinatorFactory


class TestInMemoryCoordinator(CoordinatorContract):
    decides_without_io = True

    @pytest.fixture
    def make_coordinator(self, pool_name: str) -> CoordinatorFactory:
        return lambda capacity: InMemoryCoordinator(capacity=capacity, pool=pool_name)


@pytest.mark.redis
class TestRedisCoordinator(CoordinatorContract):
    real_time = True
    time_unit = 0.25
    decides_without_io = False

    @pytest.fixture
    def make_coordinator(self, redis_url: str, pool_name: str) -> CoordinatorFactory:
        return lambda capacity: RedisCoordinator.from_url(
            redis_url, pool=pool_name, capacity=capacity
        )
