"""`python -m bench.nats_memory [COUNT]`: nats-server memory per stored message, for the
two terms of docs/capacity.md that grow with the load: a message id kept for the
duplicate window (LK_EVENTS, SIP_DELIVERIES) and a subject seen once (SIP_ATTEMPTS'
records carry the event in their subject, so nearly every record is a new subject).

Each case publishes COUNT messages into a fresh file-store stream of a fresh server and
reads the server's resident memory before and after (VmRSS), after a pause for GC.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import StreamConfig

from bench import procs

BODY = b"x" * 200


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _fill(url: str, count: int, unique_subjects: bool, msg_ids: bool) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="M", subjects=["m.>"], duplicate_window=600.0 if msg_ids else 0.0)
    )
    for start in range(0, count, 1000):
        batch = []
        for i in range(start, min(count, start + 1000)):
            subject = (
                f"m.attempt.host_example_com.EV{i:012d}.delivered" if unique_subjects else "m.a"
            )
            headers = {"Nats-Msg-Id": f"EV_{i:020d}"} if msg_ids else None
            batch.append(js.publish(subject, BODY, headers=headers))
        await asyncio.gather(*batch)
    await nc.close()


def measure(count: int, unique_subjects: bool, msg_ids: bool) -> float:
    """Bytes of nats-server memory per message for one case."""
    with tempfile.TemporaryDirectory(prefix="sayna-natsmem-") as work:
        proc, url = procs.start_nats(Path(work), Path(work) / "store")
        try:
            asyncio.run(_fill(url, 1000, False, False))  # warm the server up
            asyncio.run(_drop(url))
            time.sleep(1.0)
            before = _rss_mb(proc.popen.pid)
            asyncio.run(_fill(url, count, unique_subjects, msg_ids))
            time.sleep(2.0)
            after = _rss_mb(proc.popen.pid)
        finally:
            proc.stop()
    return (after - before) * 1024 * 1024 / count


async def _drop(url: str) -> None:
    nc = await nats.connect(url)
    await nc.jetstream().delete_stream("M")
    await nc.close()


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"nats-server memory per message, {count} messages of {len(BODY)} B, pid {os.getpid()}")
    base = measure(count, unique_subjects=False, msg_ids=False)
    ids = measure(count, unique_subjects=False, msg_ids=True)
    subjects = measure(count, unique_subjects=True, msg_ids=False)
    print(f"  one subject, no message id:  {base:6.0f} B/message (the floor)")
    print(f"  with a Nats-Msg-Id (dedupe): {ids:6.0f} B/message, {ids - base:+.0f} over the floor")
    print(f"  a new subject each message:  {subjects:6.0f} B/message, {subjects - base:+.0f} over")
    return 0


if __name__ == "__main__":
    sys.exit(main())
