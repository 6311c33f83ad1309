"""The benchmark harness: its pure parts as tables, and a smoke run that must produce a
results file with every key the table and docs/performance.md rely on."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import jwt
import pytest

from bench import events, jwt_check, report, run
from bench.baselines import to_host
from bench.profiling import summarize
from bench.sink import Recorder, _event_id
from bench.stats import percentile, summary_ms


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 50, 0.0), ([1.0], 99, 1.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), ([1.0, 2.0], 99, 2.0)],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_summary_reports_milliseconds() -> None:
    assert summary_ms([0.001, 0.002, 0.010]) == {
        "p50_ms": 2.0,
        "p90_ms": 10.0,
        "p99_ms": 10.0,
        "max_ms": 10.0,
    }


def test_signed_event_verifies_like_livekit_and_routes_to_the_tenant() -> None:
    body = events.event_body("r1", 7)
    claims = jwt.decode(
        events.sign(body), events.API_SECRET, algorithms=["HS256"], issuer=events.API_KEY
    )
    assert claims["sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    event = json.loads(body)
    assert event["id"] == events.event_id("r1", 7)
    assert event["room"]["name"].startswith(events.ROOM_PREFIX)
    assert to_host(event["participant"]["attributes"]["sip.h.to"]) == events.TENANT_HOST


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ([(b"webhook-id", b"EV_1")], b"{}", "EV_1"),
        ([(b"x-sayna-event-id", b"EV_2")], b"{}", "EV_2"),
        ([], b'{"id":"EV_3","event":"x"}', "EV_3"),
        ([], b"not json", ""),
    ],
)
def test_sink_finds_the_event_id(
    headers: list[tuple[bytes, bytes]], body: bytes, expected: str
) -> None:
    assert _event_id(headers, body) == expected


def test_sink_keeps_first_arrival_and_counts_repeats() -> None:
    rec = Recorder()
    rec.record("a", 1.0)
    rec.record("a", 2.0)
    rec.record("b", 3.0)
    assert rec.arrivals == {"a": 1.0, "b": 3.0}
    assert rec.stats() == {"count": 2, "requests": 3, "duplicates": 1, "refused": 0}


def test_smoke_run_writes_results_with_expected_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run.main(["--smoke", "--only", "ingress", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    (results,) = tmp_path.glob("*-smoke.json")
    res = json.loads(results.read_text())
    assert {"date", "plan", "machine", "memory", "ingress", "elapsed_seconds"} <= res.keys()
    assert res["failed"] == {}
    assert res["machine"]["cores"] >= 1
    targets = {r["target"] for r in res["ingress"]}
    assert targets == {"bare", "ingress"}
    for row in res["ingress"]:
        assert row["ok"] > 0 and row["errors"] == 0
        assert {"p50_ms", "p99_ms"} <= row["latency"].keys()
    assert {m["process"] for m in res["memory"]} >= {"ingress", "nats-server"}
    assert "1. Ingress intake" in out and "vs bare" in out


def test_profile_summary_ranks_self_total_and_library(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "main (app/main.py:1);decode (jwt/api_jwt.py:10);loads (json/__init__.py:3) 3\n"
        "main (app/main.py:1);send (httpx/_client.py:5) 1\n"
    )
    prof = summarize(raw)
    assert prof["samples"] == 4
    assert prof["self"][0] == ("loads (json/__init__.py)", 75.0)
    assert dict(prof["total"])["decode (jwt/api_jwt.py)"] == 75.0
    assert dict(prof["total"])["main (app/main.py)"] == 100.0
    assert dict(prof["packages"]) == {"json": 75.0, "httpx": 25.0}


def test_report_renders_every_section_of_a_real_run(tmp_path: Path) -> None:
    res = json.loads((Path(__file__).parent / "sample_results.json").read_text())
    text = report.text(res)
    for title in ("1. Ingress", "2. End to end", "3. Forwarder scaling", "4. Peak RSS", "5. Load"):
        assert title in text
    assert "profile forwarder" in text and "by library:" in text
    note = report.plot(res, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").exists() or "matplotlib is not installed" in note


def test_jwt_check_compares_two_checks_that_agree() -> None:
    named = jwt_check.checks()
    verdicts = {
        name: (jwt_check.accepts(named["PyJWT"], t), jwt_check.accepts(named["ingress"], t))
        for name, t in jwt_check.cases().items()
    }
    assert verdicts["valid"] == (True, True)
    assert all(a == b for a, b in verdicts.values()), verdicts
