"""The OpenAPI document states the input rules the handlers check, and each pattern is
held to its check: every value it matches is accepted, and the values the check refuses
are not matched. So schemathesis (`make schemathesis`, issue #29) finds no request the
schema allows that the API refuses, without running it in `make test`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from sayna_sip.common import deliveries, validate
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hosts import normalize_host
from sayna_sip.common.netpolicy import literal_address
from sayna_sip.ingress import input_patterns as p
from sayna_sip.ingress.access_tokens import parse_ttl
from sayna_sip.ingress.app import create_app


def _when(value: str) -> None:
    assert math.isfinite(deliveries.parse_when(value))


def _cursor(value: str) -> None:
    if value:  # blank is absent
        deliveries.parse_cursor(value)


def _outcome(value: str) -> None:  # the check of GET /sip/deliveries
    assert value.isascii() and value.replace("_", "").isalpha()


def _secret(value: str) -> None:
    assert len(validate.secrets(value, "h")) == 1  # one secret: the API takes no list


def _url(value: str) -> None:
    assert validate.hook_url(value, "h") == value
    assert literal_address(urlsplit(value).hostname or "") is None  # never a blocked address


def _header_name(value: str) -> None:
    validate.headers({value: "v"}, "h")


def _header_value(value: str) -> None:
    validate.headers({"X-Tenant": value}, "h")


def _endpoint_id(value: str) -> None:
    assert validate.endpoint_id(value, "h") != "default"


def _host(value: str) -> None:
    normalize_host(value)


# pattern, its maxLength, the check, values the check refuses
RULES: list[tuple[str, int | None, Callable[[str], Any], list[str]]] = [
    (p.HOST, p.HOST_MAX, _host,
     ["", "a..b", "-a.com", "a-.com", "*.com", "a b", "é.com", "_x.com", "[::1", "1:2"]),
    (p.WHEN, None, _when,
     ["", "1w", "2026-02-30T00:00:00Z", "2026-12-01T10:00:00", "0000-01-01T00:00:00Z",
      "2026-12-01T24:00:00Z", "1e5", "1h later"]),
    (p.TTL, 32, parse_ttl, ["59", "59s", "0m", "31d", "721h", "43201m", "2592001"]),
    (p.CURSOR_OR_BLANK, p.CURSOR_MAX, _cursor, ["0", "00", "²", "-1", " 1", "1a"]),
    (p.OUTCOME, None, _outcome, ["", "_", "matched1", "dé", "a-b"]),
    (p.SECRET, None, _secret,
     ["short", "with a space inside!", "whsec_", "whsec_!!!!", "whsec_" + "A" * 30 + "==",
      "whsec_" + "QUFB" * 22, "é" * 130, "x" * 257]),
    (p.URL, validate.MAX_URL_LEN, _url,
     ["http://a.com", "https://", "https://u:p@a.com", "https://a.com:0", "https://a.com:65536",
      "https://127.0.0.1/", "https://2130706433/", "https://0x7f.1/", "https://a com",
      "https://*.a.com", "https://-a.com", "https://a.com/é", " https://a.com"]),
    (p.SECRET_OR_BLANK, None, lambda v: len(validate.secrets(v, "h")) <= 1, ["short", "a b"]),
    (p.HEADER_NAME, None, _header_name,
     ["", "a b", "Host", "content-type", "Webhook-Id", "X-Sayna-Thing", "TraceParent", "é"]),
    (p.HEADER_VALUE, None, _header_value, ["a\rb", "a\nb", "a\x00"]),
    (p.ENDPOINT_ID, None, _endpoint_id, ["", "default", "A", "a_b", "a" * 33]),
]  # fmt: skip
IDS = ["host", "when", "ttl", "cursor", "outcome", "secret", "url", "secret_or_blank",
       "header_name", "header_value", "endpoint_id"]  # fmt: skip


@pytest.mark.parametrize(("pattern", "most", "check", "refused"), RULES, ids=IDS)
def test_every_value_the_pattern_matches_passes_its_check(
    pattern: str, most: int | None, check: Callable[[str], Any], refused: list[str]
) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(pattern, fullmatch=True))
    def matched(value: str) -> None:
        if most is None or len(value) <= most:
            check(value)  # raises (ConfigError, ValueError, AssertionError) if refused

    matched()


@pytest.mark.parametrize(("pattern", "most", "check", "refused"), RULES, ids=IDS)
def test_what_the_check_refuses_the_pattern_does_not_match(
    pattern: str, most: int | None, check: Callable[[str], Any], refused: list[str]
) -> None:
    for value in refused:
        with pytest.raises((ConfigError, ValueError, AssertionError)):
            check(value)
        assert not re.fullmatch(pattern, value), value


def _host_params(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        param["schema"]
        for item in doc["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
        for param in op.get("parameters", [])
        if param["in"] == "path" and param["name"] == "host"
    ]


def test_the_served_schema_states_the_rules() -> None:
    with TestClient(create_app(ServerConfig.from_env({}))) as client:  # what clients read
        answer = client.get("/schema/openapi.json")
    assert answer.status_code == 200
    hosts = _host_params(answer.json())
    assert len(hosts) >= 20 and all(h["pattern"] == p.HOST for h in hosts)


def test_the_schema_states_each_rule_where_it_applies() -> None:
    config = ServerConfig.from_env(
        {"SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "127.0.0.1",
         "SIP_MAX_ENDPOINTS": "4"}
    )  # fmt: skip
    doc = create_app(config).openapi_schema.to_schema()
    schemas = doc["components"]["schemas"]
    for closed in ("HooksUpsert", "HostsDelete", "HookEntry", "EndpointEntry", "RedriveIn",
                   "ReplayIn", "ResendIn", "RotateIn", "AccessTokenIn"):  # fmt: skip
        assert schemas[closed]["additionalProperties"] is False, closed
    assert schemas["HookStats"].get("additionalProperties") is not False  # answers stay open
    entry = schemas["HookEntry"]["properties"]
    assert entry["url"]["pattern"] == p.URL and entry["secret"]["pattern"] == p.SECRET_OR_BLANK
    assert entry["endpoints"]["maxItems"] == 3  # SIP_MAX_ENDPOINTS=4, `default` aside
    assert schemas["HooksUpsert"]["properties"]["hooks"]["uniqueItems"] is True
    assert schemas["HostsDelete"]["properties"]["hosts"]["items"]["pattern"] == p.HOST
    assert [a["required"] for a in schemas["RedriveIn"]["anyOf"]] == [
        ["host"],
        ["since"],
        ["event_ids"],
    ]
    assert "pattern" not in schemas["HookOut"]["properties"]["url"]  # a static hook's URL
    stats = doc["paths"]["/sip/hooks/{host}/stats"]["get"]["parameters"]
    assert next(x for x in stats if x["name"] == "window")["schema"]["enum"] == ["1h", "24h", "7d"]
    one = doc["paths"]["/sip/hooks/{host}/endpoints/{id}"]
    ids = [x["schema"] for x in one["delete"]["parameters"] if x["name"] == "id"]
    assert ids == [{"type": "string", "not": {"const": "default"}, "description": ANY}]
    patch = one["patch"]["requestBody"]
    body = patch["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False and "id" not in body["properties"]
