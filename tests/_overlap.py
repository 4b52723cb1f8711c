"""The cap check shared by the Redis and chaos suites."""

from __future__ import annotations

from collections.abc import Iterable


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at once (an end sorts before a start at the same instant)."""
    spans = list(intervals)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best
