"""`sayna-sip provision`: run the reconcile once, print a one-line summary, exit.

Exit codes: 0 everything is in place; 1 provisioning failed (NATS or LiveKit, the
message says which resource and why); 2 the configuration is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.logs import quote, setup_logging
from sayna_sip.common.natsconn import NatsUnavailable
from sayna_sip.provisioner.errors import ProvisionError
from sayna_sip.provisioner.provision import provision

log = logging.getLogger("sayna_sip.provisioner")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sayna-sip provision",
        description="Create or update the NATS topology, the static hooks and LiveKit SIP.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (environment wins)")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        config = ServerConfig.load(args.config)
    except ConfigError as exc:
        print(f"sayna-sip provision: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.log_level, config.log_format)
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
