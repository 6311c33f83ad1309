"""docs/api-answers.md from the ingress's OpenAPI schema: per API route its summary, the
token it needs, its group (OpenAPI tag), its query parameters and every answer it
documents (status, body, meaning).

`python -m tests.docs.api_answers` rewrites the file (`make api-answers`);
`tests/docs/test_api_answers.py` fails while the file and the schema differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.docs import sources

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-answers.md"
METHODS = ("get", "post", "put", "patch", "delete")
HEAD = """# API answers

Every route of the ingress's HTTP API as its OpenAPI schema (`/schema/openapi.json`)
states it: what it does, the token it needs, its query parameters and each answer it
can give. Every error body is `{"error": "<code>", "message": "<text>"}`; the codes are
in docs/ingress.md and docs/operations.md.

Generated from the schema by `make api-answers`; `tests/docs/test_api_answers.py` fails
while this file and the schema the ingress serves differ.
"""


def schema() -> dict[str, Any]:
    return sources.ingress_app().openapi_schema.to_schema()


def _ref(response: dict[str, Any]) -> str:
    content = response.get("content") or {}
    for media, body in content.items():
        ref = str((body.get("schema") or {}).get("$ref", ""))
        name = ref.rsplit("/", 1)[-1] or media
        return f"`{name}`"
    return "-"


def _query(op: dict[str, Any]) -> str:
    out = []
    for p in op.get("parameters", []):
        if p["in"] != "query":
            continue
        s = p.get("schema") or {}
        bounds = [f"{k} {s[k]:g}" for k in ("minimum", "maximum") if k in s]
        if "default" in s:
            bounds.append(f"default {s['default']}")
        if p.get("description"):
            bounds.insert(0, p["description"])
        note = f" ({', '.join(bounds)})" if bounds else ""
        out.append(f"`{p['name']}`{note}")
    return ", ".join(out)


def _security(op: dict[str, Any], schemes: dict[str, Any]) -> str:
    names = [name for req in op.get("security") or () for name in req]
    for name in names:
        assert name in schemes, f"security scheme {name!r} is not in components"
    kinds = [f"`{n}` ({schemes[n].get('scheme', schemes[n]['type'])})" for n in names]
    return "token " + ", ".join(kinds) if kinds else "no API token"


def render(spec: dict[str, Any]) -> str:
    schemes = (spec.get("components") or {}).get("securitySchemes") or {}
    parts = [HEAD]
    for path in sorted(p for p in spec["paths"] if p.startswith("/sip/")):
        for method in METHODS:
            op = spec["paths"][path].get(method)
            if op is None:
                continue
            lines = [f"## `{method.upper()} {path}`", ""]
            tags = ", ".join(f"`{t}`" for t in op.get("tags") or ()) or "none"
            about = f"{op.get('summary', '')}. Needs {_security(op, schemes)}. Group: {tags}."
            if query := _query(op):
                about += f" Query: {query}."
            lines += [about, "", "| status | body | meaning |", "|---|---|---|"]
            for status, response in sorted(op["responses"].items()):
                lines.append(f"| {status} | {_ref(response)} | {response['description']} |")
            parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def main() -> None:
    DOC.write_text(render(schema()), encoding="utf-8")


if __name__ == "__main__":
    main()
