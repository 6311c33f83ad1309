"""LiveKit SIP provisioning against the local Twirp server: create, reuse, update, refuse."""

from __future__ import annotations

import logging
import time

import pytest
from livekit.protocol import room as room_pb
from livekit.protocol import sip as sip_pb

from sayna_sip.provisioner.errors import LiveKitProvisionError
from sayna_sip.provisioner.livekit_provision import Retry
from sayna_sip.provisioner.provision import provision
from tests.fixtures.livekit import LiveKitTwirp
from tests.provisioner.conftest import MakeConfig
from tests.provisioner.helpers import sip_env

FAST = Retry(attempts=3, first_delay=0.01, max_delay=0.02, request_timeout=2.0)
TRUNK, DISPATCH = "sayna-call--trunk", "sayna-call--dispatch"
DETECTED = "SIP configuration detected, provisioning LiveKit SIP trunk and dispatch rules"
SUCCESS = f"Successfully provisioned SIP resources: trunk={TRUNK}, dispatch={DISPATCH}"
LISTS = ["ListSIPInboundTrunk", "ListSIPDispatchRule"]


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def sip_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log lines about SIP provisioning (NATS resource names like SIP_DEAD do not count)."""
    markers = ("livekit", "SIP configuration", "SIP resources", "static_hook")
    return [m for m in messages(caplog) if any(k in m for k in markers)]


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip")


async def test_first_run_creates_trunk_and_rule_with_every_field(
    make_config: MakeConfig, livekit_server: LiveKitTwirp, caplog: pytest.LogCaptureFixture
) -> None:
    summary = await provision(make_config(**sip_env(livekit_server)), livekit_retry=FAST)

    assert livekit_server.methods() == [
        "ListSIPInboundTrunk",
        "CreateSIPInboundTrunk",
        "ListSIPDispatchRule",
        "CreateSIPDispatchRule",
    ]
    [trunk] = livekit_server.trunks.values()
    assert trunk.name == TRUNK
    assert list(trunk.allowed_addresses) == ["10.0.0.1", "2001:db8::/64"]
    assert trunk.include_headers == sip_pb.SIPHeaderOptions.SIP_ALL_HEADERS
    [rule] = livekit_server.rules.values()
    assert rule.name == DISPATCH
    assert rule.rule.WhichOneof("rule") == "dispatch_rule_individual"
    assert rule.rule.dispatch_rule_individual.room_prefix == "call-"
    assert list(rule.trunk_ids) == [trunk.sip_trunk_id]
    assert rule.room_config.max_participants == 3
    assert summary.names("created")[-2:] == [
        f"livekit_trunk:{TRUNK}",
        f"livekit_dispatch:{DISPATCH}",
    ]
    logged = messages(caplog)
    assert DETECTED in logged
    assert any(m.startswith(SUCCESS) for m in logged)


async def test_second_and_tenth_runs_create_nothing(
    make_config: MakeConfig, livekit_server: LiveKitTwirp
) -> None:
    config = make_config(**sip_env(livekit_server))
    await provision(config, livekit_retry=FAST)
    trunks, rules = dict(livekit_server.trunks), dict(livekit_server.rules)

    for run in range(2, 11):
        livekit_server.calls.clear()
        summary = await provision(config, livekit_retry=FAST)
        assert livekit_server.methods() == LISTS, f"run {run}"
        assert not summary.changed, f"run {run}"

    assert livekit_server.trunks == trunks
    assert livekit_server.rules == rules


async def test_changed_addresses_update_the_trunk_in_place(
    make_config: MakeConfig, livekit_server: LiveKitTwirp
) -> None:
    await provision(make_config(**sip_env(livekit_server)), livekit_retry=FAST)
    [trunk_id] = livekit_server.trunks
    livekit_server.calls.clear()

    changed = sip_env(livekit_server, SIP_ALLOWED_ADDRESSES="192.0.2.0/24")
    summary = await provision(make_config(**changed), livekit_retry=FAST)

    assert livekit_server.methods() == [
        "ListSIPInboundTrunk",
        "UpdateSIPInboundTrunk",
        "ListSIPDispatchRule",
    ]
    update = livekit_server.calls[1].request
    assert isinstance(update, sip_pb.UpdateSIPInboundTrunkRequest)
    assert update.HasField("replace")
    assert list(livekit_server.trunks) == [trunk_id]
    trunk = livekit_server.trunks[trunk_id]
    assert list(trunk.allowed_addresses) == ["192.0.2.0/24"]
    assert trunk.include_headers == sip_pb.SIPHeaderOptions.SIP_ALL_HEADERS
    assert summary.names("updated") == [f"livekit_trunk:{TRUNK}"]


async def test_changed_participant_limit_updates_the_rule_in_place(
    make_config: MakeConfig, livekit_server: LiveKitTwirp
) -> None:
    await provision(make_config(**sip_env(livekit_server)), livekit_retry=FAST)
    [rule_id] = livekit_server.rules
    livekit_server.calls.clear()

    config = make_config(**sip_env(livekit_server, SIP_MAX_PARTICIPANTS="5"))
    await provision(config, livekit_retry=FAST)

    assert livekit_server.methods() == [*LISTS, "UpdateSIPDispatchRule"]
    assert list(livekit_server.rules) == [rule_id]
    rule = livekit_server.rules[rule_id]
    assert rule.room_config.max_participants == 5
    assert rule.rule.dispatch_rule_individual.room_prefix == "call-"


async def test_drifted_rule_and_headers_are_repaired(
    make_config: MakeConfig, livekit_server: LiveKitTwirp
) -> None:
    config = make_config(**sip_env(livekit_server))
    await provision(config, livekit_retry=FAST)
    [trunk] = livekit_server.trunks.values()
    [rule] = livekit_server.rules.values()
    trunk.include_headers = sip_pb.SIPHeaderOptions.SIP_NO_HEADERS
    rule.rule.dispatch_rule_individual.room_prefix = "other-"
    del rule.trunk_ids[:]
    rule.room_config.empty_timeout = 42  # an operator's own setting survives the repair

    await provision(config, livekit_retry=FAST)

    assert trunk.include_headers == sip_pb.SIPHeaderOptions.SIP_ALL_HEADERS
    assert rule.rule.dispatch_rule_individual.room_prefix == "call-"
    assert list(rule.trunk_ids) == [trunk.sip_trunk_id]
    assert rule.room_config.empty_timeout == 42


async def test_two_rules_with_the_name_is_a_clear_error(
    make_config: MakeConfig, livekit_server: LiveKitTwirp
) -> None:
    config = make_config(**sip_env(livekit_server))
    await provision(config, livekit_retry=FAST)
    extra = sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_extra",
        name=DISPATCH,
        room_config=room_pb.RoomConfiguration(max_participants=3),
    )
    livekit_server.rules[extra.sip_dispatch_rule_id] = extra
    livekit_server.calls.clear()

    with pytest.raises(LiveKitProvisionError) as err:
        await provision(config, livekit_retry=FAST)

    [first_id] = [i for i in livekit_server.rules if i != "SDR_extra"]
    assert f"2 LiveKit SIP dispatch rules are named {DISPATCH}" in str(err.value)
    assert first_id in str(err.value) and "SDR_extra" in str(err.value)
    assert "Create" not in " ".join(livekit_server.methods())  # no third one


async def test_two_trunks_with_the_name_is_a_clear_error(
    make_config: MakeConfig, livekit_server: LiveKitTwirp
) -> None:
    for trunk_id in ("ST_a", "ST_b"):
        livekit_server.trunks[trunk_id] = sip_pb.SIPInboundTrunkInfo(
            sip_trunk_id=trunk_id, name=TRUNK
        )

    with pytest.raises(LiveKitProvisionError, match=rf"named {TRUNK} \(ST_a, ST_b\)"):
        await provision(make_config(**sip_env(livekit_server)), livekit_retry=FAST)
    assert livekit_server.rules == {}


async def test_wrong_secret_fails_at_once_with_names_and_livekits_error(
    make_config: MakeConfig, livekit_server: LiveKitTwirp, caplog: pytest.LogCaptureFixture
) -> None:
    env = sip_env(livekit_server, LIVEKIT_API_SECRET="not-the-secret-0123456789abcdef012345")

    with pytest.raises(LiveKitProvisionError) as err:
        await provision(make_config(**env), livekit_retry=FAST)

    message = str(err.value)
    assert f"trunk={TRUNK}" in message and f"dispatch={DISPATCH}" in message
    assert "unauthenticated" in message and "after 1 attempt(s)" in message
    assert not any("event=livekit_sip_retry" in m for m in messages(caplog))


async def test_server_errors_are_retried_then_succeed(
    make_config: MakeConfig, livekit_server: LiveKitTwirp, caplog: pytest.LogCaptureFixture
) -> None:
    livekit_server.fail_with = [(503, "unavailable"), (500, "internal")]

    await provision(make_config(**sip_env(livekit_server)), livekit_retry=FAST)

    assert len(livekit_server.trunks) == 1 and len(livekit_server.rules) == 1
    retries = [m for m in messages(caplog) if "event=livekit_sip_retry" in m]
    assert len(retries) == 2 and "programmed failure" in retries[0]


async def test_unreachable_livekit_fails_in_bounded_time(
    make_config: MakeConfig, livekit_server: LiveKitTwirp
) -> None:
    await livekit_server.stop()  # its port now refuses connections
    started = time.monotonic()

    with pytest.raises(LiveKitProvisionError) as err:
        await provision(make_config(**sip_env(livekit_server)), livekit_retry=FAST)

    assert time.monotonic() - started < 3.0
    message = str(err.value)
    assert f"trunk={TRUNK} dispatch={DISPATCH}" in message
    assert "after 3 attempt(s)" in message and "Cannot connect" in message


async def test_missing_credentials_log_one_line_and_skip(
    make_config: MakeConfig, livekit_server: LiveKitTwirp, caplog: pytest.LogCaptureFixture
) -> None:
    summary = await provision(make_config(**sip_env(LIVEKIT_URL=livekit_server.url)))

    assert livekit_server.calls == []
    [line] = sip_lines(caplog)
    assert "event=livekit_sip_skipped reason=missing_credentials" in line
    assert "stream:LK_EVENTS" in summary.names("created")


async def test_sip_disabled_provisions_nats_only_without_sip_lines(
    make_config: MakeConfig, livekit_server: LiveKitTwirp, caplog: pytest.LogCaptureFixture
) -> None:
    env = sip_env(livekit_server)
    env = {k: v for k, v in env.items() if k.startswith("LIVEKIT_")}

    summary = await provision(make_config(**env), livekit_retry=FAST)

    assert livekit_server.calls == []
    assert summary.names("created") == [
        "stream:LK_EVENTS", "consumer:LK_EVENTS/router", "consumer:LK_EVENTS/router-p00..p15"
    ]  # fmt: skip
    assert sip_lines(caplog) == []
    assert any("event=nats_created" in m for m in messages(caplog))  # logging was captured
