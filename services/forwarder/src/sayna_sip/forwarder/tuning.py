"""Knobs of the worker that are not operator configuration (ServerConfig holds those).

Defaults suit production; tests pass a Tuning with short waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sayna_sip.forwarder.breaker import BreakerSettings
from sayna_sip.forwarder.policy import UNSEALED_WAIT


@dataclass(frozen=True)
class Tuning:
    fetch_batch: int = 64  # most messages asked for at once; the worker adapts below it
    pull_expires: float = 30.0  # how long a pull request stays open on the server
    # The server's idle heartbeat on an open request; a request silent for twice this
    # (+1 s) is taken as lost and asked for again (consumer leader change, reconnect).
    pull_heartbeat: float = 1.0
    # After SIGTERM in-flight requests get this long (default: their timeout, at most
    # 5 s, inside a container's usual 10 s stop budget); then they are nak'ed.
    shutdown_grace: float | None = None
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    seed: int | None = None  # jitter RNG seed (tests)
    proxy_backoff: float = 1.0  # first wait after an egress proxy failure; doubles to 30 s
    proxy_unreachable_after: float = 30.0  # failing this long: /readyz says so
    unsealed_wait: float = UNSEALED_WAIT  # between tries while a hook secret cannot be opened
