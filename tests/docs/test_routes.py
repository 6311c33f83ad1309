"""HTTP routes in the docs against the ingress's route table: every `METHOD /path`
named in README.md or docs/*.md is served, and every route served is documented."""

from __future__ import annotations

import re

from tests.docs import markdown, sources

METHODS = "GET|POST|DELETE|PUT|PATCH"
ROUTE = re.compile(rf"\b((?:{METHODS})(?:/(?:{METHODS}))*) (/[\w{{}}.:/-]*)")


def _documented() -> set[tuple[str, str, str]]:
    """(doc, method, path) of every `METHOD /path` in the docs (GET/POST/DELETE: three)."""
    found: set[tuple[str, str, str]] = set()
    for path, doc in markdown.all_docs().items():
        for methods, route in ROUTE.findall(doc):
            for method in methods.split("/"):
                found.add((path, method, route.rstrip(".:")))
    return found


def _pattern(route: str) -> re.Pattern[str]:
    """A route's path (`/sip/hooks/{host:str}/stats`) as a regex over documented paths,
    which write a parameter as `{host}` or as an example value (`EV_Xk3...`)."""
    parts = re.split(r"\{[^}]*\}", route)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def _served(method: str, path: str) -> bool:
    doc_path = re.sub(r"\{[^}]*\}", "X", path)
    return any(
        m == method and _pattern(route).fullmatch(doc_path) for m, route in sources.ingress_routes()
    )


def test_every_documented_route_is_served() -> None:
    wrong = sorted(f"{doc}: {m} {p}" for doc, m, p in _documented() if not _served(m, p))
    assert not wrong, "documented routes the ingress does not serve:\n" + "\n".join(wrong)


def test_every_served_route_is_documented() -> None:
    documented = {(m, re.sub(r"\{[^}]*\}", "X", p)) for _, m, p in _documented()}
    missing = sorted(
        f"{method} {route}"
        for method, route in sources.ingress_routes()
        if not any(m == method and _pattern(route).fullmatch(p) for m, p in documented)
    )
    assert not missing, f"document these ingress routes (`METHOD /path`): {missing}"
