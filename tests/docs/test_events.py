"""Log event names and LiveKit event names in the docs against the code: every
`event=<name>` shown is one a process logs (or a LiveKit event the try-it tools print),
and the hook filter's documented event list is exactly `contracts.LIVEKIT_EVENTS`."""

from __future__ import annotations

import re

from sayna_sip.common.contracts import LIVEKIT_EVENTS
from tests.docs import markdown, sources

OPS = "docs/operations.md"


def test_every_documented_log_event_is_logged() -> None:
    known = sources.log_events() | set(LIVEKIT_EVENTS)
    for path, doc in markdown.all_docs().items():
        for name in re.findall(r"event=([a-z][a-z0-9_]*)", doc):
            assert name in known, f"{path} shows event={name}, which nothing logs"
        for span in markdown.spans(doc):
            if re.fullmatch(r"[a-z]+(?:_[a-z]+)*_(?:start_failed|failed|crashed)", span):
                assert span in known, f"{path} names `{span}`, which nothing logs"


def test_the_event_filter_lists_exactly_livekits_events() -> None:
    unit = next(u for u in markdown.units(markdown.text(OPS)) if "**Event filter**" in u)
    documented = [s for s in markdown.spans(unit) if s in LIVEKIT_EVENTS or re.fullmatch(
        r"(?:room|participant|track|egress|ingress)_[a-z_]+", s)]  # fmt: skip
    assert set(documented) == set(LIVEKIT_EVENTS), (
        f"{OPS}: the event filter lists {sorted(set(documented))}, "
        f"the program takes {sorted(LIVEKIT_EVENTS)}"
    )
