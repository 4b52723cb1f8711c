"""Tasks for benchmarks/process_overhead.py's worker processes.

They live in an importable module, not in the script, so both serializers send
them by reference, as they would send an application's own functions.
"""

from __future__ import annotations


def noop() -> None:
    return None


def size_of(items: list[int]) -> int:
    return len(items)
