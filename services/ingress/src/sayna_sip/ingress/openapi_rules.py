"""The input rules the handlers check, stated in the OpenAPI document.

Litestar documents types, not the checks made after decoding (hosts, URLs, secrets,
durations, cursors…), nor that a struct with `forbid_unknown_fields` refuses other
keys; schemathesis found 25 places where the schema allowed what the API refused. The
rules are added to the generated document here, in one place, as the patterns of
`input_patterns` (each held to its check by tests/ingress/test_schema_rules.py).
Answers are left alone: `HookOut` shares `HookSettings` with the bodies written, and a
static hook's stored URL may be one an API write refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin  # its one instance builds /schema
from litestar.openapi.spec import OpenAPI, Operation, Parameter, Reference, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from sayna_sip.common import hook, validate
from sayna_sip.common.contracts import LIVEKIT_EVENTS
from sayna_sip.common.deliveries import STATS_WINDOWS
from sayna_sip.common.hook import DEFAULT_ENDPOINT, MAX_RATE_LIMIT, ORDERINGS
from sayna_sip.ingress import access_answers, schemas, schemas_records
from sayna_sip.ingress import input_patterns as p
from sayna_sip.ingress.schemas import TTL_MAX_CHARS

_STRING = OpenAPIType.STRING


def _text(pattern: str, description: str | None = None, **more: Any) -> Schema:
    return Schema(type=_STRING, pattern=pattern, description=description, **more)


def _host() -> Schema:
    return _text(
        p.HOST, "a DNS name, *.wildcard or IP literal", min_length=1, max_length=p.HOST_MAX
    )


_WHEN = "RFC 3339 time or a duration back (1h); blank is absent"
# Query parameters by name, the same rule on every route that takes one.
_QUERY: dict[str, Callable[[], Schema]] = {
    "host": lambda: _text(p.HOST_OR_BLANK, "a hook host; blank is absent", max_length=p.HOST_MAX),
    "since": lambda: _text(p.WHEN_OR_BLANK, _WHEN),
    "until": lambda: _text(p.WHEN_OR_BLANK, _WHEN),
    "cursor": lambda: _text(p.CURSOR_OR_BLANK, "a next_cursor of this API",
                            max_length=p.CURSOR_MAX),
    "outcome": lambda: _text(p.OUTCOME, "a record outcome (matched, delivered, failed, …)"),
    "window": lambda: Schema(type=_STRING, enum=list(STATS_WINDOWS), default="24h"),
}  # fmt: skip


def _settings(max_endpoints: int | None) -> dict[str, Schema]:
    """The rules of `validate.endpoint_entry`, for each field an endpoint is written with."""
    return {
        "url": _text(p.URL, f"https://, at most {validate.MAX_URL_LEN} characters; a numeric "
                     "host is refused when it is a blocked address (SIP_HOOK_ALLOW_NETWORKS)",
                     max_length=validate.MAX_URL_LEN),
        "events": Schema(
            type=[OpenAPIType.ARRAY, OpenAPIType.NULL], min_items=1,
            items=Schema(type=_STRING, enum=list(LIVEKIT_EVENTS)),
            description="LiveKit event names; absent or null: every event",
        ),
        "headers": Schema(
            type=[OpenAPIType.OBJECT, OpenAPIType.NULL], max_properties=validate.MAX_HEADERS,
            property_names=Schema(type=_STRING, pattern=p.HEADER_NAME),
            additional_properties=Schema(type=_STRING, pattern=p.HEADER_VALUE),
            description=f"custom request headers, {validate.MAX_HEADER_BYTES} bytes in all; "
            "each name once, whatever its case",
        ),
        "rate_limit": Schema(
            type=[OpenAPIType.NUMBER, OpenAPIType.NULL], exclusive_minimum=0,
            maximum=MAX_RATE_LIMIT, description="deliveries per second, all forwarders together",
        ),
        "ordering": Schema(type=[_STRING, OpenAPIType.NULL], enum=[*ORDERINGS, None]),
        "secret": Schema(type=[_STRING, OpenAPIType.NULL], pattern=p.SECRET_OR_BLANK,
                         description="a whsec_ key of 24-64 bytes, or 16-256 characters "
                         "without spaces"),
    }  # fmt: skip


def _redrive_any_of() -> list[Schema | Reference]:
    """At least one filter that is not blank (the handler's 'give host, since or event_ids')."""
    return [
        Schema(required=["host"], properties={"host": _text(p.HOST, max_length=p.HOST_MAX)}),
        Schema(required=["since"], properties={"since": _text(p.WHEN)}),
        Schema(
            required=["event_ids"],
            properties={"event_ids": Schema(type=OpenAPIType.ARRAY, contains=_text(r"\S"))},
        ),
    ]


def _closed_structs(*modules: ModuleType) -> set[str]:
    """The names of the structs that refuse unknown fields (their component names)."""
    return {
        name
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__struct_config__.forbid_unknown_fields
    }


def _merge(schema: Schema | Reference | None, rule: Schema) -> Schema:
    """`rule` over what Litestar generated: its description kept when the rule has none."""
    if isinstance(schema, Schema) and schema.description and not rule.description:
        rule.description = schema.description
    return rule


def apply(openapi: OpenAPI, max_endpoints: int | None) -> None:
    components = (openapi.components.schemas or {}) if openapi.components else {}
    for name in _closed_structs(schemas, schemas_records, hook) & set(components):
        components[name].additional_properties = False
    settings = _settings(max_endpoints)
    for name in ("HookEntry", "EndpointEntry"):
        props = components[name].properties or {}
        for field, rule in settings.items():
            props[field] = _merge(props.get(field), rule)
    entry = components["HookEntry"].properties or {}
    entry["host"] = _host()
    endpoints = entry.get("endpoints")
    if isinstance(endpoints, Schema) and max_endpoints is not None:
        endpoints.max_items = max_endpoints - 1  # beside `default`
    ids = components["EndpointEntry"].properties or {}
    ids["id"] = _merge(ids.get("id"), Schema(
        pattern=p.ENDPOINT_ID, type=[_STRING, OpenAPIType.NULL],
        description="1-32 of a-z, 0-9 and '-', not `default`; absent: generated"))  # fmt: skip
    hooks = (components["HooksUpsert"].properties or {})["hooks"]
    if isinstance(hooks, Schema):  # a host twice is refused (its spellings aside: described)
        hooks.unique_items = True
        hooks.description = "each host once (compared lowercase, brackets of IPv6 aside)"
    hosts = (components["HostsDelete"].properties or {})["hosts"]
    if isinstance(hosts, Schema):
        hosts.items = _host()
    (components["RotateIn"].properties or {})["secret"] = Schema(
        type=[_STRING, OpenAPIType.NULL], pattern=p.SECRET, description="absent: one is generated"
    )
    nullable = [_STRING, OpenAPIType.NULL]
    replay = components["ReplayIn"].properties or {}
    replay["since"] = _text(p.WHEN, "RFC 3339 time or a duration back (1h)")
    replay["until"] = Schema(type=nullable, pattern=p.WHEN_OR_BLANK, description=_WHEN)
    redrive = components["RedriveIn"]
    props = redrive.properties or {}
    props["host"] = Schema(type=nullable, pattern=p.HOST_OR_BLANK, max_length=p.HOST_MAX)
    props["since"] = Schema(type=nullable, pattern=p.WHEN_OR_BLANK)
    props["until"] = Schema(type=nullable, pattern=p.WHEN_OR_BLANK)
    redrive.any_of = _redrive_any_of()
    (components["AccessTokenIn"].properties or {})["ttl"] = Schema(
        type=[_STRING, OpenAPIType.NULL], pattern=p.TTL, max_length=TTL_MAX_CHARS,
        description="1m to 30d; absent: 1h")  # fmt: skip
    for item in (openapi.paths or {}).values():
        for operation in (item.get, item.post, item.put, item.patch, item.delete):
            if operation is not None:
                _parameters(operation)
        if item.delete is not None:  # DELETE of an endpoint: `default` goes with its host
            for param in item.delete.parameters or ():
                if isinstance(param, Parameter) and param.name == "id":
                    param.schema = Schema(
                        type=_STRING,
                        schema_not=Schema(const=DEFAULT_ENDPOINT),
                        description="not `default`: DELETE /sip/hooks removes it with its host",
                    )
        body = item.patch.request_body if item.patch is not None else None
        if isinstance(body, RequestBody) and "application/json" in body.content:
            # PATCH of an endpoint (the only PATCH): any of its settings, nothing else.
            body.content["application/json"].schema = Schema(
                type=OpenAPIType.OBJECT,
                properties=dict(settings),
                additional_properties=False,
                description="the fields to change",
            )


def _parameters(operation: Operation) -> None:
    for param in operation.parameters or ():
        if not isinstance(param, Parameter):
            continue
        if param.param_in == "path" and param.name == "host":
            param.schema = _merge(param.schema, _host())
        elif param.param_in == "query" and param.name in _QUERY:
            param.schema = _merge(param.schema, _QUERY[param.name]())


class _RuledOpenAPIPlugin(OpenAPIPlugin):
    """Litestar's OpenAPI plugin, the rules applied to each document it builds (it builds
    one again when routes change). No slots of its own, so the app's instance can take it
    as its class: Litestar creates that instance itself."""

    __slots__ = ()

    def provide_openapi(self) -> OpenAPI:
        built = self._openapi is not None
        openapi = super().provide_openapi()
        if not built:
            sip = self.app.state["ingress"].config.sip
            apply(openapi, sip.max_endpoints if sip is not None else None)
            access_answers.apply(openapi, self.app)
        return openapi


def install(app: Litestar) -> None:
    app.plugins.get(OpenAPIPlugin).__class__ = _RuledOpenAPIPlugin
