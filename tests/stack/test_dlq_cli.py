"""`sayna-sip dlq list` and `dlq redrive` against dead letters made by a real forwarder."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext

from sayna_sip.cli import dlq as dlq_cli
from sayna_sip.common import audit, deadletters, topology
from sayna_sip.common.contracts import Header
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.fixtures.nats import NatsServer
from tests.forwarder.conftest import (
    StartForwarder,
    dead_letters,
    drained,
    publish,
    put_hook,
    wait_dead,
)


async def cli(*args: str) -> int:
    """Run the command as `sayna-sip dlq ...` does (its own event loop, in a thread)."""
    return await asyncio.to_thread(dlq_cli.main, list(args))


@pytest.fixture(autouse=True)
def _nats_url_env(monkeypatch: pytest.MonkeyPatch, nats_server: NatsServer) -> None:
    monkeypatch.setenv("NATS_URL", nats_server.url)


async def test_list_then_redrive_one_host_delivers_once_healthy(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    https_sink.program("/later", Reply(500), Reply(500))
    https_sink.program("/gone", Reply(410))
    await put_hook(jetstream, "later.example.com", https_sink.url("/later"))
    await put_hook(jetstream, "gone.example.com", https_sink.url("/gone"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,0s")  # two tries
    event_id, body = await publish(jetstream, "later.example.com")
    gone_id, _ = await publish(jetstream, "gone.example.com")
    await wait_dead(jetstream, 2)

    assert await cli("list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["SEQ", "DEAD", "AT", "HOOK", "ENDPOINT", "EVENT", "EVENT", "ID",
                              "TRIES", "REASON", "LAST"]  # fmt: skip
    rows = {line.split()[5]: line for line in out[1:]}
    assert all(line.split()[3] == "default" for line in out[1:])  # written before endpoints
    assert set(rows) == {event_id, gone_id}
    assert "later.example.com" in rows[event_id] and "retries exhausted" in rows[event_id]
    assert "gone" in rows[gone_id] and "HTTP 410" in rows[gone_id]
    assert await cli("list", "--host", "gone.example.com", "--limit", "5") == 0
    assert gone_id in capsys.readouterr().out

    # Healthy again after one more failure: the redriven event retries on a fresh id
    # (not swallowed by the dedupe window) and arrives with the same webhook-id.
    https_sink.program("/later", Reply(500))
    assert await cli("redrive", "--host", "later.example.com") == 0
    assert "redriven 1 dead letter(s)" in capsys.readouterr().out
    got = await https_sink.wait_for(4, "/later")
    assert [r.headers["webhook-id"] for r in got] == [event_id] * 4
    assert got[-1].body == body
    await drained(jetstream)
    remaining = await dead_letters(jetstream)
    assert [(m.headers or {}).get("Sayna-Event-Id") for m in remaining] == [gone_id]


async def test_redrive_all_and_guard_against_accidents(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        await cli("redrive")  # neither --host nor --all
    assert exit_info.value.code == 2
    assert await cli("list") == 0
    assert "no dead letters" in capsys.readouterr().out

    https_sink.program("/a", then=Reply(410))
    await put_hook(jetstream, "a.example.com", https_sink.url("/a"))
    await start_forwarder()
    ids = [(await publish(jetstream, "a.example.com"))[0] for _ in range(4)]
    assert len(await wait_dead(jetstream, 4)) == 4
    https_sink.program("/a", then=Reply(200))
    assert await cli("redrive", "--event-id", ids[0]) == 0  # one event, by its id
    assert "redriven 1 dead letter(s)" in capsys.readouterr().out
    assert await cli("redrive", "--since", "1h", "--event-id", ids[1], "--event-id", ids[2]) == 0
    assert "redriven 2 dead letter(s)" in capsys.readouterr().out
    assert await cli("redrive", "--since", "1h", "--until", "2000-01-01T00:00:00Z") == 0
    assert "redriven 0 dead letter(s)" in capsys.readouterr().out  # none died before 2000
    assert await cli("redrive", "--all") == 0
    assert "redriven 1 dead letter(s)" in capsys.readouterr().out
    await https_sink.wait_for(8, "/a")
    got = [r.headers["webhook-id"] for r in https_sink.received("/a")[4:]]
    assert sorted(got) == sorted(ids)  # each redriven once
    await drained(jetstream)
    assert await dead_letters(jetstream) == []


async def test_redrive_stops_at_the_letters_present_when_it_began(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    https_sink.program("/dies", then=Reply(410))
    await put_hook(jetstream, "dies.example.com", https_sink.url("/dies"))
    fwd = await start_forwarder()
    for _ in range(2):
        await publish(jetstream, "dies.example.com")
    assert len(await wait_dead(jetstream, 2)) == 2
    await fwd.stop()

    # Each redriven letter dies again at once (still 410, or its hook removed), as a
    # running forwarder would do it: a new dead letter appears during the redrive.
    real = deadletters.redrive_one
    calls = 0

    async def redrive_and_die_again(js: JetStreamContext, letter: deadletters.DeadLetter) -> bool:
        nonlocal calls
        calls += 1
        if calls > 10:
            raise RuntimeError("redrive is chasing its own dead letters")
        done = await real(js, letter)
        headers = {**letter.headers, Header.MSG_ID: f"again-{calls}"}
        await js.publish(letter.subject, letter.body, stream=topology.SIP_DEAD, headers=headers)
        return done

    monkeypatch.setattr(deadletters, "redrive_one", redrive_and_die_again)
    assert await cli("redrive", "--all") == 0
    assert "redriven 2 dead letter(s)" in capsys.readouterr().out
    assert calls == 2
    assert len(await dead_letters(jetstream)) == 2  # the two new ones, for a later redrive


async def test_a_redrive_from_the_cli_is_in_the_audit_log(
    jetstream: JetStreamContext, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.ingress.tenants import EV, A, seed_dead_letter

    await seed_dead_letter(jetstream, A)
    assert await cli("redrive", "--host", A.upper()) == 0
    assert "redriven 1 dead letter(s)" in capsys.readouterr().out
    info = await jetstream.stream_info(topology.SIP_AUDIT)
    stored = await jetstream.get_msg(topology.SIP_AUDIT, info.state.last_seq)
    rec = audit.decode(stored.data or b"")
    assert (rec.via, rec.actor, rec.action, rec.host) == ("cli", "admin", "dlq.redrive", A)
    assert rec.values == {"redriven": 1} and EV[A] not in str(rec)
