"""`python -m bench.records [--quick]` (part of `make bench`): what delivery records cost.

1. Forwarder throughput with records and without (`SIP_ATTEMPT_RECORDS=false`), same
   run, same nats-server and sink, alternating off/on twice; target: on >= 0.9x off.
2. With >= 100,000 records stored in SIP_ATTEMPTS, the API's answer times through a
   real ingress process: `GET /sip/deliveries/{id}` and a filtered list (host + outcome),
   first page and a cursor page; target: p99 <= 200 ms.
Writes `bench/results/<date>-records.json` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import nats

from bench import scenarios
from bench.harness import Bench
from bench.plan import FULL, QUICK
from bench.procs import Proc
from bench.stats import summary_ms
from sayna_sip.common import records, topology
from sayna_sip.common.records import AttemptRecord, RouteRecord

RESULTS = Path(__file__).parent / "results"
HOSTS = 50


async def fill(url: str, events: int) -> int:
    """A route and three attempts (failed, failed, delivered or dead) per event, spread
    over HOSTS hooks: 4 records an event, as many as the forwarder writes on retries."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    now = time.time()
    try:
        for start in range(0, events, 1000):
            batch = []
            for i in range(start, min(events, start + 1000)):
                for rec in _event_records(i, now - (events - i) * 0.01):
                    batch.append(await js.publish_async(records.subject(rec), records.encode(rec)))
            await asyncio.gather(*batch)
        info = await js.stream_info(topology.SIP_ATTEMPTS)
        return int(info.state.messages)
    finally:
        await nc.close()


def _event_records(i: int, at: float) -> list[RouteRecord | AttemptRecord]:
    host, event_id = f"h{i % HOSTS}.bench.test", f"EV_fill_{i}"
    out: list[RouteRecord | AttemptRecord] = [
        RouteRecord(
            event_id=event_id,
            event="participant_joined",
            room=f"sip-{i}",
            outcome="matched",
            at=at,
            sip_host=host,
            host=host,
            lk_seq=i,
        )
    ]
    last = "dead" if i % 10 == 0 else "delivered"
    for n, outcome in enumerate(("failed", "failed", last), start=1):
        out.append(AttemptRecord(
            event_id=event_id, event="participant_joined", room=f"sip-{i}", host=host,
            url=f"https://{host}/hook", attempt=n, outcome=outcome, started_at=at + n,
            duration_ms=12.5, status=200 if outcome == "delivered" else 503,
            response="ok" if outcome == "delivered" else "busy",
        ))  # fmt: skip
    return out


def latencies(port: int, events: int, requests: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(7)
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=10.0) as client:

        def host() -> str:
            return f"h{rng.randrange(HOSTS)}.bench.test"

        paths: tuple[tuple[str, Callable[[], str]], ...] = (
            ("lookup", lambda: f"/sip/deliveries/EV_fill_{rng.randrange(events)}"),
            ("list_host_outcome", lambda: f"/sip/deliveries?host={host()}&outcome=dead&limit=50"),
            ("list_host", lambda: f"/sip/deliveries?host={host()}&limit=50"),
        )
        for label, make in paths:
            took, cursor_took = [], []
            for _ in range(requests):
                started = time.perf_counter()
                r = client.get(make())
                took.append(time.perf_counter() - started)
                r.raise_for_status()
                cursor = r.json().get("next_cursor")
                if cursor:
                    started = time.perf_counter()
                    client.get(make() + f"&cursor={cursor}").raise_for_status()
                    cursor_took.append(time.perf_counter() - started)
            out[label] = summary_ms(took)
            if cursor_took:
                out[label + "_next_page"] = summary_ms(cursor_took)
    return out


def throughput(
    b: Bench, sink: Any, nats_proc: Proc, url: str, env: dict[str, str], plan: Any
) -> dict[str, Any]:
    rows = []
    for mode in ("false", "true", "false", "true"):
        records = {"SIP_ATTEMPT_RECORDS": mode}
        row = scenarios._drain(b, sink, nats_proc, url, env | records, 1, plan)
        row["records"] = mode == "true"
        rows.append(row)
    on = statistics.median(r["rate"] for r in rows if r["records"])
    off = statistics.median(r["rate"] for r in rows if not r["records"])
    # CPU per delivery moves less than the rate when other work shares the cores.
    cpu_on = statistics.median(r["cpu_us_per_delivery"] for r in rows if r["records"])
    cpu_off = statistics.median(r["cpu_us_per_delivery"] for r in rows if not r["records"])
    return {
        "rows": rows, "rate_with": on, "rate_without": off, "ratio": round(on / off, 3),
        "cpu_us_with": cpu_on, "cpu_us_without": cpu_off,
        "cpu_ratio": round(cpu_off / cpu_on, 3),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.records", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller backlog and store")
    parser.add_argument("--events", type=int, default=None, help="events to fill (x4 records)")
    parser.add_argument("--api-only", action="store_true", help="skip the throughput part")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    events = args.events or (10_000 if args.quick else 25_000)
    res: dict[str, Any] = {"date": datetime.now().astimezone().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="sayna-bench-records-") as work:
        b = Bench(Path(work), secrets.token_hex(3))
        try:
            sink = b.start_sink()
            nats_proc, url = b.start_nats("records")
            b.provision(url, sink)
            env = b.service_env(url, sink)
            if not args.api_only:
                res["throughput"] = throughput(b, sink, nats_proc, url, env, plan)
            res["stored_records"] = asyncio.run(fill(url, events))
            ingress, port = scenarios._start_ingress(b, env)
            res["api"] = latencies(port, events, 100 if args.quick else 300)
            b.stop(ingress, nats_proc)
            sink.close()
        finally:
            b.close()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now():%Y-%m-%d-%H%M%S}-records.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    shown = {k: v for k, v in res.items() if k != "throughput"}
    if "throughput" in res:
        keys = ("ratio", "rate_with", "rate_without", "cpu_ratio")
        shown |= {k: res["throughput"][k] for k in keys}
    print(json.dumps(shown, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
