"""Create or update the NATS topology defined in `sayna_sip.common.topology`.

Idempotent and safe while services run: a resource that matches is left alone, a
differing setting (replicas, duplicate window, ack wait, ...) is applied in place, and a
change NATS cannot apply in place (storage type, work-queue retention, a non-editable
consumer field) fails with a TopologyChangeError naming the resource and the field.
Nothing is ever deleted and recreated: that would drop stored messages.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig, StreamConfig
from nats.js.errors import APIError, NotFoundError

from sayna_sip.common import contracts, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.provisioner.errors import TopologyChangeError
from sayna_sip.provisioner.summary import Outcome, Summary

log = logging.getLogger("sayna_sip.provisioner")


async def apply_topology(
    js: JetStreamContext, config: ServerConfig, summary: Summary | None = None
) -> Summary:
    """Bring every stream, KV bucket and consumer of `config`'s topology (with SIP off,
    only `topology.WITHOUT_SIP`) to its settings; what does not apply is left alone."""
    summary = summary if summary is not None else Summary()
    replicas = config.nats.replicas
    for stream in topology.streams(replicas, config.records):
        if topology.applies(stream.name or "", config):
            summary.record("stream", stream.name or "", await ensure_stream(js, stream))
    for bucket in topology.buckets(replicas):
        if topology.applies(bucket.bucket, config):
            summary.record("bucket", bucket.bucket, await ensure_bucket(js, bucket))
    partitions: list[Outcome] = []  # one summary entry for the router's partition durables
    for spec in topology.consumers(config):
        name = f"{spec.stream}/{spec.config.durable_name}"
        if not topology.applies(name, config):
            continue
        outcome = await ensure_consumer(js, spec)
        if spec.config.max_ack_pending == 1 and spec.stream == topology.LK_EVENTS:
            partitions.append(outcome)
            continue
        summary.record("consumer", name, outcome)
    last = contracts.LK_PARTITIONS - 1
    summary.record("consumer", f"{topology.LK_EVENTS}/router-p00..p{last:02d}", _worst(partitions))
    return summary


def _worst(outcomes: list[Outcome]) -> Outcome:
    for outcome in ("created", "updated"):
        if outcome in outcomes:
            return outcome
    return "unchanged"


async def ensure_stream(js: JetStreamContext, desired: StreamConfig) -> Outcome:
    name = desired.name or ""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(desired)
        log.info("event=nats_created kind=stream name=%s", name)
        return "created"
    return await _update_stream("stream", name, info.config, _diff(desired, info.config), js)


async def ensure_bucket(js: JetStreamContext, desired: KeyValueConfig) -> Outcome:
    """A KV bucket is a stream `KV_<bucket>`: created through the KV API, updated as a stream.

    nats-py's `create_key_value` refuses an existing bucket whose settings differ, so
    changes go through a stream update of the fields the bucket's config controls.
    """
    stream = f"KV_{desired.bucket}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        await js.create_key_value(desired)
        log.info("event=nats_created kind=bucket name=%s", desired.bucket)
        return "created"
    want = {
        "description": desired.description,
        "max_msgs_per_subject": desired.history,
        "max_age": desired.ttl or 0.0,
        "num_replicas": desired.replicas,
        "storage": desired.storage,
    }
    diff = {k: v for k, v in want.items() if v is not None and getattr(info.config, k) != v}
    return await _update_stream("bucket", desired.bucket, info.config, diff, js)


async def ensure_consumer(js: JetStreamContext, spec: topology.ConsumerSpec) -> Outcome:
    name = f"{spec.stream}/{spec.config.durable_name}"
    try:
        info = await js.consumer_info(spec.stream, spec.config.durable_name or "")
    except NotFoundError:
        await js.add_consumer(spec.stream, spec.config)
        log.info("event=nats_created kind=consumer name=%s", name)
        return "created"
    diff = _diff(spec.config, info.config)
    if not diff:
        return "unchanged"
    try:
        # Create-or-update: the server edits a durable in place when the fields allow it.
        await js.add_consumer(spec.stream, info.config.evolve(**diff))
    except APIError as exc:
        raise TopologyChangeError(_refused("consumer", name, info.config, diff, exc)) from exc
    log.info("event=nats_updated kind=consumer name=%s fields=%s", name, ",".join(diff))
    return "updated"


async def _update_stream(
    kind: str, name: str, current: StreamConfig, diff: dict[str, Any], js: JetStreamContext
) -> Outcome:
    if not diff:
        return "unchanged"
    try:
        await js.update_stream(current.evolve(**diff))
    except APIError as exc:
        raise TopologyChangeError(_refused(kind, name, current, diff, exc)) from exc
    log.info("event=nats_updated kind=%s name=%s fields=%s", kind, name, ",".join(diff))
    return "updated"


def _diff(
    desired: StreamConfig | ConsumerConfig, current: StreamConfig | ConsumerConfig
) -> dict[str, Any]:
    """The fields `desired` sets (not None) whose value differs from `current`."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(desired):
        want = getattr(desired, f.name)
        if want is not None and getattr(current, f.name) != want:
            out[f.name] = want
    return out


def _refused(
    kind: str,
    name: str,
    current: StreamConfig | ConsumerConfig,
    diff: dict[str, Any],
    exc: APIError,
) -> str:
    changes = ", ".join(
        f"{k} ({_show(getattr(current, k))} -> {_show(v)})" for k, v in diff.items()
    )
    return (
        f"NATS refused to update {kind} {name}: {changes}: {exc.description or exc} "
        f"(fix the configuration, or migrate the {kind} by hand)"
    )


def _show(value: Any) -> str:
    return str(getattr(value, "value", value))
