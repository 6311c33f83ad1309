"""What the routes share at run time, built by the app (clients in its lifespan)."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.datastructures import State
from litestar.params import SkipValidation
from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from sayna_sip.common import contracts
from sayna_sip.common.audit import AuditLog
from sayna_sip.common.config import ServerConfig
from sayna_sip.ingress.access_tokens import Generations, TokenSigner
from sayna_sip.ingress.hooks import HookStore
from sayna_sip.ingress.intake import WebhookIntake
from sayna_sip.ingress.metrics import IngressMetrics
from sayna_sip.ingress.readiness import StoreHealth
from sayna_sip.ingress.records_state import Records


@dataclass
class Ingress:
    config: ServerConfig
    registry: CollectorRegistry
    metrics: IngressMetrics
    intake: WebhookIntake
    store_health: StoreHealth  # what /readyz knows about storing webhooks
    nc: Client | None = None  # None with SIP disabled: the ingress then needs no NATS
    js: JetStreamContext | None = None
    hooks: HookStore | None = None
    records: Records | None = None  # delivery records, dead letters, replay (SIP on)
    signer: TokenSigner | None = None  # tenant tokens (SIP_SECRETS_KEY set)
    generations: Generations | None = None  # tenant token revocation (KV sip_access)
    audit: AuditLog | None = None  # SIP_AUDIT

    def body_limit(self) -> int:
        """WEBHOOK_MAX_BODY_BYTES, lowered to what the NATS server accepts (its announced
        max_payload, less room for the headers added on the way)."""
        if self.nc is None:
            return self.config.max_body_bytes
        return contracts.body_limit(self.nc.max_payload, self.config.max_body_bytes)


# The routes' view of the Ingress; skip_validation: it is ours, not client input.
IngressDep = SkipValidation[Ingress]


def provide_ingress(state: State) -> Ingress:
    ingress: Ingress = state.ingress
    return ingress
