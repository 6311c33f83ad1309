"""The continuous pull's bookkeeping (pull.py) against every answer JetStream gives a pull
request: messages, heartbeats, 408/409 with what is left unfulfilled, refusals. A
subscriber on the consumer's request subject answers by hand, on a real nats-server, as
JetStream would (status and headers as JetStream writes them)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from sayna_sip.forwarder.pull import REFUSED_PAUSE, Puller

STREAM, DURABLE = "SIP_DELIVERIES", "by-hand"
HEARTBEAT = 0.05  # silent for 2 x this + 1 s: the requests are taken as gone


class ByHand:
    """The consumer's side of pull requests: what was asked, and answers to it."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.requests: asyncio.Queue[Msg] = asyncio.Queue()
        self.received: list[bytes] = []
        self.changes = 0

    async def on_message(self, msg: Msg) -> None:
        self.received.append(msg.data)

    def on_change(self) -> None:
        self.changes += 1

    async def asked(self) -> tuple[str, dict[str, int]]:
        msg = await asyncio.wait_for(self.requests.get(), 5)
        return msg.reply, json.loads(msg.data)

    async def answer(self, inbox: str, data: bytes = b"", **headers: str) -> None:
        await self.nc.publish(
            inbox, data, headers={k.replace("_", "-"): v for k, v in headers.items()} or None
        )
        await self.nc.flush()


async def settled(check: Callable[[], bool]) -> None:
    """Until the puller's subscription has handled what was sent (its own task)."""
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def pull(nats_client: Client) -> AsyncIterator[tuple[Puller, ByHand]]:
    hand = ByHand(nats_client)
    await nats_client.subscribe(
        f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{DURABLE}", cb=hand.requests.put
    )
    puller = Puller(nats_client, STREAM, DURABLE, hand.on_message, hand.on_change,
                    expires=30.0, heartbeat=HEARTBEAT)  # fmt: skip
    await puller.start()
    yield puller, hand


async def test_credits_follow_messages_and_what_the_server_left_unfulfilled(
    pull: tuple[Puller, ByHand], caplog: pytest.LogCaptureFixture
) -> None:
    puller, hand = pull
    caplog.set_level(logging.INFO, "sayna_sip.forwarder")
    assert await puller.request(5) and await puller.request(5)
    inbox, body = await hand.asked()
    await hand.asked()
    assert body == {"batch": 5, "expires": 30 * 10**9, "idle_heartbeat": int(HEARTBEAT * 1e9)}
    assert puller.credits == 10

    for n in range(2):
        await hand.answer(inbox, f"event {n}".encode())
    await settled(lambda: len(hand.received) == 2)
    assert puller.credits == 8 and hand.changes == 0

    await hand.answer(inbox, Status="100", Description="Idle Heartbeat")
    await hand.answer(inbox, Status="408", Description="Request Timeout", Nats_Pending_Messages="3")
    await settled(lambda: hand.changes == 1)
    assert puller.credits == 5

    await hand.answer(inbox, Status="409", Description="Exceeded MaxRequestBatch",
                      Nats_Pending_Messages="6")  # fmt: skip
    await settled(lambda: hand.changes == 2)
    assert puller.credits == 0  # never below nothing
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ['event=pull_request_ended status=409 description="Exceeded MaxRequestBatch"']
    assert {r.name for r in caplog.records} == {"sayna_sip.forwarder"}


@pytest.mark.parametrize(
    ("status", "description"), [("503", "No Responders"), ("409", "Consumer Deleted")]
)
async def test_a_refusal_voids_every_request_and_pauses_asking_once_logged(
    pull: tuple[Puller, ByHand], caplog: pytest.LogCaptureFixture, status: str, description: str
) -> None:
    puller, hand = pull
    caplog.set_level(logging.INFO, "sayna_sip.forwarder")
    assert await puller.request(5)
    inbox, _ = await hand.asked()
    for _ in range(2):  # one per open request: logged once per pause
        await hand.answer(inbox, Status=status, Description=description)
    await settled(lambda: hand.changes >= 1)
    await hand.nc.flush()
    assert puller.credits == 0
    refused_at = time.monotonic()
    assert not await puller.request(5)  # paused: asks nothing
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f'event=pull_refused status={status} description="{description}"']
    await asyncio.sleep(max(0.0, refused_at + REFUSED_PAUSE - time.monotonic()) + 0.05)
    assert await puller.request(5)  # a bounded pause, then it asks again
    assert REFUSED_PAUSE == 1.0


async def test_an_unknown_status_is_logged_and_changes_nothing(
    pull: tuple[Puller, ByHand], caplog: pytest.LogCaptureFixture
) -> None:
    puller, hand = pull
    caplog.set_level(logging.INFO, "sayna_sip.forwarder")
    assert await puller.request(5)
    inbox, _ = await hand.asked()
    await hand.answer(inbox, Status="100", Description="Idle Heartbeat")
    await hand.answer(inbox, Status="404", Description="No Messages")
    await hand.answer(inbox, Status="400", Description="Bad Request")
    await settled(lambda: bool(caplog.records))
    assert [r.getMessage() for r in caplog.records] == [
        'event=pull_status status=400 description="Bad Request"'
    ]
    assert puller.credits == 5 and hand.changes == 0


async def test_silence_is_counted_from_the_first_open_request_and_any_word_resets_it(
    pull: tuple[Puller, ByHand],
) -> None:
    puller, hand = pull
    lost_after = 2 * HEARTBEAT + 1.0
    first = time.monotonic()
    assert await puller.request(5)
    inbox, _ = await hand.asked()
    await asyncio.sleep(0.3)
    assert await puller.request(5)  # asking more does not make the first requests heard
    puller.check_alive(first + lost_after + 0.03)
    assert puller.credits == 0 and hand.changes == 1

    assert await puller.request(5)
    await asyncio.sleep(0.3)
    await hand.answer(inbox, Status="100", Description="Idle Heartbeat")
    heard = time.monotonic()
    await asyncio.sleep(0.05)  # the heartbeat handled
    puller.check_alive(heard + lost_after - 0.1)
    assert puller.credits == 5  # the heartbeat said they are still there
    puller.check_alive(heard + lost_after + 0.05)
    assert puller.credits == 0
