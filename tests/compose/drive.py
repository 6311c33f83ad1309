"""Traffic for `make compose-test`: signed LiveKit webhooks to the published ingress
port, and the count of what the compose sink received for them.

`send COUNT PREFIX` posts COUNT SIP participant events (ids PREFIX-0000…) spread over
--seconds, one line per id on stdout; any answer but 200 fails. `check IDS LOG` reads the
ids and the sink's log and prints `delivered=N of=M duplicates=D bad_signatures=B`,
exiting 0 only when every id arrived verified.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.livekit import signed_webhook, sip_event

HOOK_HOST = "tenant.test"


def send(url: str, count: int, prefix: str, seconds: float) -> int:
    pause = seconds / count if count else 0.0
    with httpx.Client(timeout=10.0) as client:
        for i in range(count):
            event_id = f"{prefix}-{i:04d}"
            event = sip_event(
                room=f"test-sip-{prefix}-{i}", to=f"sip:+15551234567@{HOOK_HOST}", event_id=event_id
            )
            body, headers = signed_webhook(event)
            answer = client.post(url, content=body, headers=headers)
            if answer.status_code != 200:
                print(
                    f"send: {event_id} answered {answer.status_code} {answer.text}", file=sys.stderr
                )
                return 1
            print(event_id, flush=True)
            time.sleep(pause)
    return 0


def check(ids_file: Path, log_file: Path) -> int:
    wanted = set(ids_file.read_text().split())
    seen: dict[str, int] = {}
    bad = 0
    for line in log_file.read_text(errors="replace").splitlines():
        m = re.search(r"webhook-id=(\S+) .*signature=(\S+)", line)
        if m is None or m.group(1) not in wanted:
            continue
        if m.group(2) != "verified":
            bad += 1
            continue
        seen[m.group(1)] = seen.get(m.group(1), 0) + 1
    duplicates = sum(n - 1 for n in seen.values())
    print(f"delivered={len(seen)} of={len(wanted)} duplicates={duplicates} bad_signatures={bad}")
    return 0 if len(seen) == len(wanted) and bad == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(prog="drive")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("url")
    s.add_argument("count", type=int)
    s.add_argument("prefix")
    s.add_argument("--seconds", type=float, default=0.0)
    c = sub.add_parser("check")
    c.add_argument("ids", type=Path)
    c.add_argument("log", type=Path)
    args = p.parse_args()
    if args.cmd == "send":
        return send(args.url, args.count, args.prefix, args.seconds)
    return check(args.ids, args.log)


if __name__ == "__main__":
    sys.exit(main())
