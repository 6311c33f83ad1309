"""`make mutants`: mutmut 2 over each critical module with the tests that guard it, then
one table of killed / survived per module.

mutmut 2 mutates the file in place, runs the module's test command once per mutant (any
command, so tests of real processes see the mutant too) and restores the file. Do not
edit the tree while it runs. `python -m mutation.run signing policy` runs only those.
Surviving mutants: `.venv/bin/mutmut show <id>` right after the module's run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mutation.equivalent import EQUIVALENT

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CACHE = ROOT / ".mutmut-cache"
# Each mutant costs one pytest start, so keep it small: no plugin autoload (hypothesis'
# and faker's plugins alone import for ~1.5 s), stop at the first failure, no cache.
PYTEST = f"{BIN / 'python'} -m mutation.runtests -x -q -p no:cacheprovider"
ASYNC = "-p pytest_asyncio.plugin -p pytest_timeout"  # what the NATS/HTTP tests need
PURE = "--noconftest"  # tables and pure functions: skip the fixtures' imports (~1 s a run)


MEMBERS = ["libs/common", "services/ingress", "services/router", "services/forwarder",
           "services/provisioner", "cli"]  # fmt: skip


@dataclass(frozen=True)
class Module:
    """A file to mutate and the narrowest tests that guard it, fastest first (`-x`)."""

    path: str
    tests: tuple[str, ...]
    pure: bool = False  # the tests need no fixtures and no event loop
    deselect: tuple[str, ...] = ()  # slow tests that exercise nothing of this module

    @property
    def command(self) -> str:
        flags = PURE if self.pure else ASYNC
        skipped = " ".join(f"--deselect {node}" for node in self.deselect)
        return f"{PYTEST} {flags} {' '.join(self.tests)} {skipped}".strip()


MODULES = {
    "signing": Module(
        "services/forwarder/src/sayna_sip/forwarder/signing.py",
        ("tests/forwarder/test_signing.py",),
        pure=True,
    ),
    "policy": Module(
        "services/forwarder/src/sayna_sip/forwarder/policy.py",
        ("tests/forwarder/test_policy.py",),
        pure=True,
    ),
    "netpolicy": Module(
        "libs/common/src/sayna_sip/common/netpolicy.py",
        ("tests/common/test_netpolicy.py", "tests/common/test_hosts.py"),
        pure=True,
    ),
    "safenet": Module(
        "services/forwarder/src/sayna_sip/forwarder/safenet.py",
        ("tests/forwarder/test_safenet.py",),
    ),
    "sipuri": Module(
        "services/router/src/sayna_sip/router/sipuri.py",
        ("tests/router/test_sipuri.py",),
        pure=True,
    ),
    "hosts": Module(
        "libs/common/src/sayna_sip/common/hosts.py",
        ("tests/common/test_hosts.py",),
        pure=True,
    ),
    "hookstore": Module(
        "libs/common/src/sayna_sip/common/hookstore.py",
        (
            "tests/common/test_hook.py",
            "tests/common/test_hookstore.py",
            "tests/ingress/test_hooks_race.py",
            "tests/provisioner/test_static_hooks.py",
        ),
    ),
    "webhook": Module(
        "services/ingress/src/sayna_sip/ingress/webhook.py",
        ("tests/ingress/test_units.py", "tests/ingress/test_webhook.py"),
        # NATS outages (10 s of publish retries); verification is done by then
        deselect=("tests/ingress/test_webhook.py::test_refused_or_unrouted_publish_is_503",),
    ),
    "hs256": Module(
        "services/ingress/src/sayna_sip/ingress/hs256.py",
        ("tests/ingress/test_units.py",),
        pure=True,
    ),
    "hooks_api": Module(
        "services/ingress/src/sayna_sip/ingress/hooks.py",
        (
            "tests/ingress/test_hook_store.py",
            "tests/ingress/test_hooks_api.py",
            "tests/ingress/test_hooks_race.py",
        ),
    ),
    # The endpoint, records and console modules (issue #27), most critical first.
    "routes_deliveries": Module(
        "services/ingress/src/sayna_sip/ingress/routes_deliveries.py",
        (
            "tests/docs/test_api_answers.py",  # its documented answers, in a second
            "tests/ingress/test_records_answers.py",  # its 503 and 400 texts
            "tests/ingress/test_records_input.py",
            "tests/ingress/test_operator_answers.py",
            "tests/ingress/test_tenant_access.py",  # what a tenant's token reaches
            "tests/ingress/test_audit.py",  # what its writes record
            "tests/ingress/test_auth_matrix.py",
            "tests/integration/test_records.py",
            "tests/integration/test_resend.py",
            "tests/integration/test_delivery_view.py",
        ),
        deselect=(
            "tests/integration/test_records.py::test_one_trace_spans_ingress_router_and_forwarder",
        ),
    ),
    "deadletters": Module(
        "libs/common/src/sayna_sip/common/deadletters.py",
        (
            "tests/ingress/test_operator_answers.py",
            # the redrive's time budget, direct and through the API
            "tests/ingress/test_records_input.py::test_a_redrive_stops_at_its_time_budget_and_the_next_call_goes_on",
            "tests/ingress/test_records_input.py::test_an_api_redrive_out_of_time_says_truncated_and_the_same_call_goes_on",
            "tests/integration/test_records.py",
        ),
        deselect=(
            "tests/integration/test_records.py::test_one_trace_spans_ingress_router_and_forwarder",
        ),
    ),
    "replay": Module(
        "libs/common/src/sayna_sip/common/replay.py",
        ("tests/common/test_replay.py", "tests/integration/test_records.py"),
        deselect=(
            "tests/integration/test_records.py::test_one_trace_spans_ingress_router_and_forwarder",
        ),
    ),
    "endpoint_health": Module(
        "services/forwarder/src/sayna_sip/forwarder/endpoint_health.py",
        ("tests/forwarder/test_auto_disable.py",),
    ),
    "hook_secrets": Module(
        "libs/common/src/sayna_sip/common/hook_secrets.py",
        ("tests/common/test_hook_secrets.py",),
        pure=True,
    ),
    "secretbox": Module(
        "libs/common/src/sayna_sip/common/secretbox.py",
        ("tests/common/test_secretbox.py",),
        pure=True,
    ),
    "pull": Module(
        "services/forwarder/src/sayna_sip/forwarder/pull.py",
        ("tests/forwarder/test_pull_accounting.py", "tests/forwarder/test_pull.py"),
    ),
    "deliveries": Module(
        "libs/common/src/sayna_sip/common/deliveries.py",
        (
            "tests/common/test_deliveries_input.py",  # pure: cursors, times, views, retries
            "tests/docs/test_api_answers.py",  # the page size's bound, the stats windows
            "tests/common/test_deliveries.py",
            # its stats windows through the API (the file's other tests read dead letters)
            "tests/ingress/test_operator_answers.py::test_stats_count_only_the_attempts_inside_the_window",
        ),
        deselect=(  # the Recorder's own failures: they read nothing back
            "tests/common/test_deliveries.py::test_records_while_nats_is_down_are_counted_not_waited_for",
            "tests/common/test_deliveries.py::test_a_record_the_stream_refuses_is_counted_not_raised",
        ),
    ),
    "delivery": Module(
        "libs/common/src/sayna_sip/common/delivery.py",
        (
            "tests/common/test_delivery_wire.py",  # every copy, header by header
            "tests/common/test_delivery.py",
            "tests/forwarder/test_hold.py",
        ),
        pure=True,
    ),
    "hook_directory": Module(
        "libs/common/src/sayna_sip/common/hook_directory.py",
        (
            "tests/router/test_matching.py",  # pure: host matching, a second
            "tests/common/test_hook_directory.py",  # reads, the watch, reloads on real KV
            "tests/common/test_hook_keys.py",  # misplaced records
            "tests/common/test_hook_snapshot.py",
            "tests/router/test_hook_miss.py",
        ),
    ),
    "settle": Module(
        "services/forwarder/src/sayna_sip/forwarder/settle.py",
        (
            "tests/forwarder/test_settle.py",  # records, metrics, log lines, crash paths
            "tests/forwarder/test_delivery.py",
            "tests/forwarder/test_permanent.py",
            "tests/forwarder/test_sealed.py",  # a secret it cannot open: put back, no try
            "tests/forwarder/test_order_late.py",  # lanes: late and released heads
            # a proxy outage outlasting the schedule: retried without spending a try
            "tests/forwarder/test_egress.py::test_forwarder_waits_out_a_proxy_outage_without_blaming_the_endpoint",
        ),
        deselect=(  # Retry-After against the wall clock: policy's, and flaky under load
            "tests/forwarder/test_delivery.py::test_retry_after_is_honoured_within_twice_the_scheduled_delay",
        ),
    ),
    "gate": Module(
        "services/forwarder/src/sayna_sip/forwarder/gate.py",
        ("tests/forwarder/test_gate.py",),
        pure=True,
    ),
    "hold": Module(
        "services/forwarder/src/sayna_sip/forwarder/hold.py",
        ("tests/forwarder/test_hold.py",),
        pure=True,
    ),
    "testsend": Module(
        "services/forwarder/src/sayna_sip/forwarder/testsend.py",
        ("tests/forwarder/test_testsend.py",),  # asked over NATS, no ingress: seconds
    ),
    "pace": Module(
        "services/forwarder/src/sayna_sip/forwarder/pace.py",
        ("tests/forwarder/test_pace.py",),
    ),
    "egress": Module(
        "services/forwarder/src/sayna_sip/forwarder/egress.py",
        ("tests/forwarder/test_egress.py",),
    ),
    "routing": Module(
        "services/router/src/sayna_sip/router/routing.py",
        (
            "tests/router/test_unpartitioned.py",  # the handler itself, called directly
            "tests/router/test_nak_delays.py",  # the documented nak delays, 5 s
            "tests/router/test_routing.py",
            "tests/router/test_rooms.py",
            "tests/router/test_call_seq.py",
            "tests/router/test_limits.py",
            "tests/router/test_hook_miss.py",
        ),
    ),
    "endpoints": Module(
        "services/ingress/src/sayna_sip/ingress/endpoints.py",
        (
            # the API alone on NATS first (seconds), then the whole pipeline's
            "tests/ingress/test_endpoint_changes.py",
            "tests/ingress/test_rotation_bound.py",
            "tests/ingress/test_operator_answers.py::test_enable_clears_failing_since_and_tells_the_operators",
            "tests/ingress/test_audit.py",
            "tests/integration/test_endpoint_fanout.py",
            "tests/integration/test_endpoints.py",
        ),
    ),
    "routes_console": Module(
        "services/ingress/src/sayna_sip/ingress/routes_console.py",
        (
            "tests/docs/test_api_answers.py",
            "tests/ingress/test_security_headers.py",
            "tests/ingress/test_auth_matrix.py",
        ),
    ),
    "intake": Module(
        "services/ingress/src/sayna_sip/ingress/intake.py",
        (
            "tests/ingress/test_units.py",  # pure: the event's headers
            "tests/ingress/test_webhook.py",
            "tests/ingress/test_intake.py",  # tries, pauses, logs, its span
            "tests/ingress/test_health.py::test_metrics_count_webhooks_and_publish_latency",
            "tests/ingress/test_poison.py",  # max_payload, a closed connection
            "tests/ingress/test_outage.py",  # NATS away: retried within the budget, then 503
        ),
    ),
    "access": Module(
        "services/ingress/src/sayna_sip/ingress/access.py",
        (
            "tests/ingress/test_access_rules.py",  # pure: the rule on any route, first
            "tests/ingress/test_tenant_access.py",
            "tests/ingress/test_audit.py",  # the audit's actors (admin, anonymous)
        ),
    ),
    "access_tokens": Module(
        "services/ingress/src/sayna_sip/ingress/access_tokens.py",
        (
            "tests/ingress/test_access_tokens.py",  # pure: the token itself, first
            "tests/ingress/test_token_generations.py",  # KV sip_access, no app
            "tests/ingress/test_tenant_access.py",
            "tests/ingress/test_audit.py",
        ),
    ),
    "routes_access": Module(
        "services/ingress/src/sayna_sip/ingress/routes_access.py",
        (
            "tests/docs/test_api_answers.py",  # its documented answers, in a second
            "tests/ingress/test_tenant_access.py",
            "tests/ingress/test_audit.py",  # what a mint and a revoke record
        ),
    ),
    "access_answers": Module(
        "services/ingress/src/sayna_sip/ingress/access_answers.py",
        ("tests/docs/test_api_answers.py", "tests/ingress/test_access_answers.py"),
    ),
    "audit_trail": Module(
        "services/ingress/src/sayna_sip/ingress/audit_trail.py",
        # the middleware on routes of its own first (a second), then the API's
        ("tests/ingress/test_audit_trail.py", "tests/ingress/test_audit.py"),
    ),
    # Ordered delivery per call (issue #27's second round): the lane verbs, their KV
    # store, and the router's numbering of a room's copies.
    "order": Module(
        "services/forwarder/src/sayna_sip/forwarder/order.py",
        ("tests/forwarder/test_order.py", "tests/forwarder/test_call_lanes.py"),
    ),
    "order_lanes": Module(
        "services/forwarder/src/sayna_sip/forwarder/order_lanes.py",
        (
            "tests/forwarder/test_call_lanes.py",
            "tests/forwarder/test_order_lanes.py",
            "tests/forwarder/test_lane_notice.py",
        ),
    ),
    "callseq": Module(
        "services/router/src/sayna_sip/router/callseq.py",
        ("tests/router/test_callseq.py",),
        pure=True,
    ),
    "ordered": Module(
        "services/router/src/sayna_sip/router/ordered.py",
        (
            "tests/router/test_call_seq.py",
            "tests/router/test_rooms.py",
            "tests/router/test_limits.py",
            "tests/router/test_routing.py",
        ),
    ),
    "copies": Module(
        "services/router/src/sayna_sip/router/copies.py",
        ("tests/router/test_call_seq.py", "tests/router/test_routing.py"),
    ),
}


@dataclass
class Score:
    killed: int
    survived: list[int]  # survivors not judged equivalent: gaps in the tests
    equivalent: list[int]  # survivors listed in mutation/equivalent.py, with the reason
    other: int  # timeouts and suspicious: the tests noticed, but slowly
    untested: int  # the run stopped before reaching them
    seconds: float

    @property
    def total(self) -> int:
        return self.killed + len(self.survived) + len(self.equivalent) + self.other + self.untested

    @property
    def percent(self) -> float:
        """Killed among the mutants a test could kill (equivalent ones cannot be)."""
        killable = self.total - self.untested - len(self.equivalent)
        return 100.0 * (self.killed + self.other) / killable if killable else 0.0


def run(name: str, module: Module) -> Score:
    CACHE.unlink(missing_ok=True)  # one module per cache: its numbers only
    # mutmut rewrites the file in place, often within the same second and at the same
    # size, so a cached .pyc would still look fresh and the mutant would never run.
    target = ROOT / module.path
    for pyc in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
        pyc.unlink()
    started = time.monotonic()
    for _ in range(RESTARTS):  # each pass resumes from the cache: tested mutants are skipped
        if _mutmut(module) or not _untested():
            break
    return _score(name, time.monotonic() - started)


RESTARTS = 20
STALL_S = 300.0  # no mutant settled for this long: mutmut is stuck


def _mutmut(module: Module) -> bool:
    """One `mutmut run`; False when it crashed or stalled (it was stopped, the file restored).

    mutmut 2's main process looks mutants up in its cache while its worker process
    writes there, and now and then fails (`Attribute Mutant.line is required`) and then
    hangs at exit, waiting on the worker's queue: watch for that and start over.
    """
    command = [
        str(BIN / "mutmut"), "run", "--no-progress",
        "--paths-to-mutate", module.path,
        "--runner", module.command,
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=_env(), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip
        settled, since = _settled(), time.monotonic()
        while proc.poll() is None:
            time.sleep(2)
            errors.seek(0)
            if "Traceback" in errors.read() or time.monotonic() - since > STALL_S:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                _restore(ROOT / module.path)
                return False
            if (now := _settled()) != settled:
                settled, since = now, time.monotonic()
    _restore(ROOT / module.path)
    return proc.returncode == 0 or not _untested()


def _restore(target: Path) -> None:
    """Put back the original if mutmut was stopped with a mutant applied."""
    backup = target.with_name(target.name + ".bak")
    if backup.exists():
        backup.replace(target)


def _settled() -> int:
    return _count("status != 'untested'")


def _untested() -> int:
    return _count("status = 'untested'")


def _count(where: str) -> int:
    if not CACHE.exists():
        return 0
    with sqlite3.connect(CACHE, timeout=30) as db:
        try:
            return int(db.execute(f"select count(*) from Mutant where {where}").fetchone()[0])
        except sqlite3.OperationalError:  # the tables are not written yet
            return 0


def _env() -> dict[str, str]:
    """Import this tree's sources first (the .venv's editable install may point elsewhere,
    e.g. when a copy of the tree is mutated)."""
    src = [str(ROOT / m / "src") for m in MEMBERS]
    path = os.pathsep.join([str(ROOT), *src])
    return {
        **os.environ,
        "PYTHONPATH": path,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }


def _score(name: str, seconds: float) -> Score:
    with sqlite3.connect(CACHE) as db:
        rows = db.execute("select id, status from Mutant").fetchall()
    survived, equivalent = [], []
    known = {(old, new) for old, new, _ in EQUIVALENT.get(name, ())}
    for mutant in (i for i, s in rows if s == "bad_survived"):
        diff = subprocess.run(
            [str(BIN / "mutmut"), "show", str(mutant)], cwd=ROOT, capture_output=True, text=True
        ).stdout
        if _change(diff) in known:
            equivalent.append(mutant)
        else:  # a gap: its diff goes to stderr while the cache still has it
            survived.append(mutant)
            print(f"--- {name} survivor {mutant}\n{diff.strip()}", file=sys.stderr)
    killed = sum(s == "ok_killed" for _, s in rows)
    other = sum(s in ("bad_timeout", "ok_suspicious") for _, s in rows)
    untested = sum(s == "untested" for _, s in rows)
    return Score(killed, survived, equivalent, other, untested, seconds)


def _change(diff: str) -> tuple[str, str]:
    """The (original, mutated) line of a one-line mutant's diff, blanks trimmed."""
    lines = diff.splitlines()
    old = [ln[1:].strip() for ln in lines if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:].strip() for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    return (old[0] if old else "", new[0] if new else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(MODULES))
    names = parser.parse_args().modules or list(MODULES)
    unknown = set(names) - set(MODULES)
    if unknown:
        parser.error(f"unknown module(s): {', '.join(sorted(unknown))}")
    print(f"{'module':<10} {'mutants':>7} {'killed':>6} {'equiv':>5} {'survived':>8} "
          f"{'untested':>8} {'score':>6}")  # fmt: skip
    scores = {}
    for name in names:
        s = scores[name] = run(name, MODULES[name])
        print(
            f"{name:<10} {s.total:>7} {s.killed + s.other:>6} {len(s.equivalent):>5} "
            f"{len(s.survived):>8} {s.untested:>8} {s.percent:>5.1f}%  {s.seconds:.0f}s  "
            f"survivors: {s.survived or '-'}",
            flush=True,
        )
    killed = sum(s.killed + s.other for s in scores.values())
    equivalent = sum(len(s.equivalent) for s in scores.values())
    killable = sum(s.total - s.untested for s in scores.values()) - equivalent
    seconds = sum(s.seconds for s in scores.values())
    print(f"{'all':<10} {killable + equivalent:>7} {killed:>6} {equivalent:>5} "
          f"{killable - killed:>8} {'':>8} {100 * killed / max(killable, 1):>5.1f}%  "
          f"{seconds:.0f}s ({seconds / 60:.0f} min)")  # fmt: skip


if __name__ == "__main__":
    main()
