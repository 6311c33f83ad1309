"""The OpenAPI schema's `oneOf`s can hold: a value valid under two alternatives breaks
every client that validates answers (schemathesis did, on the audit's `values`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sayna_sip.common.config import ServerConfig
from sayna_sip.ingress.app import create_app


def _one_ofs(node: Any, where: str = "") -> Iterator[tuple[str, list[Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("oneOf"), list):
            yield where, node["oneOf"]
        for key, value in node.items():
            yield from _one_ofs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _one_ofs(value, f"{where}/{i}")


def test_no_one_of_offers_an_integer_beside_a_number() -> None:
    schema = create_app(ServerConfig.from_env({})).openapi_schema.to_schema()
    both = [
        where
        for where, alts in _one_ofs(schema)
        if {"integer", "number"} <= {a.get("type") for a in alts if isinstance(a, dict)}
    ]
    assert both == []
