"""The LiveKit SIP inbound trunk and dispatch rule: their desired shape and reconciliation.

Each is found by name: absent -> created; present once -> reused, with drift in the
fields this product owns updated in place (a `replace` of the stored object, keeping
the fields an operator may have set); present more than once -> an error naming the
ids, since picking one would leave calls routed by the other. Never a duplicate.
"""

from __future__ import annotations

import logging

from livekit.api.sip_service import SipService
from livekit.protocol import room as room_pb
from livekit.protocol import sip as sip_pb

from sayna_sip.common.config import SipConfig
from sayna_sip.provisioner.errors import LiveKitProvisionError
from sayna_sip.provisioner.summary import Outcome, Summary

log = logging.getLogger("sayna_sip.provisioner")


def trunk_name(room_prefix: str) -> str:
    return f"sayna-{room_prefix}-trunk"


def dispatch_name(room_prefix: str) -> str:
    return f"sayna-{room_prefix}-dispatch"


def desired_trunk(sip: SipConfig) -> sip_pb.SIPInboundTrunkInfo:
    # Without SIP_ALL_HEADERS LiveKit never sets `sip.h.to`, and nothing can be routed.
    return sip_pb.SIPInboundTrunkInfo(
        name=trunk_name(sip.room_prefix),
        allowed_addresses=list(sip.allowed_addresses),
        include_headers=sip_pb.SIPHeaderOptions.SIP_ALL_HEADERS,
    )


def desired_rule(sip: SipConfig, trunk_id: str) -> sip_pb.SIPDispatchRuleInfo:
    individual = sip_pb.SIPDispatchRuleIndividual(room_prefix=sip.room_prefix)
    return sip_pb.SIPDispatchRuleInfo(
        name=dispatch_name(sip.room_prefix),
        rule=sip_pb.SIPDispatchRule(dispatch_rule_individual=individual),
        trunk_ids=[trunk_id],
        room_config=room_pb.RoomConfiguration(max_participants=sip.max_participants),
    )


async def ensure_trunk(api: SipService, want: sip_pb.SIPInboundTrunkInfo, summary: Summary) -> str:
    """The id of the one trunk named `want.name`, created or updated to match."""
    listed = await api.list_inbound_trunk(sip_pb.ListSIPInboundTrunkRequest())
    found = [t for t in listed.items if t.name == want.name]
    _refuse_duplicates("inbound trunk", want.name, [t.sip_trunk_id for t in found])
    if not found:
        made = await api.create_inbound_trunk(sip_pb.CreateSIPInboundTrunkRequest(trunk=want))
        _changed(summary, "trunk", want.name, made.sip_trunk_id, "created", [])
        return str(made.sip_trunk_id)
    have = found[0]
    drift = trunk_drift(have, want)
    if drift:
        fixed = sip_pb.SIPInboundTrunkInfo()
        fixed.CopyFrom(have)
        del fixed.allowed_addresses[:]
        fixed.allowed_addresses.extend(want.allowed_addresses)
        fixed.include_headers = want.include_headers
        await api.update_inbound_trunk(have.sip_trunk_id, fixed)
    _changed(
        summary, "trunk", want.name, have.sip_trunk_id, "updated" if drift else "unchanged", drift
    )
    return str(have.sip_trunk_id)


async def ensure_rule(api: SipService, want: sip_pb.SIPDispatchRuleInfo, summary: Summary) -> str:
    """The id of the one dispatch rule named `want.name`, created or updated to match."""
    # List them all, not by trunk: a same-named rule on another trunk must be found too.
    listed = await api.list_dispatch_rule(sip_pb.ListSIPDispatchRuleRequest())
    found = [r for r in listed.items if r.name == want.name]
    _refuse_duplicates("dispatch rule", want.name, [r.sip_dispatch_rule_id for r in found])
    if not found:
        request = sip_pb.CreateSIPDispatchRuleRequest(dispatch_rule=want)
        made = await api.create_dispatch_rule(request)
        _changed(summary, "dispatch", want.name, made.sip_dispatch_rule_id, "created", [])
        return str(made.sip_dispatch_rule_id)
    have = found[0]
    drift = rule_drift(have, want)
    if drift:
        fixed = sip_pb.SIPDispatchRuleInfo()
        fixed.CopyFrom(have)
        fixed.rule.CopyFrom(want.rule)
        del fixed.trunk_ids[:]
        fixed.trunk_ids.extend(want.trunk_ids)
        fixed.room_config.max_participants = want.room_config.max_participants
        await api.update_dispatch_rule(have.sip_dispatch_rule_id, fixed)
    rule_id = have.sip_dispatch_rule_id
    _changed(summary, "dispatch", want.name, rule_id, "updated" if drift else "unchanged", drift)
    return str(rule_id)


def trunk_drift(have: sip_pb.SIPInboundTrunkInfo, want: sip_pb.SIPInboundTrunkInfo) -> list[str]:
    drift = []
    # The allowlist is a set: an order LiveKit may not keep is no reason to update.
    if sorted(have.allowed_addresses) != sorted(want.allowed_addresses):
        drift.append("allowed_addresses")
    if have.include_headers != want.include_headers:
        drift.append("include_headers")
    return drift


def rule_drift(have: sip_pb.SIPDispatchRuleInfo, want: sip_pb.SIPDispatchRuleInfo) -> list[str]:
    drift = []
    if have.rule != want.rule:
        drift.append("rule")
    if list(have.trunk_ids) != list(want.trunk_ids):
        drift.append("trunk_ids")
    if have.room_config.max_participants != want.room_config.max_participants:
        drift.append("max_participants")
    return drift


def _refuse_duplicates(kind: str, name: str, ids: list[str]) -> None:
    if len(ids) > 1:
        raise LiveKitProvisionError(
            f"{len(ids)} LiveKit SIP {kind}s are named {name} ({', '.join(ids)}); "
            f"delete all but one so calls are routed by exactly one"
        )


def _changed(
    summary: Summary, kind: str, name: str, rid: str, outcome: Outcome, fields: list[str]
) -> None:
    summary.record(f"livekit_{kind}", name, outcome)
    if outcome != "unchanged":
        log.info(
            "event=livekit_sip_%s kind=%s name=%s id=%s fields=%s",
            outcome,
            kind,
            name,
            rid,
            ",".join(fields) or "-",
        )
