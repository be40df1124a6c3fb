"""The store's retry policy: backoff that doubles, jitters and is capped."""

from __future__ import annotations

from journal.retry import RetryPolicy


def test_the_delay_doubles_from_the_base_then_stays_at_the_ceiling() -> None:
    policy = RetryPolicy(attempts=5, base_delay_s=0.05, max_delay_s=2.0)
    for retry, ceiling in [(1, 0.05), (2, 0.1), (3, 0.2), (6, 1.6), (7, 2.0)]:
        for _ in range(20):  # jitter: between half the ceiling and all of it
            assert ceiling / 2 <= policy.delay(retry) <= ceiling


def test_the_delay_of_a_very_late_retry_is_the_ceiling_not_an_overflow() -> None:
    """`journal seal --follow` restarts without limit through an outage: its
    thousandth restart must wait like its tenth (2.0 ** 1024 overflows)."""
    policy = RetryPolicy(attempts=5, base_delay_s=0.05, max_delay_s=2.0)
    for retry in (1_025, 10**6):
        assert 1.0 <= policy.delay(retry) <= 2.0
