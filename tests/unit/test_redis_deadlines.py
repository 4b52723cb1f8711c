"""Local deadlines of the Redis coordinator, with exact numbers.

Scripts report server time rounded down to the millisecond; the real instant of the
script may be up to 0.999 ms later. Every deadline must stay on the safe side of that,
to the microsecond.
"""

from __future__ import annotations

import pytest

from leasepool._redis.deadlines import grant_deadlines, local_deadline, passed_by


def test_the_anchor_counts_as_one_millisecond_later_than_reported() -> None:
    # Sent at local 100.0 s; the script reported 5000 ms, so it ran at a server time in
    # [5000, 5001) ms, at or after local 100.0. Server 6000 ms is then at least
    # 999 ms after local 100.0 (when the script really ran at 5000.999), never 1000.
    assert local_deadline(100.0, 5000, 6000, 0.0) == pytest.approx(100.999, abs=1e-9)
    assert local_deadline(100.0, 5000, 6000, 0.0) <= 100.999 + 1e-9


def test_drift_shortens_what_lies_ahead_and_lengthens_what_lies_behind() -> None:
    # 1000 server ms after the (rounded-up) anchor last at least 990 local ms at 1%.
    assert local_deadline(10.0, 0, 1001, 0.01) == pytest.approx(10.99, abs=1e-9)
    # An instant before the anchor: 1001 ms before it, at most 1011.01 local ms back.
    assert local_deadline(10.0, 1000, 0, 0.01) == pytest.approx(10.0 - 1.01101, abs=1e-9)


@pytest.mark.parametrize("real_us_after", [0, 1, 500, 998, 999])
def test_never_later_than_the_server_reaching_the_instant(real_us_after: int) -> None:
    """Whatever the script's real instant within its reported millisecond, and with the
    reply arriving at once, the local deadline comes no later than the server instant."""
    t_sent, reported_ms, hard_ms = 50.0, 1_700_000_000_000, 1_700_000_000_250
    # Worst case: the script ran the moment the request was sent, at reported + x µs.
    real_ms = reported_ms + real_us_after / 1000
    truth = t_sent + (hard_ms - real_ms) / 1000  # local time at which Redis reaches hard_ms
    assert local_deadline(t_sent, reported_ms, hard_ms, 0.0) <= truth + 1e-9


def test_a_grant_is_timed_from_the_send_its_soft_deadline_never_after_its_hard() -> None:
    soft, hard = grant_deadlines(20.0, 1000, 1500, 2000, 0.0)
    assert soft == pytest.approx(20.499, abs=1e-9)
    assert hard == pytest.approx(20.999, abs=1e-9)
    soft, hard = grant_deadlines(20.0, 1000, 1001, 1001, 0.0)
    assert soft == hard == pytest.approx(20.0, abs=1e-9)


def test_passed_by_waits_until_the_server_is_surely_past() -> None:
    # Reply read at 7.0; script reported 1000 ms: the server reaches 1500 ms at most
    # 0.5 s * 1.01 later.
    assert passed_by(7.0, 1000, 1500, 0.01) == pytest.approx(7.505, abs=1e-9)
    assert passed_by(7.0, 1000, 900, 0.01) == 7.0
