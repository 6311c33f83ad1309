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
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CACHE = ROOT / ".mutmut-cache"
PYTEST = f"{BIN / 'python'} -m mutation.runtests -x -q -p no:randomly -p no:cacheprovider"
PURE = "--noconftest"  # tables and pure functions: skip the fixtures' imports (~2 s a run)


MEMBERS = ["libs/common", "services/ingress", "services/router", "services/forwarder",
           "services/provisioner", "cli"]  # fmt: skip


@dataclass(frozen=True)
class Module:
    path: str
    tests: str


MODULES = {
    "signing": Module(
        "services/forwarder/src/sayna_sip/forwarder/signing.py",
        f"{PURE} tests/forwarder/test_signing.py",
    ),
    "policy": Module(
        "services/forwarder/src/sayna_sip/forwarder/policy.py",
        f"{PURE} tests/forwarder/test_policy.py",
    ),
    "netpolicy": Module(
        "libs/common/src/sayna_sip/common/netpolicy.py",
        f"{PURE} tests/common/test_hosts.py tests/forwarder/test_safenet.py "
        "tests/ingress/test_units.py",
    ),
    "safenet": Module(
        "services/forwarder/src/sayna_sip/forwarder/safenet.py",
        "tests/forwarder/test_safenet.py tests/forwarder/test_contract.py",
    ),
    "sipuri": Module(
        "services/router/src/sayna_sip/router/sipuri.py",
        f"{PURE} tests/router/test_sipuri.py",
    ),
    "hosts": Module(
        "libs/common/src/sayna_sip/common/hosts.py",
        "tests/common/test_hosts.py tests/router/test_matching.py",
    ),
    "hookstore": Module(
        "libs/common/src/sayna_sip/common/hookstore.py",
        "tests/common/test_hookstore.py tests/router/test_matching.py "
        "tests/ingress/test_hooks_race.py",
    ),
    "webhook": Module(
        "services/ingress/src/sayna_sip/ingress/webhook.py",
        "tests/ingress/test_units.py tests/ingress/test_webhook.py",
    ),
    "hooks_api": Module(
        "services/ingress/src/sayna_sip/ingress/hooks.py",
        "tests/ingress/test_hooks_race.py tests/ingress/test_hooks_api.py",
    ),
}


@dataclass
class Score:
    killed: int
    survived: list[int]
    other: int  # timeouts and suspicious: the tests noticed, but slowly
    untested: int  # the run stopped before reaching them
    seconds: float

    @property
    def total(self) -> int:
        return self.killed + len(self.survived) + self.other + self.untested

    @property
    def percent(self) -> float:
        tested = self.total - self.untested
        return 100.0 * (self.killed + self.other) / tested if tested else 0.0


def run(name: str, module: Module) -> Score:
    CACHE.unlink(missing_ok=True)  # one module per cache: its numbers only
    # mutmut rewrites the file in place, often within the same second and at the same
    # size, so a cached .pyc would still look fresh and the mutant would never run.
    target = ROOT / module.path
    for pyc in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
        pyc.unlink()
    started = time.monotonic()
    subprocess.run(
        [
            str(BIN / "mutmut"), "run", "--no-progress",
            "--paths-to-mutate", module.path,
            "--runner", f"{PYTEST} {module.tests}",
        ],
        cwd=ROOT, check=False, stdout=subprocess.DEVNULL, env=_env(),
    )  # fmt: skip
    score = _score(time.monotonic() - started)
    for mutant in score.survived:  # the diff of each survivor, while the cache has it
        shown = subprocess.run(
            [str(BIN / "mutmut"), "show", str(mutant)], cwd=ROOT, capture_output=True, text=True
        )
        print(f"--- {name} survivor {mutant}\n{shown.stdout.strip()}", file=sys.stderr)
    return score


def _env() -> dict[str, str]:
    """Import this tree's sources first (the .venv's editable install may point elsewhere,
    e.g. when a copy of the tree is mutated)."""
    src = [str(ROOT / m / "src") for m in MEMBERS]
    path = os.pathsep.join([str(ROOT), *src])
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def _score(seconds: float) -> Score:
    with sqlite3.connect(CACHE) as db:
        rows = db.execute("select id, status from Mutant").fetchall()
    survived = [i for i, s in rows if s == "bad_survived"]
    killed = sum(s == "ok_killed" for _, s in rows)
    other = sum(s in ("bad_timeout", "ok_suspicious") for _, s in rows)
    untested = sum(s == "untested" for _, s in rows)
    return Score(killed, survived, other, untested, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(MODULES))
    names = parser.parse_args().modules or list(MODULES)
    unknown = set(names) - set(MODULES)
    if unknown:
        parser.error(f"unknown module(s): {', '.join(sorted(unknown))}")
    print(
        f"{'module':<10} {'mutants':>7} {'killed':>6} {'survived':>8} {'untested':>8} {'score':>6}"
    )
    scores = {}
    for name in names:
        s = scores[name] = run(name, MODULES[name])
        print(
            f"{name:<10} {s.total:>7} {s.killed + s.other:>6} {len(s.survived):>8} "
            f"{s.untested:>8} {s.percent:>5.1f}%  {s.seconds:.0f}s  survivors: {s.survived or '-'}",
            flush=True,
        )
    killed = sum(s.killed + s.other for s in scores.values())
    tested = sum(s.total - s.untested for s in scores.values())
    print(f"{'all':<10} {tested:>7} {killed:>6} {tested - killed:>8} {'':>8} "
          f"{100 * killed / max(tested, 1):>5.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
