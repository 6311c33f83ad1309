"""docs/api-answers.md is what the ingress's OpenAPI schema says of every API route: its
answers (status, body, meaning), the token it needs and its query parameters, so a client
generated from the schema and a reader of the docs are told the same."""

from __future__ import annotations

from tests.docs import api_answers


def test_the_api_answers_doc_is_the_served_schema() -> None:
    written = api_answers.DOC.read_text(encoding="utf-8")
    assert written == api_answers.render(api_answers.schema()), (
        "the API's documented answers changed: run `make api-answers` and review the diff"
    )
