"""Messages held in process for a fast host: in order, bounded in time."""

from __future__ import annotations

from typing import cast

from nats.aio.msg import Msg

from sayna_sip.common.delivery import Delivery
from sayna_sip.forwarder.hold import HOLD_MAX, Held, HoldQueues


def held(name: str, since: float) -> Held:
    return Held(cast(Msg, name), cast(Delivery, None), since)


def test_each_host_is_served_in_arrival_order() -> None:
    q = HoldQueues()
    for i, host in enumerate(["a", "b", "a", "a"]):
        q.push(host, held(f"{host}{i}", float(i)))
    assert len(q) == 4 and q.held("a") == 3 and q.held("b") == 1
    popped = [q.pop("a"), q.pop("a"), q.pop("b"), q.pop("a"), q.pop("a")]
    assert [str(p.msg) if p else None for p in popped] == ["a0", "a2", "b1", "a3", None]
    assert len(q) == 0 and q.next_expiry() is None


def test_what_waited_too_long_is_taken_out_the_rest_stays() -> None:
    q = HoldQueues()
    q.push("a", held("old", 0.0))
    q.push("a", held("new", HOLD_MAX))
    q.push("b", held("b-old", 0.1))
    assert q.next_expiry() == HOLD_MAX

    out = q.expired(HOLD_MAX + 0.5)

    assert sorted(str(h.msg) for h in out) == ["b-old", "old"]
    assert len(q) == 1 and q.held("b") == 0
    assert [str(h.msg) for h in q.take_all()] == ["new"] and len(q) == 0


def test_a_message_goes_back_to_jetstream_after_1_s_held() -> None:
    q = HoldQueues()
    q.push("a", held("m", 10.0))
    assert q.next_expiry() == 11.0
    assert q.expired(10.99) == [] and len(q) == 1
    assert [str(h.msg) for h in q.expired(11.01)] == ["m"] and len(q) == 0
