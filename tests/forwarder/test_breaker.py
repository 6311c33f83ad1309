"""Circuit breaker with Convoy's defaults, driven by an explicit clock."""

from __future__ import annotations

from sayna_sip.forwarder.breaker import BreakerSettings, CircuitBreaker


def test_opens_at_70_percent_failures_over_at_least_10_attempts() -> None:
    cb = CircuitBreaker(BreakerSettings())
    for i in range(6):
        assert cb.record(False, float(i)) is False  # 6 failures, below min_requests
    for i in range(3):
        cb.record(True, 6.0 + i)
    assert not cb.is_open  # 9 attempts
    assert cb.record(False, 10.0) is True  # 7/10 failed
    assert cb.wait(10.0) == 30.0 and cb.wait(25.0) == 15.0


def test_mostly_successful_host_stays_closed() -> None:
    cb = CircuitBreaker(BreakerSettings())
    for i in range(100):
        cb.record(i % 3 != 0, float(i))  # a third fail
    assert cb.wait(100.0) is None


def test_old_failures_leave_the_window() -> None:
    cb = CircuitBreaker(BreakerSettings())
    for i in range(9):
        cb.record(False, float(i))
    # 5 minutes later the window holds only the new attempt
    assert cb.record(False, 400.0) is False
    assert not cb.is_open


def test_half_open_sends_one_probe_and_closes_on_success() -> None:
    cb = CircuitBreaker(BreakerSettings())
    for i in range(10):
        cb.record(False, float(i))
    assert cb.wait(45.0) is None  # half-open: this caller is the probe
    others = cb.wait(45.0)  # the others wait for its verdict, not a whole open period
    assert others is not None and 0 < others < BreakerSettings().open_for
    cb.record(True, 46.0)
    assert cb.wait(46.0) is None and not cb.is_open


def test_failed_probe_opens_again() -> None:
    cb = CircuitBreaker(BreakerSettings())
    for i in range(10):
        cb.record(False, float(i))
    assert cb.wait(40.0) is None
    assert cb.record(False, 41.0) is True
    assert cb.wait(41.0) == 30.0
