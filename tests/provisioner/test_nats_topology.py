"""NATS topology: created from nothing, unchanged on re-run, changes applied or refused clearly."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, RetentionPolicy

from sayna_sip.common import contracts, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.provisioner.errors import TopologyChangeError
from sayna_sip.provisioner.nats_topology import apply_topology

# The whole table applies with SIP on (SIP off: test_cli's sip-off test).
SIP_ENV = {"SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "10.0.0.1"}
SIP_ON = ServerConfig.from_env(SIP_ENV)
ALL = [
    "stream:LK_EVENTS",
    "stream:SIP_DELIVERIES",
    "stream:SIP_DEAD",
    "stream:SIP_ATTEMPTS",
    "stream:SIP_AUDIT",
    "bucket:sip_hooks",
    "bucket:sip_rooms",
    "bucket:sip_access",
    "bucket:sip_lanes",
    "consumer:LK_EVENTS/router",
    "consumer:SIP_DELIVERIES/forwarders",
    "consumer:LK_EVENTS/router-p00..p15",  # one entry for the partitions' durables
]


async def test_topology_from_nothing_then_unchanged(nats_client: Client) -> None:
    js = nats_client.jetstream()

    first = await apply_topology(js, SIP_ON)
    second = await apply_topology(js, SIP_ON)

    assert first.names("created") == ALL
    await topology.check_topology(js)
    assert second.names("unchanged") == ALL
    assert not second.changed
    info = await js.stream_info(topology.LK_EVENTS)
    assert info.config.duplicate_window == topology.DUPLICATE_WINDOW


async def test_forwarder_timeout_change_updates_consumer_ack_wait(nats_client: Client) -> None:
    js = nats_client.jetstream()
    await apply_topology(js, SIP_ON)
    await js.publish(contracts.delivery_subject("example.com"), b"pending")
    slower = ServerConfig.from_env({**SIP_ENV, "FORWARDER_TIMEOUT": "45"})

    summary = await apply_topology(js, slower)

    assert summary.names("updated") == ["consumer:SIP_DELIVERIES/forwarders"]
    info = await js.consumer_info(topology.SIP_DELIVERIES, topology.FORWARDER_CONSUMER)
    assert info.config.ack_wait == 45 + topology.ACK_MARGIN
    assert info.num_pending == 1  # updated in place: nothing lost


async def test_stream_setting_drift_is_applied(nats_client: Client) -> None:
    js = nats_client.jetstream()
    await apply_topology(js, SIP_ON)
    info = await js.stream_info(topology.LK_EVENTS)
    await js.update_stream(info.config.evolve(duplicate_window=30.0))

    summary = await apply_topology(js, SIP_ON)

    assert summary.names("updated") == ["stream:LK_EVENTS"]
    info = await js.stream_info(topology.LK_EVENTS)
    assert info.config.duplicate_window == topology.DUPLICATE_WINDOW


async def test_bucket_created_elsewhere_with_other_history_is_updated(nats_client: Client) -> None:
    js = nats_client.jetstream()
    await js.create_key_value(KeyValueConfig(bucket=topology.HOOKS_BUCKET, history=1))
    kv = await js.key_value(topology.HOOKS_BUCKET)
    await kv.put("example_com", b"kept")

    summary = await apply_topology(js, SIP_ON)

    assert "bucket:sip_hooks" in summary.names("updated")
    info = await js.stream_info(f"KV_{topology.HOOKS_BUCKET}")
    assert info.config.max_msgs_per_subject == 10
    assert (await kv.get("example_com")).value == b"kept"


async def test_incompatible_stream_change_names_stream_and_field(nats_client: Client) -> None:
    js = nats_client.jetstream()
    await js.add_stream(
        name=topology.SIP_DELIVERIES,
        subjects=[contracts.DELIVERY_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
    )

    with pytest.raises(TopologyChangeError) as err:
        await apply_topology(js, SIP_ON)

    message = str(err.value)
    assert "stream SIP_DELIVERIES" in message
    assert "retention (limits -> workqueue)" in message
    assert "workqueue" in message.split(":", 2)[2]  # NATS's own reason is included


async def test_replicas_beyond_the_server_name_the_field(nats_client: Client) -> None:
    js = nats_client.jetstream()
    await apply_topology(js, SIP_ON)

    with pytest.raises(TopologyChangeError, match=r"stream LK_EVENTS: num_replicas \(1 -> 3\)"):
        await apply_topology(js, ServerConfig.from_env({**SIP_ENV, "NATS_REPLICAS": "3"}))


async def test_previous_release_router_durable_is_refiltered_in_place(
    nats_client: Client,
) -> None:
    """The previous release's `router` durable read `lk.events.>`; it now reads only the
    unpartitioned `lk.events.<event>` messages, from where it was (nothing read again)."""
    js = nats_client.jetstream()
    for stream in topology.streams():
        await js.add_stream(stream)
    previous = ConsumerConfig(
        durable_name=topology.ROUTER_CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0,
        max_deliver=-1, max_ack_pending=10_000, filter_subject="lk.events.>",
    )  # fmt: skip
    await js.add_consumer(topology.LK_EVENTS, previous)
    for name in ("EV_done", "EV_waiting"):
        await js.publish("lk.events.room_started", b"{}", headers={"Nats-Msg-Id": name})
    sub = await js.pull_subscribe_bind(topology.ROUTER_CONSUMER, stream=topology.LK_EVENTS)
    [done] = await sub.fetch(1, timeout=2)
    await done.ack_sync()
    await sub.unsubscribe()

    summary = await apply_topology(js, ServerConfig())

    assert "consumer:LK_EVENTS/router" in summary.names("updated")
    info = await js.consumer_info(topology.LK_EVENTS, topology.ROUTER_CONSUMER)
    assert info.config.filter_subject == "lk.events.*"
    assert info.num_pending == 1  # EV_waiting still to route, EV_done not again
    for p in range(contracts.LK_PARTITIONS):
        part = await js.consumer_info(topology.LK_EVENTS, topology.router_partition_consumer(p))
        assert part.config.max_ack_pending == 1 and part.num_pending == 0


async def test_incompatible_consumer_change_is_reported(nats_client: Client) -> None:
    js = nats_client.jetstream()
    for stream in topology.streams():
        await js.add_stream(stream)
    await js.add_consumer(
        topology.LK_EVENTS,
        ConsumerConfig(
            durable_name=topology.ROUTER_CONSUMER,
            ack_policy=AckPolicy.ALL,
            filter_subject=contracts.LK_EVENTS_SUBJECTS,
        ),
    )

    with pytest.raises(TopologyChangeError, match=r"consumer LK_EVENTS/router: .*ack_policy"):
        await apply_topology(js, SIP_ON)
