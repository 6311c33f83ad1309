r"""Error codes: the program answers only `ErrorCode` members (never a code spelled by
hand), every member is named in the docs, and every code the docs show an answer with
(`503 \`nats_unavailable\``, `{"error":"..."}`) is one of them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sayna_sip.common.labels import DeadReason, ErrorCode
from tests.docs import markdown, sources

CODES = {str(c) for c in ErrorCode}
# Calls that take an error code: the ingress's error classes, its body and response
# helpers. A str literal shaped like a code among their arguments is a code by hand.
TAKES_CODE = re.compile(r"^(\w*Error|BadRequest|Unauthorized|NotFound|Conflict|"
                        r"PayloadTooLarge|Unavailable|ErrorBody|_response|_json)$")  # fmt: skip
CODE_SHAPE = re.compile(r"[a-z]+(?:_[a-z]+)+|[a-z]+")
# Answers in the docs: a status then a code span, or an error body.
AFTER_STATUS = re.compile(r"\b[1-5]\d\d\)? \(?`([a-z]+(?:_[a-z]+)*)`")
ERROR_BODY = re.compile(r'"error": ?"([a-z_]+)"((?:\\?\|"[a-z_]+")*)')


def _literal_codes(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = str(getattr(node.func, "id", None) or getattr(node.func, "attr", ""))
            if TAKES_CODE.match(name):
                args = node.args[1:] if name != "ErrorBody" else node.args[:1]
                args += [k.value for k in node.keywords if k.arg in ("code", "error")]
                found += [f"{name}({a.value!r})" for a in args
                          if isinstance(a, ast.Constant) and isinstance(a.value, str)
                          and CODE_SHAPE.fullmatch(a.value)]  # fmt: skip
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (isinstance(key, ast.Constant) and key.value == "error"
                        and isinstance(value, ast.Constant)
                        and CODE_SHAPE.fullmatch(str(value.value))):  # fmt: skip
                    found.append(f"{{'error': {value.value!r}}}")
    return found


def test_services_answer_only_codes_from_error_code() -> None:
    by_hand = {
        str(p.relative_to(sources.ROOT)): codes
        for p in sources.source_files()
        if "/services/" in str(p) and (codes := _literal_codes(p))
    }
    assert not by_hand, f"use sayna_sip.common.labels.ErrorCode, not literals: {by_hand}"


def _documented_codes() -> dict[str, str]:
    found: dict[str, str] = {}
    for path, doc in markdown.all_docs().items():
        for code in AFTER_STATUS.findall(doc):
            found.setdefault(code, path)
        for first, rest in ERROR_BODY.findall(doc):
            for code in [first, *re.findall(r'"([a-z_]+)"', rest)]:
                found.setdefault(code, path)
    return found


def test_every_documented_error_code_is_answered() -> None:
    reasons = {str(r) for r in DeadReason}  # "410 (`gone`)" names a dead-letter reason
    found = _documented_codes().items()
    wrong = {code: doc for code, doc in found if code not in CODES | reasons}
    assert not wrong, f"documented error codes the program never answers: {wrong}"


def test_every_error_code_is_documented() -> None:
    spans = {s for doc in markdown.all_docs().values() for s in markdown.spans(doc)}
    missing = sorted(CODES - spans - set(_documented_codes()))
    assert not missing, f"name these error codes in README.md or docs/ (as `code`): {missing}"
