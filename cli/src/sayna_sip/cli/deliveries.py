"""`sayna-sip deliveries show EVENT_ID | list [--host H] [--outcome O] [--since 1h] | tail
[--host H]`: what happened to an event, what happened lately, and attempts as they happen.

Reads SIP_ATTEMPTS directly, through the same query code as the ingress API. It needs
only NATS: its URL from NATS_URL, `nats.url` in `--config FILE`, or the `sayna-sip up`
running in this directory (no SIP block needed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence

from nats.aio.client import Client
from nats.aio.msg import Msg

from sayna_sip.cli.follow import Follower, Subscribe
from sayna_sip.cli.main import quiet_broken_pipe
from sayna_sip.common import audit, natsconn, records, topology, upstate
from sayna_sip.common.config import NatsConfig
from sayna_sip.common.deliveries import (
    Deliveries,
    QueryError,
    next_retry,
    parse_when,
    rfc3339,
    view,
)
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hosts import normalize_host
from sayna_sip.common.records import AttemptRecord, Record, RouteRecord
from sayna_sip.common.replay import CannotResend, Replayer
from sayna_sip.common.streamscan import ScanError, StreamReader


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sayna-sip deliveries", description="Delivery records: routes and attempts."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="an event's route and every attempt")
    show.add_argument("event_id", metavar="EVENT_ID")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    ls = sub.add_parser("list", help="records, newest first")
    ls.add_argument("--host", help="only this hook host")
    ls.add_argument("--outcome", help="only this outcome (delivered, failed, dead, unknown_host…)")
    ls.add_argument("--since", default="1h", help="how far back: 1h, 2d or an RFC 3339 time")
    ls.add_argument("--limit", type=int, default=50, help="at most N (default 50)")
    tail = sub.add_parser("tail", help="print attempts live as they happen (Ctrl-C stops)")
    tail.add_argument("--host", help="only this hook host")
    resend = sub.add_parser("resend", help="deliver one event again (same webhook-id)")
    resend.add_argument("event_id", metavar="EVENT_ID")
    resend.add_argument(
        "--endpoint", metavar="ID", help="to this one of its endpoints (default: each it went to)"
    )
    upstate.add_tool_options(parser, (show, ls, tail, resend))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        nats, source = upstate.tool_nats(args.config, data_dir=args.data_dir)
        if getattr(args, "host", None):
            args.host = normalize_host(args.host)
        if args.action == "list":
            args.since = parse_when(args.since)
    except (ConfigError, QueryError) as exc:
        print(f"sayna-sip deliveries: {exc}", file=sys.stderr)
        return 2
    try:
        work = _run(nats, args, source)
        return upstate.run_tool(
            "sayna-sip deliveries", topology.SIP_ATTEMPTS, nats, source, work, args.data_dir
        )
    except ScanError as exc:
        print(f"sayna-sip deliveries: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _run(nats: NatsConfig, args: argparse.Namespace, source: str) -> int:
    nc = await natsconn.connect(nats, name="sayna-sip-deliveries")
    if args.action == "tail":
        await Follower(nats, source, args.data_dir, _tail(args.host)).run(nc)
        return 0
    try:
        reader = StreamReader(nc, topology.SIP_ATTEMPTS)
        await reader.start()
        js = nc.jetstream()

        async def last_seq() -> int:
            return (await js.stream_info(topology.SIP_ATTEMPTS)).state.last_seq

        query = Deliveries(reader, last_seq)
        if args.action == "show":
            return await _show(query, args.event_id, args.json)
        if args.action == "resend":
            return await _resend(nc, reader, query, args.event_id, args.endpoint)
        page = await query.page(
            host=args.host, outcome=args.outcome, since=args.since, limit=args.limit
        )
        for rec in page.items:
            print(line(rec))
        if not page.items:
            print("no records")
        return 0
    finally:
        await natsconn.close(nc)


async def _show(query: Deliveries, event_id: str, as_json: bool) -> int:
    found = await query.event(event_id)
    if found is None:
        print(f"no delivery record of event {event_id}", file=sys.stderr)
        return 1
    if as_json:
        route = view(found.route) if found.route else None
        out = {"event_id": found.event_id, "event": found.event, "room": found.room,
               "route": route, "attempts": [view(a) for a in found.attempts]}  # fmt: skip
        print(json.dumps(out, indent=2))
        return 0
    print(f"event {found.event_id}  {found.event}  room={found.room or '-'}")
    if found.route is not None:
        print(line(found.route))
    else:
        print("route: no routing record")
    for attempt in found.attempts:
        print(line(attempt))
        if attempt.retry_at > 0:  # recorded for a failed try only
            print(f"    next try due {rfc3339(attempt.retry_at)}")
        # As recorded: signatures and custom header values were redacted before storing.
        for name, value in attempt.request_headers.items():
            print(f"    > {name}: {value}")
        if attempt.response:
            print(f"    response: {attempt.response[:200]!r}")
    due = next_retry(found.attempts)
    if due is not None:
        print(f"next retry due {rfc3339(due)}")
    return 0


async def _resend(
    nc: Client, reader: StreamReader, query: Deliveries, event_id: str, endpoint: str | None
) -> int:
    found = await query.event(event_id)
    route = found.route if found is not None else None
    js = nc.jetstream()
    try:
        sent = await Replayer(js, reader).resend(event_id, route, endpoint)
    except CannotResend as exc:
        print(f"sayna-sip deliveries: {exc}", file=sys.stderr)
        return 1
    assert route is not None
    await audit.AuditLog(nc, js).publish(  # made outside the API, audited all the same
        audit.record(actor="admin", action="deliveries.resend", host=route.host,
                     endpoint=endpoint, via="cli", fields=["event_id"],
                     values={"event_ids": [event_id]})
    )  # fmt: skip
    print(f"resent event {event_id} to {route.host} ({', '.join(sent)})")
    return 0


def line(rec: Record) -> str:
    """One record on one line: time, host, event, attempt, status, ms (and why)."""
    if isinstance(rec, RouteRecord):
        why = rec.host or rec.sip_host or "-"
        return f"{rfc3339(rec.at)}  route    {why:<28} {rec.event_id:<24} {rec.outcome}"
    status = str(rec.status) if rec.status is not None else "-"
    tail = f" {rec.error}" if rec.error and rec.outcome != "delivered" else ""
    return (
        f"{rfc3339(rec.started_at)}  {rec.host:<37} {rec.event_id:<24} #{rec.attempt:<2} "
        f"{status:>3} {rec.duration_ms:>7.1f}ms {rec.outcome}{tail}"
    )


def _tail(host: str | None) -> Subscribe:
    """Core-NATS subscription on the attempt subjects: records as they are stored."""
    first = True

    async def on_record(msg: Msg) -> None:
        with contextlib.suppress(records.BadRecord):
            rec = records.decode(msg.data)
            if isinstance(rec, AttemptRecord):
                try:
                    print(line(rec), flush=True)
                except BrokenPipeError:  # `… | head` has read enough
                    quiet_broken_pipe()
                    os.kill(os.getpid(), signal.SIGINT)

    async def subscribe(nc: Client) -> None:
        nonlocal first
        await nc.subscribe(records.filter_subject(kind="attempt", host=host), cb=on_record)
        await nc.flush()  # the server has the subscription before "waiting" is said
        if first:
            print("waiting for attempts (Ctrl-C stops)", file=sys.stderr, flush=True)
            first = False

    return subscribe
