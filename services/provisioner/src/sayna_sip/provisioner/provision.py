"""One provisioning run: NATS topology, then static hooks, then LiveKit SIP.

The order matters: the hooks live in a KV bucket the topology creates, and LiveKit comes
last so a NATS problem never leaves a trunk pointing at a pipeline that cannot store.
"""

from __future__ import annotations

import logging

import nats.errors
from nats.aio.client import Client

from sayna_sip.common import natsconn, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.provisioner.errors import ProvisionError
from sayna_sip.provisioner.livekit_provision import Retry, provision_livekit
from sayna_sip.provisioner.nats_topology import apply_topology
from sayna_sip.provisioner.static_hooks import sync_static_hooks
from sayna_sip.provisioner.summary import Summary

log = logging.getLogger("sayna_sip.provisioner")


async def provision(config: ServerConfig, *, livekit_retry: Retry | None = None) -> Summary:
    """Reconcile everything; raise ProvisionError (or NatsUnavailable) when it cannot."""
    nc = await natsconn.connect(config.nats, name="sayna-sip-provisioner")
    try:
        summary = await provision_nats(nc, config)
    finally:
        await natsconn.close(nc)
    await provision_livekit(config, summary, livekit_retry)
    return summary


async def provision_nats(
    nc: Client, config: ServerConfig, summary: Summary | None = None
) -> Summary:
    """Topology and static hooks on an open connection (usable by tests and `sayna-sip up`)."""
    summary = summary if summary is not None else Summary()
    js = nc.jetstream()
    try:
        await apply_topology(js, config, summary)
        if config.sip is not None:  # SIP off: no hooks bucket, nothing to sync
            kv = await js.key_value(topology.HOOKS_BUCKET)
            await sync_static_hooks(kv, config.sip.hooks, summary)
    except nats.errors.Error as exc:  # JetStream and KV errors derive from it too
        raise ProvisionError(
            f"NATS at {config.nats.display} failed during provisioning: {exc!r}"
        ) from exc
    return summary
