"""Counters behind ``manager.stats()``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(slots=True)
class Counters:
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

    def snapshot(self) -> dict[str, object]:
        data = asdict(self)
        data["retirements"] = dict(self.retirements)
        return data
