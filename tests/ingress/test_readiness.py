"""StoreHealth: the evidence /readyz judges by, on a clock the test moves."""

from __future__ import annotations

from sayna_sip.ingress.readiness import StoreHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trouble_shorter_than_the_budget_is_ridden_through_and_longer_is_not() -> None:
    clock = Clock()
    health = StoreHealth(10.0, clock)
    assert health.why_not() is None
    health.trouble()
    clock.now += 9.9
    health.trouble()  # still the same stretch: it started at the first failure
    assert health.why_not() is None
    clock.now += 0.1
    assert "longer than the 10 s store budget" in (health.why_not() or "")
    health.fine()
    assert health.why_not() is None


def test_a_refused_webhook_is_not_ready_until_one_is_stored_or_the_budget_passes() -> None:
    clock = Clock()
    health = StoreHealth(2.0, clock)
    health.refused()
    health.fine()  # the topology answers, but a webhook was just refused
    assert "could not be stored" in (health.why_not() or "")
    health.stored()
    assert health.why_not() is None
    health.refused()
    clock.now += 2.0
    health.fine()
    assert health.why_not() is None  # the probe decides again
