"""Fixtures of the chaos suite: one protected resource per session, one scenario per test.

Every test module here marks its tests ``chaos`` (and ``redis``, ``slow``). A scenario's
worker processes, servers and proxies are killed when the test ends, pass or fail.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _chaos_harness import Scenario, record_verdict
from _chaos_resource import Resource

VERDICT = pytest.StashKey[tuple[bool, str]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        lines = str(report.longrepr or "").splitlines()
        reason = [line[1:].strip() for line in lines if line.startswith("E ")]
        item.stash[VERDICT] = (report.passed, (reason or [""])[0][:200])


@pytest.fixture(scope="session")
def resource() -> Iterator[Resource]:
    found = Resource()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest, resource: Resource, redis_url: str, pool_name: str
) -> Iterator[Callable[..., Scenario]]:
    """``scenario(name, capacity, url=None)``: a scenario cleaned up after the test."""
    made: list[Scenario] = []

    def make(name: str, capacity: int, url: str | None = None) -> Scenario:
        # The first pool is the fixture's, whose keys are deleted after the test.
        pool = pool_name if not made else f"{pool_name}-{len(made)}"
        found = Scenario(
            name, pool=pool, capacity=capacity, resource=resource, url=url or redis_url
        )
        made.append(found)
        return found

    try:
        yield make
    finally:
        for found in made:
            found.cleanup()
        passed, why = request.node.stash.get(VERDICT, (False, "did not run to the end"))
        for found in made:
            record_verdict(found.name, passed, why)
