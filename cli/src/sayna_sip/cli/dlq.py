"""`sayna-sip dlq list [--host H] [--limit N]` and `sayna-sip dlq redrive` (by `--host`,
`--event-id`, `--since`/`--until`, or `--all`).

Both need only NATS: its URL from NATS_URL, `nats.url` in `--config FILE`, or the
`sayna-sip up` running in this directory (no SIP block needed). They use
`sayna_sip.common.deadletters`, the code behind the ingress's dead-letter API.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sayna_sip.common import audit, deadletters, natsconn, topology, upstate
from sayna_sip.common.config import NatsConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.deadletters import DeadLetter
from sayna_sip.common.deliveries import QueryError, parse_when, rfc3339
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import DEFAULT_ENDPOINT
from sayna_sip.common.hosts import normalize_host
from sayna_sip.common.streamscan import StreamReader

COLUMNS = ("SEQ", "DEAD AT", "HOOK", "ENDPOINT", "EVENT", "EVENT ID", "TRIES", "REASON", "LAST")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sayna-sip dlq", description="Inspect and replay dead letters."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="print dead letters, oldest first")
    ls.add_argument("--host", help="only this hook host")
    ls.add_argument("--limit", type=int, default=100, help="at most N (default 100)")
    rd = sub.add_parser("redrive", help="deliver dead letters again, then remove them")
    rd.add_argument("--host", help="only this hook host")
    rd.add_argument("--event-id", action="append", metavar="ID",
                    help="only this event's letters (repeatable)")  # fmt: skip
    rd.add_argument("--since", help="only letters dead since: 2h, 1d or an RFC 3339 time")
    rd.add_argument("--until", help="only letters dead before: 2h, 1d or an RFC 3339 time")
    rd.add_argument("--all", action="store_true", help="every dead letter")
    upstate.add_tool_options(parser, (ls, rd))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    filtered = args.action == "redrive" and (args.host or args.event_id or args.since or args.until)
    if args.action == "redrive" and not (filtered or args.all):
        parser.error("redrive needs a filter (--host, --event-id, --since, --until) or --all")
    try:
        nats, source = upstate.tool_nats(args.config, data_dir=args.data_dir)
        if args.host:
            deadletters.subject_for(args.host)  # validates the host
        if args.action == "redrive":
            args.since = parse_when(args.since) if args.since else None
            args.until = parse_when(args.until) if args.until else None
    except (ConfigError, QueryError) as exc:
        print(f"sayna-sip dlq: {exc}", file=sys.stderr)
        return 2
    work = _run(nats, args)
    return upstate.run_tool("sayna-sip dlq", topology.SIP_DEAD, nats, source, work, args.data_dir)


async def _run(nats: NatsConfig, args: argparse.Namespace) -> int:
    nc = await natsconn.connect(nats, name="sayna-sip-dlq")
    try:
        js = nc.jetstream()
        reader = StreamReader(nc, topology.SIP_DEAD)
        await reader.start()
        if args.action == "list":
            last = (await js.stream_info(topology.SIP_DEAD)).state.last_seq
            letters = await deadletters.oldest_first(reader, last, args.host, limit=args.limit)
            rows = [_row(letter) for letter in letters]
            print(_table(rows) if rows else "no dead letters")
            return 0
        count = 0
        while True:  # one call redrives a bounded batch; a later batch never chases it
            done = await deadletters.redrive(
                js, reader, host=args.host, since=args.since, until=args.until,
                event_ids=args.event_id,
            )  # fmt: skip
            count += done.redriven
            if not done.truncated:
                break
        print(f"redriven {count} dead letter(s)")
        host = normalize_host(args.host) if args.host else None
        await audit.AuditLog(nc, js).publish(  # made outside the API, audited all the same
            audit.record(actor="admin", action="dlq.redrive", host=host, via="cli",
                         fields=_filters(args), values={"redriven": count})
        )  # fmt: skip
        return 0
    finally:
        await natsconn.close(nc)


def _filters(args: argparse.Namespace) -> list[str]:
    given = {"host": args.host, "event_ids": args.event_id, "since": args.since,
             "until": args.until}  # fmt: skip
    return [name for name, value in given.items() if value]


def _row(letter: DeadLetter) -> tuple[str, ...]:
    status = letter.get(Header.LAST_STATUS)
    last = f"HTTP {status}" if status else letter.get(Header.LAST_ERROR)
    return (
        str(letter.seq),
        rfc3339(letter.dead_at) or "?",
        letter.host,
        letter.get(Header.ENDPOINT) or DEFAULT_ENDPOINT,
        letter.get(Header.EVENT),
        letter.get(Header.EVENT_ID),
        letter.get(Header.ATTEMPT),
        letter.get(Header.DEAD_REASON),
        last[:60],
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in [COLUMNS, *rows]]  # fmt: skip
    return "\n".join(lines)
