"""`sayna-sip send-test-event`: post a realistic, signed LiveKit webhook to the ingress.

The body has the shape LiveKit sends (protojson, camelCase, int64 as strings) with a SIP
participant whose attributes carry the call's `To` header (`sip.h.to`); it is signed as
LiveKit signs webhooks: a JWT from the API key/secret with the body's SHA-256 as the
`sha256` claim, sent raw in `Authorization`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from livekit.api import AccessToken

from sayna_sip.cli.up import display_host
from sayna_sip.common import upstate
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError

EVENTS = ("participant_joined", "participant_left", "room_started", "room_finished")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sayna-sip send-test-event", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--to", required=True, help="the call's SIP To, e.g. sip:+15551234567@host")
    p.add_argument("--room", help="room name (default: the configured room prefix + 'demo')")
    p.add_argument("--event", default="participant_joined", choices=EVENTS)
    p.add_argument("--url", help="ingress webhook URL (default: from HOST/PORT)")
    p.add_argument("--config", help="YAML configuration (LiveKit key/secret, port)")
    p.add_argument(
        "--data-dir", metavar="DIR", default=upstate.DEFAULT_DATA_DIR, help=upstate.DATA_DIR_HELP
    )
    return p


def build_event(event: str, room: str, to: str) -> dict[str, Any]:
    """A LiveKit webhook event for a SIP caller in `room`."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "event": event,
        "room": {"sid": "RM_" + secrets.token_hex(6), "name": room, "creationTime": str(now)},
        "id": "EV_" + secrets.token_hex(8),
        "createdAt": str(now),
    }
    if event.startswith("participant_"):
        payload["participant"] = {
            "sid": "PA_" + secrets.token_hex(6),
            "identity": "sip_+15557654321",
            "state": "ACTIVE" if event == "participant_joined" else "DISCONNECTED",
            "joinedAt": str(now),
            "name": "Phone +15557654321",
            "kind": "SIP",
            "attributes": {
                "sip.callID": "SCL_" + secrets.token_hex(6),
                "sip.callStatus": "active",
                "sip.phoneNumber": "+15557654321",
                "sip.trunkPhoneNumber": "+15551234567",
                "sip.trunkID": "ST_demo",
                "sip.h.to": to,
            },
        }
    return payload


def sign(body: bytes, api_key: str, api_secret: str) -> str:
    """The raw JWT LiveKit sends in `Authorization` for `body`."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = AccessToken(api_key, api_secret).with_sha256(digest)
    return token.with_ttl(timedelta(minutes=5)).to_jwt()


def webhook_url(config: ServerConfig, data_dir: str = upstate.DEFAULT_DATA_DIR) -> str:
    """From HOST/PORT when set, else from the `sayna-sip up` running from `data_dir`."""
    running = upstate.read(data_dir)
    if running is not None and (config.host, config.port) == ("0.0.0.0", 3001):
        return f"{running.ingress_url}/livekit/webhook"
    return f"http://{display_host(config.host)}:{config.port}/livekit/webhook"


def sip_off(config: ServerConfig, url: str, data_dir: str) -> str | None:
    """Why the event will not be routed, when SIP is off where it goes: the running `up`'s
    word when the event went to it, else this command's own configuration."""
    running = upstate.read(data_dir)
    to_up = running is not None and url == f"{running.ingress_url}/livekit/webhook"
    if to_up and running is not None and running.sip is not None:
        return None if running.sip else "the `sayna-sip up` running here has SIP off"
    if config.sip is None:
        return "SIP is off in this configuration (no sip: section, no SIP_* variable)"
    return None


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        config = ServerConfig.load(args.config)
    except ConfigError as exc:
        print(f"sayna-sip send-test-event: {exc}", file=sys.stderr)
        return 2
    lk = config.livekit
    if not (lk.api_key and lk.api_secret):
        print(
            "sayna-sip send-test-event: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
            "(or livekit.api_key/api_secret in --config): the ingress verifies with them",
            file=sys.stderr,
        )
        return 2
    room = args.room or (f"{config.sip.room_prefix}demo" if config.sip else "sip-demo")
    url = args.url or webhook_url(config, args.data_dir)
    event = build_event(args.event, room, args.to)
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {"Authorization": sign(body, lk.api_key, lk.api_secret)}
    headers["Content-Type"] = "application/webhook+json"
    try:
        reply = httpx.post(url, content=body, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        print(f"sayna-sip send-test-event: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(f"sent event={args.event} id={event['id']} room={room} to={args.to} -> {url}")
    print(f"answer {reply.status_code} {reply.text.strip()}")
    if (why := sip_off(config, url, args.data_dir)) is not None:
        print(f"note: {why}: the ingress answers 200 and drops the event (nothing is routed)")
    return 0 if reply.is_success else 1
