"""The provisioner's error tree: everything that makes `sayna-sip provision` exit non-zero.

Foreign errors (nats-py, livekit-api, aiohttp) are translated where they enter, so the
entry point only ever has to print one of these.
"""


class ProvisionError(RuntimeError):
    """Provisioning could not bring the system to the configured state."""


class TopologyChangeError(ProvisionError):
    """NATS refused a stream, bucket or consumer change (it cannot be applied in place)."""


class LiveKitProvisionError(ProvisionError):
    """The LiveKit SIP trunk or dispatch rule could not be provisioned."""
