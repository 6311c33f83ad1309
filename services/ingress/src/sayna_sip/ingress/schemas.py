"""HTTP bodies of the ingress API: what comes in, what goes out, and the error body.

msgspec Structs, so Litestar decodes and validates them fast and documents them in
the OpenAPI schema. Unknown fields are refused: a `secret` sent with a runtime hook
would otherwise be dropped silently (runtime hooks use the global secret).
"""

from __future__ import annotations

from typing import Literal

import msgspec


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error answer: a stable machine code and a sentence for humans."""

    error: str
    message: str


class Received(msgspec.Struct, frozen=True):
    """The webhook is stored in JetStream (or, with SIP disabled, verified)."""

    status: Literal["received"] = "received"


class HookIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A runtime hook: SIP host (or `*.wildcard`) and its HTTPS target."""

    host: str
    url: str


class HooksUpsert(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /sip/hooks body: hooks to add, or to replace when the host exists."""

    hooks: list[HookIn]


class HostsDelete(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DELETE /sip/hooks body: hosts whose runtime hooks are removed."""

    hosts: list[str]


class HookOut(msgspec.Struct, frozen=True):
    host: str
    url: str
    source: Literal["config", "runtime"]


class HookList(msgspec.Struct, frozen=True):
    """Every hook, sorted by host."""

    hooks: list[HookOut]


class HookDeleteResult(msgspec.Struct, frozen=True):
    """The hooks left after a delete, and the requested hosts that had no hook."""

    hooks: list[HookOut]
    not_found: list[str]


class Health(msgspec.Struct, frozen=True):
    status: str
