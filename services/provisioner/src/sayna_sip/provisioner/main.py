"""`sayna-sip provision`: run the reconcile once, print a one-line summary, exit.

Exit codes: 0 everything is in place; 1 provisioning failed (NATS or LiveKit, the
message says which resource and why); 2 the configuration is invalid.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.logs import quote
from sayna_sip.common.natsconn import NatsUnavailable
from sayna_sip.common.startup import EXIT_FAILED, service_main
from sayna_sip.provisioner.errors import ProvisionError
from sayna_sip.provisioner.provision import provision

log = logging.getLogger("sayna_sip.provisioner")

EXIT_OK = 0


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "provisioner",
        "Create or update the NATS topology, the static hooks and LiveKit SIP.",
        argv,
        _provision,
        prog="sayna-sip provision",
    )


def _provision(config: ServerConfig) -> int:
    """A one-shot run: its failure also goes to stderr in words, for the operator at hand."""
    try:
        summary = asyncio.run(provision(config))
    except (ProvisionError, NatsUnavailable) as exc:
        log.error("event=provision_failed error=%s", quote(exc))
        print(f"sayna-sip provision: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(summary.line(), flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
