"""The shapes of ``manager.stats()`` and ``Coordinator.statistics()``, and the manager's counters.

Invariants:

* ``stats()`` and ``statistics()`` return plain ``dict`` objects at runtime, as in
  0.1.3; the ``TypedDict`` classes here only tell a type checker which keys exist.
* Every key is a number, a string, ``None``, a bool, or a list/dict of those, so a
  snapshot can be logged or serialised as JSON without conversion.
* Counters only ever grow while a manager lives (they are never reset).
* Reading them costs no I/O and takes no lock: call them on the manager's loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


class ManagerCounters(TypedDict):
    """``stats()["counters"]``: how often each thing happened since the manager was made."""

    acquires: int
    waits: int
    timeouts: int
    rejections: int
    releases: int
    soft_expiries: int
    hard_expiries: int
    renewals: int
    renewal_failures: int
    lost: int
    kills: int
    worker_deaths: int
    executors_created: int
    retirements: dict[str, int]
    """Executors retired, by reason (``"stopped"``, ``"terminated"``, ``"broken"``, ...)."""


class LeaseStats(TypedDict):
    """One live lease in ``stats()["leases"]``."""

    lease_id: str
    owner: str | None
    fencing_token: int
    seconds_until_soft_expiry: float
    seconds_until_hard_expiry: float
    running: int


class CoordinatorStatistics(TypedDict, total=False):
    """The keys every built-in coordinator's ``statistics()`` has; a custom one may omit any.

    ``Coordinator.statistics()`` returns an empty dict unless a subclass says more.
    """

    kind: str
    """``"memory"``, ``"redis"``, or what a custom coordinator calls itself."""
    pool: str
    capacity: int | None
    """``None``: unbounded."""
    held: int
    """Slots this process holds now."""
    waiting: int
    """Callers of this process waiting for a slot."""


class MemoryCoordinatorStatistics(CoordinatorStatistics):
    """``InMemoryCoordinator.statistics()``."""

    grants: int
    waits: int
    reclaimed: int
    """Slots freed at their hard expiry without a release."""


class RedisCoordinatorStatistics(CoordinatorStatistics):
    """``RedisCoordinator.statistics()``: this process's view plus its counters."""

    target: str
    """The Redis server, password redacted."""
    fair: bool
    process: str
    """``host:pid`` of this process, as Redis records its waiters."""
    pool_waiting: int | None
    """Callers waiting in the whole pool, as last read from Redis; None before any read."""
    unclaimed: int
    grants: int
    handoffs: int
    refusals: int
    waits: int
    timeouts: int
    round_trips: int
    events: int
    heartbeats: int
    claims: int
    claims_lost: int
    requeued: int
    orphans_released: int
    renewals: int
    lost: int


class ManagerStats(TypedDict):
    """``LeasedExecutorManager.stats()``: the 0.1.3 keys first, then the additions."""

    backend: str
    desired: int
    max_pools: int
    min_pools: int
    available: int
    leased: int
    total: int
    workers_per_pool: int
    leases: list[LeaseStats]
    waiting: int
    retiring: int
    overrunning: int
    """Tasks still running after their lease hit its hard expiry or was lost."""
    draining: int
    """Tasks of released leases still finishing."""
    counters: ManagerCounters
    coordinator: CoordinatorStatistics


@dataclass(slots=True)
class Counters:
    """The manager's mutable counters; :meth:`snapshot` is ``stats()["counters"]``."""

    acquires: int = 0
    waits: int = 0
    timeouts: int = 0
    rejections: int = 0
    releases: int = 0
    soft_expiries: int = 0
    hard_expiries: int = 0
    renewals: int = 0
    renewal_failures: int = 0
    lost: int = 0
    kills: int = 0
    worker_deaths: int = 0
    executors_created: int = 0
    retirements: dict[str, int] = field(default_factory=dict)

    def retire(self, reason: str) -> None:
        self.retirements[reason] = self.retirements.get(reason, 0) + 1

    def snapshot(self) -> ManagerCounters:
        return {
            "acquires": self.acquires,
            "waits": self.waits,
            "timeouts": self.timeouts,
            "rejections": self.rejections,
            "releases": self.releases,
            "soft_expiries": self.soft_expiries,
            "hard_expiries": self.hard_expiries,
            "renewals": self.renewals,
            "renewal_failures": self.renewal_failures,
            "lost": self.lost,
            "kills": self.kills,
            "worker_deaths": self.worker_deaths,
            "executors_created": self.executors_created,
            "retirements": dict(self.retirements),
        }
