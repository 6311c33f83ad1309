"""Run a `sayna-sip` command on uvloop: `python -m bench.uvloop_run forwarder`.

An experiment switch (`bench.run --forwarder-uvloop`): the forwarder ships on asyncio's
default loop, and this measures what uvloop would change without editing the service.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from sayna_sip.cli.main import main

if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # asyncio.run() now uses uvloop
    sys.exit(main(sys.argv[1:]))
