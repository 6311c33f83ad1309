"""Rate limits per hook, across forwarders: three real forwarders on one NATS share a
hook's `rate_limit`; above it deliveries wait for their slot (no attempt spent, nothing
dead-lettered, nothing lost or sent twice), and a hook without a limit is not slowed."""

from __future__ import annotations

import random

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.forwarder.pace import Pacer
from tests.fixtures.https_sink import HttpsSink
from tests.forwarder.conftest import StartForwarder, drained, publish, put_hook, wait_dead


def most_in_any_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    most, lo = 0, 0
    for hi, at in enumerate(ordered):
        while at - ordered[lo] >= window:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


@pytest.mark.parametrize("peers", [1, 3])
def test_slots_are_evenly_spaced_at_this_forwarders_share(peers: int) -> None:
    pacer = Pacer()
    slots = [pacer.reserve("h", 20.0, peers, 100.0) for _ in range(5)]
    interval = peers / 20.0
    assert [round(s.at - 100.0, 6) for s in slots] == [round(i * interval, 6) for i in range(5)]
    assert slots[0].wait == 0.0 and slots[4].wait == pytest.approx(4 * interval)
    # Another hook has its own slots; an idle hook's next slot is now, not in the past.
    assert pacer.reserve("other", 20.0, peers, 100.0).wait == 0.0
    assert pacer.reserve("h", 20.0, peers, 200.0).wait == 0.0


def test_the_shares_of_all_forwarders_keep_the_limit_over_any_window() -> None:
    # Three forwarders, each reserving at its share as fast as messages come: the slots of
    # all of them together stay within rate * T + peers for every window T.
    rng = random.Random(5)
    pacers = [Pacer() for _ in range(3)]
    slots = [
        pacers[rng.randrange(3)].reserve("h", 20.0, 3, rng.uniform(0, 5)).at for _ in range(600)
    ]
    for window in (1.0, 2.0, 10.0):
        assert most_in_any_window(slots, window) <= 20.0 * window + 3


def test_a_paced_copy_holds_its_slot_and_its_own_dedupe_id() -> None:
    d = Delivery.first(
        event_id="EV_1", event="participant_joined", room="sip-r", hook="a.example.com",
        sip_host="a.example.com", received_at="1700000000.5",
    )  # fmt: skip
    copy = Delivery.from_headers(d.wait_headers(1700000005.0, paced=4.25))
    assert copy.paced == 4.25 and copy.attempt == 0 and copy.not_before == 1700000005.0
    assert copy.headers[Header.MSG_ID] != d.headers[Header.MSG_ID]
    # Its next copy (a retry after the attempt) waits for a slot of its own again.
    assert Delivery.from_headers(copy.retry_headers(1, 1.0)).paced is None
    assert Delivery.from_headers(d.to_headers()).paced is None  # a previous release's copy


async def _put_limited(js: JetStreamContext, host: str, url: str, limit: float) -> None:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    hook = Hook(host=host, url=url, source="runtime", rate_limit=limit)
    await kv.put(host_token(host), hook.encode())


@pytest.mark.serial  # a rate over wall-clock windows: alone, after the parallel pass
@pytest.mark.parametrize(
    ("limit", "events", "window", "late"),
    [
        # make test: 3 s of pacing, beside other suites' processes on 2 cores
        (50.0, 150, 2.0, 0.4),
        # make faults: the run, 600 events at 20/s, at most 220 in any 10 s
        pytest.param(20.0, 600, 10.0, 0.0, marks=pytest.mark.slow),
    ],
)
async def test_three_forwarders_share_a_rate_limit_and_spend_no_attempt_on_the_wait(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    limit: float,
    events: int,
    window: float,
    late: float,
) -> None:
    await _put_limited(jetstream, "slow.example.com", https_sink.url("/slow"), limit)
    await put_hook(jetstream, "fast.example.com", https_sink.url("/fast"))
    forwarders = [await start_forwarder() for _ in range(3)]
    for fwd in forwarders:
        assert fwd.peers is not None
        await fwd.peers.refresh()  # all three started: each takes a third
    slow = [await publish(jetstream, "slow.example.com") for _ in range(events)]
    fast = [await publish(jetstream, "fast.example.com") for _ in range(100)]

    await https_sink.wait_for(100, "/fast", timeout=10)
    fast_done = max(r.at for r in https_sink.received("/fast"))
    got = await https_sink.wait_for(events, "/slow", timeout=events / limit * 2 + 10)
    await drained(jetstream)

    times = [r.at for r in got]
    # 10 % over the limit at most in any window (the issue's: 10 s). An attempt goes at
    # or a little after its slot, so over much shorter windows the lateness shows: each
    # forwarder may have one late attempt fall inside a window beside its own share, and
    # a loaded machine that stalls the forwarders for `late` seconds lets the slots of
    # window + late arrive within one window (seen: 115 in 2 s at 50/s). Sending without
    # pacing puts all of them in one window; a forwarder taking the whole limit, 3x.
    most = most_in_any_window(times, window)
    assert most <= limit * (window * 1.1 + late) + len(forwarders), most
    span = max(times) - min(times)
    assert span >= (events - 3) / limit * 0.9  # paced, not all at once
    assert span <= events / limit * 1.6 + 1  # and not starved
    # Nothing lost, nothing sent twice, no attempt spent and nothing dead for the wait.
    assert sorted(r.headers["webhook-id"] for r in got) == sorted(e for e, _ in slow)
    assert all("webhook-id" in r.headers for r in https_sink.received("/fast"))
    assert await wait_dead(jetstream, 1, timeout=0.1) == []
    # The hook without a limit beside it went at full speed: done before the slow one.
    assert fast_done < min(times) + 3
    assert len(fast) == 100


def test_a_busy_hook_keeps_its_slots_when_the_pacer_trims_its_memory() -> None:
    pacer = Pacer()
    for _ in range(20):  # 1/s: its next slot is 20 s away
        pacer.reserve("busy", 1.0, 1, 100.0)
    for i in range(1100):  # past 1024 hooks, memory is trimmed of hooks long idle
        pacer.reserve(f"other{i}", 1.0, 1, 101.0)
    assert pacer.reserve("busy", 1.0, 1, 101.0).wait == pytest.approx(19.0)  # no burst
