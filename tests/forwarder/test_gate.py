"""Per-host admission: cap, busy delays that follow the host's speed, breaker deferrals."""

from __future__ import annotations

import random

import pytest

from sayna_sip.forwarder.breaker import BreakerSettings
from sayna_sip.forwarder.gate import BUSY_CEILING, QUEUE_CEILING, HostGate


def gate(cap: int = 2) -> HostGate:
    return HostGate(cap, BreakerSettings(min_requests=3, open_for=10.0), random.Random(1))


def test_cap_is_per_host_and_released_slots_are_reusable() -> None:
    g = gate()
    assert g.admit("a", 0.0) is None and g.admit("a", 0.0) is None
    busy = g.admit("a", 0.0)
    assert busy is not None and busy.reason == "busy"
    assert g.admit("b", 0.0) is None  # another tenant is not affected
    g.release("a", 0.0, True, 0.01)
    assert g.admit("a", 0.02) is None


def test_busy_delay_grows_with_a_hanging_request_up_to_a_ceiling() -> None:
    g = gate(cap=1)
    assert g.admit("slow", 0.0) is None
    early = g.admit("slow", 0.01)
    late = HostGate(1, BreakerSettings(), random.Random(1))
    assert late.admit("slow", 0.0) is None
    hanging = late.admit("slow", 30.0)
    assert early is not None and hanging is not None
    assert early.delay < 0.3 and BUSY_CEILING <= hanging.delay <= BUSY_CEILING * 2 * 1.2


def test_a_busy_hosts_backlog_is_spread_over_its_drain_time_not_returned_at_once() -> None:
    # A hanging host (2 s per request, cap 2): every deferred message booked the next
    # expected free slot, so the backlog returns about cap/2 s, not all after 2 s.
    g = gate(cap=2)
    assert g.admit("hole", 0.0) is None and g.admit("hole", 0.0) is None
    delays = [d.delay for d in (g.admit("hole", 2.0) for _ in range(20)) if d is not None]
    assert len(delays) == 20
    assert delays[0] < 2.5 and delays[-1] > 15.0  # 20 messages, 1 s apart
    assert max(delays) <= QUEUE_CEILING * 1.2
    assert g.admit("other", 2.0) is None  # another tenant is not affected


def test_failures_open_the_breaker_and_defer_until_half_open() -> None:
    g = gate(cap=5)
    for i in range(3):
        assert g.admit("dead", float(i)) is None
        opened = g.release("dead", float(i), False, float(i) + 0.5)
    assert opened
    defer = g.admit("dead", 3.0)
    assert defer is not None and defer.reason == "breaker" and 9.5 <= defer.delay <= 11.5
    assert g.admit("dead", 13.0) is None  # half-open probe
    assert g.admit("dead", 13.0) is not None  # others wait for its verdict
    assert g.release("dead", 13.0, True, 13.1) is False
    assert g.admit("dead", 13.2) is None  # closed again


def test_refused_targets_do_not_count_for_the_breaker() -> None:
    g = gate(cap=5)
    for i in range(5):
        g.admit("blocked", float(i))
        assert g.release("blocked", float(i), None, float(i)) is False
    assert g.admit("blocked", 6.0) is None


def test_a_fast_host_at_its_cap_may_hold_what_it_drains_soon_a_slow_one_none() -> None:
    g = gate(cap=2)
    assert g.admit("fast", 0.0) is None and g.admit("fast", 0.0) is None
    assert g.hold_limit("fast", 0.0) == 0  # no answer yet: a black hole looks the same
    now = 0.0
    for _ in range(10):  # 5 ms requests, two at a time
        g.release("fast", now, True, now + 0.005)
        g.release("fast", now, True, now + 0.005)
        now += 0.01
        assert g.admit("fast", now) is None and g.admit("fast", now) is None
    assert g.hold_limit("fast", now + 0.001) >= 100  # 2 slots x 500 ms / 5 ms = 200

    g.admit("slow", 0.0)
    g.admit("slow", 0.0)
    g.release("slow", 0.0, True, 2.0)  # 2 s per request
    assert g.hold_limit("slow", 2.0) == 0


def test_a_host_that_starts_hanging_holds_nothing() -> None:
    g = gate(cap=2)
    g.admit("h", 0.0)
    g.release("h", 0.0, True, 0.002)  # fast so far
    g.admit("h", 1.0)
    g.admit("h", 1.0)
    assert g.hold_limit("h", 1.001) > 10
    assert g.hold_limit("h", 3.0) == 0  # its requests have been running for 2 s


def test_a_host_behind_an_open_breaker_holds_nothing() -> None:
    g = gate(cap=5)
    for i in range(3):
        g.admit("dead", float(i))
        g.release("dead", float(i), False, float(i) + 0.001)
    assert g.hold_limit("dead", 3.0) == 0


class _Edge(random.Random):
    """The jitter at one end of its range, so a delay can be asserted exactly."""

    def __init__(self, top: bool) -> None:
        super().__init__(1)
        self._top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self._top else a


def test_a_busy_delay_is_the_booked_slot_within_20_percent_either_way() -> None:
    # cap 1, one request running for 0.5 s: its slot is expected free in 0.5 s and the
    # message booked after it, 1 s from now, give or take 20 %.
    for top, factor in ((False, 0.8), (True, 1.2)):
        g = HostGate(1, BreakerSettings(), _Edge(top))
        assert g.admit("h", 0.0) is None
        busy = g.admit("h", 0.5)
        assert busy is not None and busy.delay == pytest.approx(1.0 * factor)


def test_a_hanging_hosts_messages_come_back_every_2_s_at_most_30_s_out() -> None:
    g = HostGate(1, BreakerSettings(), _Edge(top=False))
    assert g.admit("hole", 0.0) is None
    delays = [d.delay for d in (g.admit("hole", 100.0) for _ in range(20)) if d is not None]
    # A request hanging for 100 s counts as 2 s (BUSY_CEILING): slots booked 2 s apart,
    # the first after the running one, none further out than 30 s (QUEUE_CEILING).
    assert delays[:3] == pytest.approx([4.0 * 0.8, 6.0 * 0.8, 8.0 * 0.8])
    assert delays[-1] == pytest.approx(30.0 * 0.8)


def test_an_open_breakers_backlog_comes_back_spread_over_a_fifth_of_open_for() -> None:
    g = gate(cap=50)
    for i in range(3):
        assert g.admit("dead", float(i)) is None
        g.release("dead", float(i), False, 2.5)  # opened at 2.5, open for 10 s
    delays = [d.delay for d in (g.admit("dead", 3.0) for _ in range(50)) if d is not None]
    assert len(delays) == 50
    assert min(delays) >= 9.5 and max(delays) <= 9.5 + 2.0  # open_for 10 s, + up to 20 %
    assert max(delays) - min(delays) > 1.0  # spread out: not one burst at half-open


def test_the_hosts_speed_is_its_first_answer_then_moves_a_fifth_towards_each_next() -> None:
    g = gate(cap=2)
    g.admit("h", 0.0)
    g.release("h", 0.0, True, 0.010)  # 10 ms: 2 slots x 500 ms / 10 ms
    assert g.hold_limit("h", 1.0) == 100
    g.admit("h", 1.0)
    g.release("h", 1.0, True, 1.110)  # one of 110 ms: 10 ms + (110 - 10) / 5 = 30 ms
    assert g.hold_limit("h", 2.0) == 33
