"""ServerConfig: sources, precedence and every validation rule with its message."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from sayna_sip.common import hook_secrets
from sayna_sip.common.config import DEFAULT_RETRY_SCHEDULE, ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import Hook

SECRET = "0123456789abcdef"  # 16 characters: the minimum


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sayna.yaml"
    path.write_text(text)
    return path


def test_nothing_set_means_sip_disabled_and_defaults() -> None:
    config = ServerConfig.from_env({})
    assert config.sip is None
    assert (config.host, config.port) == ("0.0.0.0", 3001)
    assert config.auth.required is False
    assert config.max_body_bytes == 1024 * 1024


def test_empty_environment_values_count_as_unset() -> None:
    assert ServerConfig.from_env({"SIP_ROOM_PREFIX": "", "SIP_HOOKS_JSON": "  "}).sip is None


# The spec's reference configurations load as written.
SINGLE_CARRIER = """
sip:
  room_prefix: "sip-"
  allowed_addresses:
    - "203.0.113.0/24"
  hooks:
    - host: "sip-provider.example.com"
      url: "https://backend.myapp.com/sip/events"
"""
MULTIPLE_CARRIERS = """
sip:
  room_prefix: "sip-"
  allowed_addresses:
    - "203.0.113.0/24"
    - "198.51.100.0/24"
  hooks:
    - host: "provider-a.example.com"
      url: "https://backend.myapp.com/sip/provider-a"
    - host: "provider-b.example.com"
      url: "https://backend.myapp.com/sip/provider-b"
"""
LOCAL_TESTING = """
sip:
  room_prefix: "test-sip-"
  allowed_addresses:
    - "127.0.0.1"
    - "192.168.1.0/24"
  hooks:
    - host: "localhost"
      url: "https://localhost:8443/webhooks"
"""


@pytest.mark.parametrize(
    ("text", "prefix", "addresses", "hosts"),
    [
        (SINGLE_CARRIER, "sip-", ("203.0.113.0/24",), ["sip-provider.example.com"]),
        (
            MULTIPLE_CARRIERS,
            "sip-",
            ("203.0.113.0/24", "198.51.100.0/24"),
            ["provider-a.example.com", "provider-b.example.com"],
        ),
        (LOCAL_TESTING, "test-sip-", ("127.0.0.1", "192.168.1.0/24"), ["localhost"]),
    ],
    ids=["single-carrier", "multiple-carriers", "local-testing"],
)
def test_reference_configurations_load(
    tmp_path: Path, text: str, prefix: str, addresses: tuple[str, ...], hosts: list[str]
) -> None:
    sip = ServerConfig.from_file(write(tmp_path, text), env={}).sip
    assert sip is not None
    assert sip.room_prefix == prefix
    assert sip.allowed_addresses == addresses
    assert [h.host for h in sip.hooks] == hosts
    assert sip.retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert sip.max_participants == 3


def test_spec_environment_example() -> None:
    sip = ServerConfig.from_env(
        {
            "SIP_ROOM_PREFIX": "sip-",
            "SIP_ALLOWED_ADDRESSES": "192.168.1.0/24, 10.0.0.1,,",
            "SIP_HOOKS_JSON": '[{"host":"Example.COM","url":"https://webhook.example.com/events"}]',
        }
    ).sip
    assert sip is not None
    assert sip.allowed_addresses == ("192.168.1.0/24", "10.0.0.1")
    assert sip.hooks[0].host == "example.com"
    assert sip.hooks[0].url == "https://webhook.example.com/events"


def test_environment_overrides_yaml_and_lists_replace_whole(tmp_path: Path) -> None:
    path = write(tmp_path, MULTIPLE_CARRIERS)
    env = {
        "SIP_ROOM_PREFIX": "call_",
        "SIP_ALLOWED_ADDRESSES": "10.1.1.1",
        "SIP_HOOKS_JSON": '[{"host":"only.example.com","url":"https://only.example.com/h"}]',
        "PORT": "8080",
    }
    config = ServerConfig.from_file(path, env=env)
    assert config.sip is not None
    assert config.sip.room_prefix == "call_"
    assert config.sip.allowed_addresses == ("10.1.1.1",)
    assert [h.host for h in config.sip.hooks] == ["only.example.com"]
    assert config.port == 8080


def test_yaml_values_kept_where_environment_is_silent(tmp_path: Path) -> None:
    config = ServerConfig.from_file(
        write(tmp_path, SINGLE_CARRIER), env={"SIP_HOOK_SECRET": SECRET}
    )
    assert config.sip is not None
    assert config.sip.allowed_addresses == ("203.0.113.0/24",)
    assert config.sip.hook_secret == SECRET


def test_any_sip_variable_enables_sip_and_then_requires_a_prefix() -> None:
    with pytest.raises(
        ConfigError, match="SIP room_prefix is required when SIP configuration is present"
    ):
        ServerConfig.from_env({"SIP_ALLOWED_ADDRESSES": "10.0.0.1"})


def test_ipv6_addresses_and_cidrs_accepted() -> None:
    sip = ServerConfig.from_env(
        {"SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "2001:db8::1,2001:db8::/32,::1"}
    ).sip
    assert sip is not None and sip.allowed_addresses == ("2001:db8::1", "2001:db8::/32", "::1")


def base(**extra: str) -> dict[str, str]:
    return {"SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "10.0.0.1", **extra}


def hooks(json_text: str) -> dict[str, str]:
    return base(SIP_HOOKS_JSON=json_text)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            base(SIP_ROOM_PREFIX="sip room"),
            "SIP room_prefix must contain only alphanumeric characters, '-', or '_'",
        ),
        (base(SIP_ROOM_PREFIX="sip.x"), "must contain only alphanumeric"),
        (base(SIP_ALLOWED_ADDRESSES=" , "), "SIP allowed_addresses cannot be empty"),
        (
            base(SIP_ALLOWED_ADDRESSES="999.1.1.1"),
            "SIP allowed_address '999.1.1.1' does not look valid",
        ),
        (
            base(SIP_ALLOWED_ADDRESSES="10.0.0.0/33"),
            "SIP allowed_address '10.0.0.0/33' does not look valid",
        ),
        (base(SIP_ALLOWED_ADDRESSES="10.0.0"), "SIP allowed_address '10.0.0' does not look valid"),
        (
            base(SIP_ALLOWED_ADDRESSES="2001:db8::/129"),
            "SIP allowed_address '2001:db8::/129' does not look valid",
        ),
        (base(SIP_ALLOWED_ADDRESSES="carrier.example.com"), "does not look valid"),
        (hooks('[{"host":"a.com","url":"http://a.com/h"}]'), "SIP hook URL must be HTTPS"),
        (hooks('[{"host":"a.com","url":"ftp://a.com/h"}]'), "SIP hook URL must be HTTPS"),
        (hooks('[{"host":"a.com","url":"https:///nohost"}]'), "SIP hook URL has no host"),
        (hooks('[{"host":"a.com","url":"https://"}]'), "SIP hook URL has no host"),
        (
            hooks('[{"host":"a.com","url":"https://a.com:99999/h"}]'),
            "is invalid (Port out of range",
        ),
        (hooks('[{"host":"a.com","url":"https://[::1/h"}]'), "is invalid (Invalid IPv6 URL)"),
        (hooks('[{"host":"a.com","url":"https://a.com/\\u007f"}]'), "characters a URL cannot hold"),
        (hooks('[{"host":"a.com","url":"https://a.com/a b"}]'), "characters a URL cannot hold"),
        (
            hooks(
                '[{"host":"A.com","url":"https://a.com/1"},{"host":"a.COM","url":"https://a.com/2"}]'
            ),
            "Duplicate SIP hook host: a.com",
        ),
        (
            hooks('[{"host":"bad host","url":"https://a.com/h"}]'),
            "'bad host' is not a valid host name",
        ),
        (hooks('[{"host":"a.*.com","url":"https://a.com/h"}]'), "is not a valid host name"),
        (hooks('[{"host":"*.com.","url":"https://a.com/h"}]'), "wildcard must cover a domain"),
        (hooks('{"host":"a.com"}'), "Invalid SIP_HOOKS_JSON format: SIP_HOOKS_JSON must be a list"),
        (hooks("[{not json"), "Invalid SIP_HOOKS_JSON format: Expecting property name"),
        (
            hooks('[{"host":"a.com"}]'),
            "Invalid SIP_HOOKS_JSON format: SIP_HOOKS_JSON[0] is missing 'url'",
        ),
        (hooks('["a.com"]'), "SIP_HOOKS_JSON[0] must be an object"),
        (hooks('[{"host":"a.com","url":"https://a.com","x":1}]'), "unknown keys: x"),
        (
            hooks('[{"host":"a.com","url":"https://a.com/h","secret":"short"}]'),
            "SIP hook secret for 'a.com' must be at least 16 characters long (got 5)",
        ),
        (base(SIP_HOOK_SECRET="tooshort"), "SIP hook secret for 'global' must be at least 16"),
        (base(SIP_HOOK_SECRET="whsec_!!!notbase64"), "starts with whsec_ but is not base64"),
        (
            base(SIP_RETRY_SCHEDULE="1s,soon"),
            "SIP_RETRY_SCHEDULE is invalid: 'soon' is not a duration",
        ),
        (
            base(SIP_RETRY_SCHEDULE=","),
            "SIP_RETRY_SCHEDULE is invalid: schedule needs at least one delay",
        ),
        (
            base(SIP_HOOK_ALLOW_NETWORKS="10.0.0.0/99"),
            "SIP_HOOK_ALLOW_NETWORKS entry '10.0.0.0/99'",
        ),
        (
            base(SIP_HOOK_CA_BUNDLE="/nonexistent/ca.pem"),
            "SIP_HOOK_CA_BUNDLE '/nonexistent/ca.pem'",
        ),
        (base(SIP_MAX_PARTICIPANTS="0"), "SIP_MAX_PARTICIPANTS must be between 1 and 1000"),
        ({"AUTH_REQUIRED": "maybe"}, "AUTH_REQUIRED must be true or false"),
        ({"AUTH_REQUIRED": "true"}, "AUTH_REQUIRED=true but no API token is configured"),
        (
            {"AUTH_REQUIRED": "yes", "AUTH_API_SECRETS_JSON": "{}"},
            "Invalid AUTH_API_SECRETS_JSON format",
        ),
        ({"AUTH_API_SECRETS_JSON": '[{"id":"a"}]'}, "item 0 needs a non-empty 'secret'"),
        ({"PORT": "http"}, "PORT must be an integer, got 'http'"),
        ({"PORT": "70000"}, "PORT must be between 0 and 65535"),
        ({"NATS_REPLICAS": "7"}, "NATS_REPLICAS must be between 1 and 5"),
        ({"NATS_URL": "nats://a:4222,http://b:80"}, "NATS_URL entry 'http://b:80' must look"),
        ({"NATS_URL": "nats://u:pw@a:99999"}, "NATS_URL entry 'nats://a:99999' is not a valid"),
        ({"NATS_URL": " , "}, "NATS_URL cannot be empty"),
        ({"NATS_START_TIMEOUT": "0"}, "NATS_START_TIMEOUT must be at least 0.5"),
        ({"FORWARDER_TIMEOUT": "fast"}, "FORWARDER_TIMEOUT must be a number"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be 'text' or 'json'"),
    ],
)
def test_validation_fails_fast_naming_the_field(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        ServerConfig.from_env(env)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("sip:\n  allowed_addresses: ['10.0.0.1']\n", "SIP room_prefix is required"),
        (
            "sip:\n  room_prefix: ''\n  allowed_addresses: ['10.0.0.1']\n",
            "SIP room_prefix cannot be empty",
        ),
        ("sip:\n  room_prefix: 'sip-'\n", "SIP allowed_addresses cannot be empty"),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['256.0.0.1']\n",
            "'256.0.0.1' does not look valid",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
            "  hooks:\n    - host: a.com\n      url: http://a.com/\n",
            "SIP hook URL must be HTTPS",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
            "  retry:\n    schedule: [1s, never]\n",
            "sip.retry.schedule is invalid",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
            "  retry:\n    schedule: [1, -5, .nan]\n",
            "sip.retry.schedule is invalid: '-5' is not a finite, non-negative delay",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
            "  retry:\n    schedule: [yes]\n",
            "sip.retry.schedule is invalid: 'True' is not a duration",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
            "  hooks:\n    - host: a.com\n      url: https://a.com/\n      rate_limit: 0\n",
            "SIP hook rate_limit for 'a.com' must be a number of deliveries per second",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
            "  hooks:\n    - host: a.com\n      url: https://a.com/\n      rate_limit: fast\n",
            "SIP hook rate_limit for 'a.com' must be a number",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
            "  hooks:\n    - host: a.com\n      url: https://a.com/\n      ordering: room\n",
            "SIP hook ordering for 'a.com' must be one of: call, none",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n  ordering: fifo\n",
            "SIP_ORDERING must be one of: call, none",
        ),
        (
            "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
            "  order:\n    hold_max: 0s\n",
            "SIP_ORDER_HOLD_MAX must be longer than 0s",
        ),
        ("sip:\n  room_prefx: 'sip-'\n", "Unknown key(s) in 'sip': room_prefx"),
        ("sipp:\n  room_prefix: 'sip-'\n", "Unknown config section 'sipp'"),
        ("- a\n- b\n", "must hold a mapping at the top level"),
        ("sip: [unclosed\n", "is not valid YAML"),
    ],
)
def test_yaml_validation(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        ServerConfig.from_file(write(tmp_path, yaml_text), env={})
    assert message in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read config file"):
        ServerConfig.from_file(tmp_path / "nope.yaml", env={})


def test_secrets_rotation_per_hook_and_global() -> None:
    sip = ServerConfig.from_env(
        hooks(
            '[{"host":"a.com","url":"https://a.com/h","secret":"whsec_c2VjcmV0a2V5MTIzNDU2Nzg5MDEyMzQ1Njc4"}]'
        )
        | {"SIP_HOOK_SECRET": f"{SECRET}new {SECRET}old"}
    ).sip
    assert sip is not None
    assert sip.hook_secrets == (f"{SECRET}new", f"{SECRET}old")
    assert sip.static_hooks["a.com"].secrets == ("whsec_c2VjcmV0a2V5MTIzNDU2Nzg5MDEyMzQ1Njc4",)
    static = Hook.new("a.com", "https://a.com/h", "config")
    runtime = Hook.new("runtime.example.com", "https://r.example.com/h", "runtime")
    for hook, expected in (
        (static, ("whsec_c2VjcmV0a2V5MTIzNDU2Nzg5MDEyMzQ1Njc4",)),
        (runtime, sip.hook_secrets),
    ):
        (endpoint,) = hook.endpoint_list()
        assert hook_secrets.signing_secrets(hook, endpoint, sip, 0) == expected


def test_retry_schedule_and_allow_networks_and_wildcards_parse() -> None:
    sip = ServerConfig.from_env(
        hooks(
            '[{"host":"*.Tenant.example.com","url":"https://t.example.com/h"},{"host":"[2001:DB8::10]","url":"https://x.example.com/"}]'
        )
        | {"SIP_RETRY_SCHEDULE": "0s, 500ms, 1m, 2h", "SIP_HOOK_ALLOW_NETWORKS": "127.0.0.0/8, ::1"}
    ).sip
    assert sip is not None
    assert sip.retry_schedule == (0.0, 0.5, 60.0, 7200.0)
    assert sip.hook_allow_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert [h.host for h in sip.hooks] == ["*.tenant.example.com", "2001:db8::10"]


def test_yaml_retry_schedule_and_participants(tmp_path: Path) -> None:
    text = SINGLE_CARRIER + "  retry:\n    schedule: [1s, 5s, 1m]\n  max_participants: 5\n"
    sip = ServerConfig.from_file(write(tmp_path, text), env={}).sip
    assert sip is not None
    assert sip.retry_schedule == (1.0, 5.0, 60.0)
    assert sip.max_participants == 5


def test_auth_tokens_from_both_variables() -> None:
    auth = ServerConfig.from_env(
        {
            "AUTH_REQUIRED": "1",
            "AUTH_API_SECRET": "one",
            "AUTH_API_SECRETS_JSON": '[{"id":"ci","secret":"two"}]',
        }
    ).auth
    assert auth.required is True
    assert auth.tokens == (("default", "one"), ("ci", "two"))


def test_livekit_ws_url_maps_to_http() -> None:
    lk = ServerConfig.from_env(
        {"LIVEKIT_URL": "wss://lk.example.com", "LIVEKIT_API_KEY": "k"}
    ).livekit
    assert lk.http_url == "https://lk.example.com"
    assert lk.has_credentials is False


@pytest.mark.parametrize(
    "value",
    [
        "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222",
        "nats://nats-1:4222, nats://nats-2:4222 ,nats://nats-3:4222",
        " nats://nats-1:4222\tnats://nats-2:4222\n nats://nats-3:4222 ",
    ],
)
def test_nats_url_takes_a_cluster_list(value: str) -> None:
    nats = ServerConfig.from_env({"NATS_URL": value}).nats
    assert nats.servers == ["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"]
    assert nats.url == "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"


def test_nats_url_list_from_yaml_and_credentials_never_displayed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("nats:\n  url: [nats://u:pw@a:4222, tls://b:4222]\n  start_timeout: 5\n")
    nats = ServerConfig.from_file(path, {}).nats
    assert nats.servers == ["nats://u:pw@a:4222", "tls://b:4222"]
    assert nats.display == "nats://a:4222,tls://b:4222"
    assert nats.start_timeout == 5.0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://admin:S3cretPW@x.example.com/a", "must not hold credentials"),
        ("https://admin@x.example.com/a", "must not hold credentials"),
        ("https://x.example.com:0/a", "has port 0"),
        ("https://*.example.com/a", "no valid host name"),
        ("https://" + "a" * 300 + ".com/a", "no valid host name"),
        ("https://x.example.com/" + "p" * 2048, "longer than 2048 characters"),
        ("https://1.2.3.999/a", "is not a valid IPv4 address"),
    ],
)
def test_static_hook_urls_obey_the_apis_rules(url: str, message: str) -> None:
    hooks = json.dumps([{"host": "a.example.com", "url": url}])
    with pytest.raises(ConfigError) as err:
        env = {"SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "10.0.0.1"}
        ServerConfig.from_env({**env, "SIP_HOOKS_JSON": hooks})
    assert message in str(err.value)
    assert "S3cretPW" not in str(err.value)


YAML_ENDPOINTS = """
sip:
  room_prefix: sip-
  allowed_addresses: ['10.0.0.1']
  hooks:
    - host: a.example.com
      url: https://a.example.com/h
      endpoints:
        - id: crm
          url: https://crm.example.com/in
          events: [participant_joined]
          headers: {X-Api-Key: k-0123}
"""


def test_a_yaml_hook_lists_its_endpoints_by_id(tmp_path: Path) -> None:
    sip = ServerConfig.from_file(write(tmp_path, YAML_ENDPOINTS), env={}).sip
    assert sip is not None
    (crm,) = sip.hooks[0].endpoints or ()
    assert (crm.id, crm.url, crm.events, crm.headers) == (
        "crm", "https://crm.example.com/in", ("participant_joined",), {"X-Api-Key": "k-0123"},
    )  # fmt: skip
    for wrong, message in (
        ("        - url:", "needs its id"),  # a generated id would change every run
        ("        - id: default\n          url:", "twice"),
        ("        - id: Bad_Id\n          url:", "must be 1-32"),
    ):
        text = YAML_ENDPOINTS.replace("        - id: crm\n          url:", wrong)
        with pytest.raises(ConfigError, match=message):
            ServerConfig.from_file(write(tmp_path, text), env={})
    with pytest.raises(ConfigError, match="SIP_MAX_ENDPOINTS"):
        ServerConfig.from_file(write(tmp_path, YAML_ENDPOINTS), env={"SIP_MAX_ENDPOINTS": "1"})


def test_a_sip_variable_alone_names_what_switched_sip_on_and_how_to_finish() -> None:
    # The quick start exports SIP_HOOK_SECRET; `up` without --config then said only
    # "room_prefix is required", not why SIP was on nor what to do.
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_env({"SIP_HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    message = str(caught.value)
    assert "SIP is on because of SIP_HOOK_SECRET in the environment" in message
    assert "pass --config local.yaml" in message and "set SIP_ROOM_PREFIX" in message


def test_ordering_defaults_to_call_and_the_hold_to_5m(tmp_path: Path) -> None:
    base = "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n"
    sip = ServerConfig.from_file(write(tmp_path, base), env={}).sip
    assert sip is not None and (sip.ordering, sip.order_hold_max) == ("call", 300.0)
    text = (
        base
        + "  ordering: none\n  order:\n    hold_max: 90s\n  hooks:\n"
        + (
            "    - {host: a.com, url: 'https://a.com/', ordering: call}\n"
            "    - {host: b.com, url: 'https://b.com/'}\n"
        )
    )
    sip = ServerConfig.from_file(write(tmp_path, text), env={}).sip
    assert sip is not None and (sip.ordering, sip.order_hold_max) == ("none", 90.0)
    assert [h.ordering for h in sip.hooks] == ["call", None]  # None: the default above
    assert [h.orders_by_call(sip.ordering) for h in sip.hooks] == [True, False]
    env = {"SIP_ORDERING": "call", "SIP_ORDER_HOLD_MAX": "2s"}  # the environment wins
    sip = ServerConfig.from_file(write(tmp_path, text), env=env).sip
    assert sip is not None and (sip.ordering, sip.order_hold_max) == ("call", 2.0)
    # Each endpoint has its own.
    text = YAML_ENDPOINTS.replace("events: [participant_joined]", "ordering: none")
    sip = ServerConfig.from_file(write(tmp_path, text), env={}).sip
    assert sip is not None
    assert [e.ordering for e in sip.hooks[0].endpoints or ()] == ["none"]


def test_a_yaml_hook_takes_a_rate_limit(tmp_path: Path) -> None:
    text = (
        "sip:\n  room_prefix: 'sip-'\n  allowed_addresses: ['10.0.0.1']\n  hooks:\n"
        "    - {host: a.com, url: 'https://a.com/', rate_limit: 2.5}\n"
        "    - {host: b.com, url: 'https://b.com/'}\n"
    )
    sip = ServerConfig.from_file(write(tmp_path, text), env={}).sip
    assert sip is not None
    assert [(h.host, h.rate_limit) for h in sip.hooks] == [("a.com", 2.5), ("b.com", None)]
    # Each endpoint has its own.
    text = YAML_ENDPOINTS.replace("events: [participant_joined]", "rate_limit: 7")
    sip = ServerConfig.from_file(write(tmp_path, text), env={}).sip
    assert sip is not None
    assert [e.rate_limit for e in sip.hooks[0].endpoints or ()] == [7.0]
