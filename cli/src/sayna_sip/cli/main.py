"""`sayna-sip` entry point. Each subcommand imports its service lazily, so running one
service never loads the others."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from sayna_sip.common.version import __version__

# subcommand -> (module, function, help). Each function takes the remaining argv.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("sayna_sip.cli.up", "main", "run the whole stack on one machine (embedded NATS)"),
    "provision": (
        "sayna_sip.provisioner.main",
        "main",
        "create/update NATS topology, hooks, LiveKit SIP",
    ),
    "ingress": ("sayna_sip.ingress.main", "main", "run the webhook intake and hooks API"),
    "router": ("sayna_sip.router.main", "main", "run the SIP router"),
    "forwarder": ("sayna_sip.forwarder.main", "main", "run a delivery worker"),
    "dlq": (
        "sayna_sip.cli.dlq",
        "main",
        "inspect (list) and replay (redrive) dead letters",
    ),
    "hooks": (
        "sayna_sip.cli.hooks_cli",
        "main",
        "manage tenant hooks through the ingress API (list, set, rotate-secret, test, …)",
    ),
    "deliveries": (
        "sayna_sip.cli.deliveries",
        "main",
        "what happened to an event (show), lately (list), and live (tail)",
    ),
    "sink": ("sayna_sip.cli.sink", "main", "a local HTTPS hook receiver that checks signatures"),
    "listen": (
        "sayna_sip.cli.listen",
        "main",
        "a local HTTPS receiver that shows each delivery and relays it to your dev server",
    ),
    "send-test-event": ("sayna_sip.cli.send_test_event", "main", "send a signed SIP test webhook"),
}


def _dispatch(name: str) -> Callable[[Sequence[str]], int]:
    module, func, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="sayna-sip",
        description="LiveKit SIP webhooks, routed to each tenant's hook: durable, signed, retried.",
    )
    parser.add_argument("--version", action="version", version=f"sayna-sip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not args or args[0] not in COMMANDS:
        parser.parse_args(args or ["--help"])
        return 2
    try:
        return int(_dispatch(args[0])(args[1:]) or 0)
    except BrokenPipeError:
        return quiet_broken_pipe()


def quiet_broken_pipe() -> int:
    """The reader went away (`… | head`): stop without a traceback. Python flushes stdout
    again at exit, so point it at /dev/null first (the recipe of Python's signal docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
