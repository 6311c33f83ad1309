"""Traffic for `make compose-test`: signed LiveKit webhooks to the published ingress
port, and the count of what the compose sink received for them.

`send COUNT PREFIX` posts COUNT SIP participant events (ids PREFIX-0000…) spread over
--seconds, one line per acknowledged id on stdout; any answer but 200 fails, unless
--retry-for S: then a refused or unanswered try is sent again for up to S seconds, as
LiveKit does, and the tries and the slowest answer are summed up on stderr.
`check IDS LOG` reads the ids and the sink's log and prints
`delivered=N of=M duplicates=D bad_signatures=B`, exiting 0 only when every id arrived
verified.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.fixtures.livekit import signed_webhook, sip_event

HOOK_HOST = "tenant.test"


def send(url: str, count: int, prefix: str, seconds: float, retry_for: float = 0.0) -> int:
    pause = seconds / count if count else 0.0
    refused, slowest = 0, 0.0
    with httpx.Client(timeout=15.0) as client:
        for i in range(count):
            event_id = f"{prefix}-{i:04d}"
            event = sip_event(
                room=f"test-sip-{prefix}-{i}", to=f"sip:+15551234567@{HOOK_HOST}", event_id=event_id
            )
            body, headers = signed_webhook(event)
            first = time.monotonic()
            while True:
                try:
                    answer = client.post(url, content=body, headers=headers)
                    status, text = answer.status_code, answer.text
                except httpx.HTTPError as exc:
                    status, text = 0, repr(exc)
                if status == 200:
                    break
                print(f"send: {event_id} answered {status} {text}", file=sys.stderr)
                refused += 1
                if time.monotonic() - first >= retry_for:
                    return 1
                time.sleep(0.5)  # LiveKit backs off between its tries, too
            slowest = max(slowest, time.monotonic() - first)
            print(event_id, flush=True)
            time.sleep(pause)
    if retry_for:
        print(
            f"send: acked={count} refused_tries={refused} slowest_s={slowest:.2f}", file=sys.stderr
        )
    return 0


@dataclass(frozen=True)
class Counts:
    wanted: int
    delivered: int
    duplicates: int
    bad: int


def count(ids_file: Path, log_file: Path) -> Counts:
    """What the sink's log shows for the ids: delivered (verified), repeats, bad ones."""
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
    return Counts(len(wanted), len(seen), sum(n - 1 for n in seen.values()), bad)


def check(ids_file: Path, log_file: Path) -> int:
    c = count(ids_file, log_file)
    print(f"delivered={c.delivered} of={c.wanted} duplicates={c.duplicates} bad_signatures={c.bad}")
    return 0 if c.delivered == c.wanted and c.bad == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(prog="drive")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("url")
    s.add_argument("count", type=int)
    s.add_argument("prefix")
    s.add_argument("--seconds", type=float, default=0.0)
    s.add_argument("--retry-for", type=float, default=0.0)
    c = sub.add_parser("check")
    c.add_argument("ids", type=Path)
    c.add_argument("log", type=Path)
    args = p.parse_args()
    if args.cmd == "send":
        return send(args.url, args.count, args.prefix, args.seconds, args.retry_for)
    return check(args.ids, args.log)


if __name__ == "__main__":
    sys.exit(main())
