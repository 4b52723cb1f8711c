"""The contract suite itself ships in :mod:`leasepool.testing.contract`; this folder runs
it against the built-in coordinators (``test_coordinator_contract.py``).

Fixtures come from ``tests/conftest.py``: ``pool_name`` (fresh per test, its Redis
keys deleted after) and ``redis_url`` (the session's real server).
"""
