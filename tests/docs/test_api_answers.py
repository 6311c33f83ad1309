"""docs/api-answers.md is what the ingress's OpenAPI schema says of every API route: its
answers (status, body, meaning), the token it needs and its query parameters, so a client
generated from the schema and a reader of the docs are told the same."""

from __future__ import annotations

import re

from tests.docs import api_answers


def test_the_api_answers_doc_is_the_served_schema() -> None:
    written = api_answers.DOC.read_text(encoding="utf-8")
    assert written == api_answers.render(api_answers.schema()), (
        "the API's documented answers changed: run `make api-answers` and review the diff"
    )


def test_the_ingress_route_table_lists_each_routes_answers() -> None:
    """docs/ingress.md's overview table names, per route, the statuses the schema gives."""
    spec = api_answers.schema()["paths"]
    doc = (api_answers.DOC.parent / "ingress.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z/]+) (/[^`]*)` \| [^|]* \| ([^|]*) \|$", doc, re.M)
    assert len(rows) >= 8, "the route table is gone"
    wrong = []
    for methods, path, answers in rows:
        if path not in spec:
            continue  # not an API route of the schema's (the open ones are listed too)
        stated = {int(n) for n in re.findall(r"\b[1-5]\d\d\b", answers)}
        served = {int(s) for m in methods.lower().split("/") for s in spec[path][m]["responses"]}
        if stated != served:
            wrong.append(f"{methods} {path}: doc {sorted(stated)}, schema {sorted(served)}")
    assert not wrong, "docs/ingress.md's route table and the schema differ:\n" + "\n".join(wrong)
