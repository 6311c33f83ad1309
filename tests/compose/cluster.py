"""What `make compose-test` reads from the clustered stack (compose.cluster.yaml): a
nats node's `/jsz` report (streams, consumers, leaders) and the balancer's log.

`replicas JSZ` fails unless every stream and bucket has 3 replicas; `leader JSZ STREAM`
prints the stream's leader (a compose service name); `settled JSZ` exits 0 once both
consumers have nothing pending or awaiting an ack (no redelivery can come any more);
`report IDS SINK_LOG JSZ BALANCER_LOG BEFORE_LOG METRICS` prints deliveries, duplicates,
what JetStream stored and handed over again, the forwarders' retries and attempts, and the
ingresses the balancer took out; it fails on more deliveries than JetStream handed copies
over (a forwarder POSTs once per handover) or on an ingress taken out that was not killed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from tests.compose import drive

STREAMS = (
    "LK_EVENTS", "SIP_DELIVERIES", "SIP_DEAD", "SIP_ATTEMPTS", "SIP_AUDIT",
    "KV_sip_hooks", "KV_sip_rooms", "KV_sip_access", "KV_sip_lanes",
)  # fmt: skip
# the router's durables: the previous release's messages, then one per LK_EVENTS partition
ROUTER_CONSUMERS = ("router", *(f"router-p{p:02d}" for p in range(16)))
CONSUMERS = {**dict.fromkeys(ROUTER_CONSUMERS, "LK_EVENTS"), "forwarders": "SIP_DELIVERIES"}
KILLED_INGRESS = "ingress-1"


def streams(jsz: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            found[stream["name"]] = stream
    return found


def consumer(jsz: dict[str, Any], name: str) -> dict[str, Any]:
    stream = streams(jsz)[CONSUMERS[name]]
    return next(c for c in stream.get("consumer_detail") or [] if c["name"] == name)


def redeliveries(jsz: dict[str, Any], names: tuple[str, ...]) -> int:
    """How many times, in all, JetStream handed the consumers' messages over again.

    Not `num_redelivered`: that counts only the redelivered messages still unacked, so
    it is 0 once the consumers settled. A consumer's `delivered.consumer_seq` counts
    every delivery, first or again; each stream message goes to exactly one of `names`
    (SIP_DELIVERIES holds only what the forwarders consume; an LK_EVENTS message is in
    one partition), so what the stream's sequence does not account for was a redelivery.
    """
    stream = streams(jsz)[CONSUMERS[names[0]]]
    handed = sum(int(consumer(jsz, name)["delivered"]["consumer_seq"]) for name in names)
    return handed - int(stream["state"]["last_seq"])


def retries(metrics: str) -> int:
    """The retries the forwarders scheduled (`forwarder_retries_scheduled`, summed over
    their /metrics): an attempt the sink got but whose answer the forwarder did not (too
    slow, a dropped connection) goes again, as a further copy."""
    found = re.findall(r"^sayna_sip_forwarder_retries_scheduled_total\{.*\} (\S+)$", metrics, re.M)
    return int(sum(float(v) for v in found))


def attempts(metrics: str) -> dict[str, int]:
    """The forwarders' attempts by outcome (`forwarder_attempts`), to read a failure by."""
    found: dict[str, int] = {}
    for outcome, value in re.findall(
        r'^sayna_sip_forwarder_attempts_total\{.*outcome="([^"]*)".*\} (\S+)$', metrics, re.M
    ):
        found[outcome] = found.get(outcome, 0) + int(float(value))
    return found


def replicas(jsz: dict[str, Any]) -> int:
    found = streams(jsz)
    short = {n: found[n]["config"]["num_replicas"] if n in found else 0 for n in STREAMS}
    wrong = {n: r for n, r in short.items() if r != 3}
    if wrong:
        print(f"cluster: not R3: {wrong}", file=sys.stderr)
        return 1
    print(f"cluster: every stream and bucket R3 ({', '.join(STREAMS)})")
    return 0


def leader(jsz: dict[str, Any], stream: str) -> int:
    name = (streams(jsz).get(stream, {}).get("cluster") or {}).get("leader")
    if not name:
        return 1
    print(name)
    return 0


def settled(jsz: dict[str, Any]) -> bool:
    return all(
        consumer(jsz, name)["num_pending"] == 0 and consumer(jsz, name)["num_ack_pending"] == 0
        for name in CONSUMERS
    )


def taken_out(balancer_log: str, before: str = "") -> set[str]:
    """The ingresses haproxy marked DOWN (its health check on /readyz failed) in the lines
    of `balancer_log` after those of `before` (at start haproxy checks ingresses that are
    still booting: not a fault)."""
    lines = balancer_log.splitlines()[len(before.splitlines()) :]
    return set(re.findall(r"Server ingress/(\S+) is DOWN", "\n".join(lines)))


def report(
    ids: Path, sink_log: Path, jsz: dict[str, Any], balancer_log: str, before: str, metrics: str
) -> int:
    counts = drive.count(ids, sink_log)
    handed = int(consumer(jsz, "forwarders")["delivered"]["consumer_seq"])
    copies = int(streams(jsz)[CONSUMERS["forwarders"]]["state"]["last_seq"])
    events = int(streams(jsz)[CONSUMERS["router"]]["state"]["last_seq"])
    down = taken_out(balancer_log, before)
    print(
        f"cluster: delivered={counts.delivered} of={counts.wanted} "
        f"duplicates={counts.duplicates} bad_signatures={counts.bad} "
        f"events_stored={events} events_rerouted={redeliveries(jsz, ROUTER_CONSUMERS)} "
        f"copies_stored={copies} copies_redelivered={handed - copies} "
        f"retries={retries(metrics)} "
        f"attempts={','.join(f'{k}:{v}' for k, v in sorted(attempts(metrics).items()))} "
        f"balancer_took_out={','.join(sorted(down)) or 'none'}"
    )
    ok = counts.delivered == counts.wanted and counts.bad == 0
    # At-least-once: a forwarder POSTs a copy at most once each time JetStream hands it
    # over. A handover beyond one per event is a redelivery (an ack lost, a wait) or a
    # further copy (a retry, one JetStream's dedupe missed): only those may repeat a POST.
    if counts.duplicates > handed - counts.wanted:
        print("cluster: more deliveries than JetStream handed copies over", file=sys.stderr)
        ok = False
    if down - {KILLED_INGRESS}:  # a leader election must not take a live ingress out
        print(f"cluster: the balancer took out {sorted(down - {KILLED_INGRESS})}", file=sys.stderr)
        ok = False
    return 0 if ok else 1


def main() -> int:
    cmd, *args = sys.argv[1:]
    jsz = json.loads(Path(args[0 if cmd != "report" else 2]).read_text())
    if cmd == "replicas":
        return replicas(jsz)
    if cmd == "leader":
        return leader(jsz, args[1])
    if cmd == "settled":
        return 0 if settled(jsz) else 1
    logs = [Path(a).read_text(errors="replace") for a in args[3:6]]
    return report(Path(args[0]), Path(args[1]), jsz, *logs)


if __name__ == "__main__":
    sys.exit(main())
