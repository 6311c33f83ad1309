"""What the router did with one LK_EVENTS message: the `outcome` label of its metrics,
mapped to an ack/nak decision and a route record in `routing`. The values live in
`common.labels` with every other label an operator reads (the docs tests hold
docs/operations.md to them)."""

from __future__ import annotations

from sayna_sip.common.labels import RouterOutcome as Outcome

__all__ = ["Outcome"]
