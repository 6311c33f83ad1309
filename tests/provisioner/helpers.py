"""Plain helpers for the provisioner tests."""

from __future__ import annotations

from tests.fixtures.livekit import API_KEY, API_SECRET, LiveKitTwirp


def sip_env(livekit: LiveKitTwirp | None = None, **extra: str) -> dict[str, str]:
    """Environment for SIP with prefix `call-`, plus LiveKit credentials when given."""
    env = {"SIP_ROOM_PREFIX": "call-", "SIP_ALLOWED_ADDRESSES": "10.0.0.1,2001:db8::/64"}
    if livekit is not None:
        env |= {
            "LIVEKIT_URL": livekit.url.replace("http://", "ws://"),
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
        }
    return env | extra
