"""`python -m bench.run [--quick|--smoke] [--only ingress,e2e,forwarders]` (`make bench`);
`--only faults` runs the fault suite instead (`make faults`, see bench/faults.py).

Starts everything it measures as child processes in a temporary directory, runs the
scenarios in order, prints the table and writes `bench/results/<date>-<plan>.json` and
a PNG plot next to it. Exits non-zero when a scenario failed or an event was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import capacity, faults, ordering, report, scenarios
from bench.harness import Bench, Sink, service_available
from bench.plan import PLANS, Plan

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ("ingress", "e2e", "forwarders", "ordering")
NEEDS = {
    "ingress": ("ingress",),
    "e2e": ("ingress", "router", "forwarder"),
    "forwarders": ("forwarder",),
    "ordering": ("ingress", "router", "forwarder"),
}


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "loadavg_start": round(os.getloadavg()[0], 2),
    }


def _run_one(name: str, b: Bench, sink: Sink, plan: Plan, res: dict[str, Any]) -> None:
    if name == "ingress":
        res["ingress"], memory = scenarios.ingress(b, sink, plan)
    elif name == "e2e":
        res["e2e"], memory = scenarios.end_to_end(b, sink, plan)
    elif name == "ordering":
        res["ordering"], memory = ordering.ordering(b, sink, plan)
    else:
        res["forwarders"], res["raw_baseline"], memory = scenarios.forwarders(b, sink, plan)
    res["memory"] += memory


def measure(
    plan: Plan,
    only: Sequence[str],
    work: Path,
    log: Callable[[str], None],
    profile_dir: Path | None = None,
    uvloop_services: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
    endpoints: int = 1,
) -> dict[str, Any]:
    """Run the selected scenarios; a failed one is recorded and the others still run."""
    res: dict[str, Any] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "plan": asdict(plan),
        "machine": _machine(),
        "memory": [],
        "skipped": {},
        "failed": {},
        "uvloop_services": list(uvloop_services),
        "extra_env": extra_env or {},
        "endpoints": endpoints,
    }
    b = Bench(work, secrets.token_hex(3), profile_dir, uvloop_services, extra_env, endpoints)
    try:
        sink = b.start_sink()
        for name in only:
            missing = [s for s in NEEDS[name] if not service_available(s)]
            if missing:
                res["skipped"][name] = f"service(s) not installed yet: {', '.join(missing)}"
                continue
            started = time.perf_counter()
            log(f"running {name} ...")
            try:
                _run_one(name, b, sink, plan, res)
            except Exception as exc:  # keep the other scenarios' numbers
                res["failed"][name] = "".join(traceback.format_exception_only(exc)).strip()
                log(traceback.format_exc())
            log(f"{name} took {time.perf_counter() - started:.1f}s")
        sink.close()
    finally:
        b.close()
    if profile_dir is not None:
        res["profiles"] = b.profiles.summaries()
    return res


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _lost(res: dict[str, Any]) -> int:
    lost: int = sum(r["lost"] for r in res.get("e2e", []) if r["target"] == "sayna-sip")
    return lost + sum(int(r["lost"]) for r in res.get("ordering", {}).get("e2e", []))


def _disordered(res: dict[str, Any]) -> int:
    """Calls of the ordered runs that arrived out of order (or with a numbering gap)."""
    part = res.get("ordering", {})
    rows = [*part.get("e2e", []), *part.get("drain", [])]
    return sum(
        r["calls_out_of_order"] + r["calls_with_gaps"] for r in rows if r["ordering"] == "call"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="under 2 minutes (make bench-quick)")
    size.add_argument("--smoke", action="store_true", help="seconds; checks the harness works")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument(
        "--faults",
        default="",
        metavar="WORDS",
        help="with --only faults: the steps whose label has one of these words, e.g. calls,order",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (process logs)")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the ingress, router and forwarder"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="experiment: extra environment for the services, e.g. FORWARDER_HOST_CONCURRENCY=4",
    )
    parser.add_argument(
        "--endpoints",
        type=int,
        default=1,
        metavar="N",
        help="experiment: the tenant's hook has N endpoints; the forwarder backlog spreads "
        "over them",
    )
    parser.add_argument(
        "--uvloop",
        default="",
        metavar="CMDS",
        help="experiment: run these services on uvloop, e.g. forwarder",
    )
    args = parser.parse_args(argv)
    plan = PLANS["quick" if args.quick else "smoke" if args.smoke else "full"]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if "faults" in only:
        if only != ["faults"]:
            parser.error("faults runs on its own: --only faults")
        select = [w.strip() for w in args.faults.split(",") if w.strip()]
        return faults.main(args.quick or args.smoke, args.out_dir, args.keep, select)
    if unknown := set(only) - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="sayna-bench-"))
    stem = args.out_dir / f"{datetime.now():%Y-%m-%d-%H%M%S}-{plan.name}"
    profile_dir = Path(f"{stem}-profiles") if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True)

    def log(line: str) -> None:
        print(f"[bench {time.perf_counter() - started:5.1f}s] {line}", file=sys.stderr, flush=True)

    # SIGTERM (CI timeout, kill) unwinds like Ctrl-C, so every child process is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        uv = tuple(s.strip() for s in args.uvloop.split(",") if s.strip())
        env = dict(item.split("=", 1) for item in args.env)
        res = measure(plan, only, work, log, profile_dir, uv, env, args.endpoints)
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): child processes stopped, no results written")
        return 130
    finally:
        if args.keep:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    res["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    if res.get("e2e"):
        res["capacity"] = capacity.check(res["e2e"])
        res["capacity"]["bytes_per_event"] = capacity.bytes_per_event(res["e2e"])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    print(report.text(res))
    print(report.plot(res, stem.with_suffix(".png")))
    print(f"results: {stem.with_suffix('.json')} ({res['elapsed_seconds']}s)")
    for name, why in res["failed"].items():
        print(f"FAILED {name}: {why}")
    model_missed = res.get("capacity", {}).get("ok") is False
    if model_missed:
        print("FAILED capacity: the model's prediction is off by more than 25 % (section 5)")
    if disordered := _disordered(res):
        print(f"FAILED ordering: {disordered} call(s) out of order with ordering: call")
    return 1 if res["failed"] or _lost(res) or model_missed or disordered else 0


if __name__ == "__main__":
    sys.exit(main())
