"""The records routes' own answers (routes_deliveries.py), word for word: what an
operator reads when SIP is off and when a query or body cannot be used."""

from __future__ import annotations

import pytest

from sayna_sip.common.config import ServerConfig
from tests.fixtures.livekit import API_KEY, API_SECRET
from tests.ingress.conftest import Client, serve

# SIP off: no NATS, no records; every route is still served.
SIP_OFF = ServerConfig.from_env({"LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET})
HOST = "a.example.com"
BAD_HOST = "SIP hook host '-bad-' is not"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/sip/deliveries", None), ("GET", "/sip/deliveries/EV_1", None),
     ("POST", "/sip/deliveries/EV_1/resend", {}), ("GET", "/sip/dead-letters", None),
     ("GET", f"/sip/hooks/{HOST}/stats", None),
     ("GET", f"/sip/hooks/{HOST}/endpoints/default/stats", None),
     ("POST", "/sip/dead-letters/redrive", {"host": HOST}),
     ("POST", f"/sip/hooks/{HOST}/replay", {"since": "1h"}),
     ("POST", f"/sip/hooks/{HOST}/endpoints/default/replay", {"since": "1h"})],
)  # fmt: skip
async def test_without_sip_every_records_route_says_records_are_unavailable(
    method: str, path: str, body: dict[str, str] | None
) -> None:
    async with serve(SIP_OFF) as client:
        r = await client.request(method, path, json=body)
    assert (r.status_code, r.json()) == (503, {
        "error": "records_unavailable",
        "message": "delivery records need SIP and NATS configured",
    })  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "answer"),
    [("GET", "/sip/deliveries?outcome=x-y", None,
      ("invalid_query", "outcome 'x-y' is not an outcome name")),
     ("GET", "/sip/deliveries?outcome=__", None,  # underscores join words, they are none
      ("invalid_query", "outcome '__' is not an outcome name")),
     ("GET", f"/sip/hooks/{HOST}/stats?window=2h", None,
      ("invalid_query", "window must be one of 1h, 24h, 7d")),
     ("GET", f"/sip/hooks/{HOST}/endpoints/default/stats?window=30d", None,
      ("invalid_query", "window must be one of 1h, 24h, 7d")),
     ("POST", "/sip/dead-letters/redrive", {"until": "1h"},
      ("invalid_body", "give host, since or event_ids (all of them: since=7d)")),
     ("POST", f"/sip/hooks/{HOST}/replay", {"since": " ", "until": "1h"},
      ("invalid_body", "'since' is required (a time or a duration back, like 1h)")),
     ("POST", f"/sip/hooks/{HOST}/endpoints/default/replay", {"since": ""},
      ("invalid_body", "'since' is required (a time or a duration back, like 1h)"))],
)  # fmt: skip
async def test_unusable_input_is_400_saying_what_to_send(
    ingress: Client, method: str, path: str, body: dict[str, str] | None, answer: tuple[str, str]
) -> None:
    r = await ingress.request(method, path, json=body)
    assert (r.status_code, (r.json()["error"], r.json()["message"])) == (400, answer)


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "start"),
    [("GET", "/sip/deliveries?since=soon", None, "invalid_query", "since: "),
     ("GET", "/sip/dead-letters?until=soon", None, "invalid_query", "until: "),
     ("POST", "/sip/dead-letters/redrive", {"since": "soon"}, "invalid_body", "since: "),
     ("POST", "/sip/dead-letters/redrive", {"host": HOST, "until": "soon"}, "invalid_body",
      "until: "),
     ("POST", f"/sip/hooks/{HOST}/replay", {"since": "1h", "until": "soon"}, "invalid_body",
      "until: "),
     ("GET", "/sip/deliveries?until=soon", None, "invalid_query", "until: "),
     ("GET", "/sip/dead-letters?since=soon", None, "invalid_query", "since: "),
     ("POST", f"/sip/hooks/{HOST}/replay", {"since": "soon"}, "invalid_body", "since: "),
     ("POST", f"/sip/hooks/{HOST}/endpoints/default/replay", {"since": "1h", "until": "soon"},
      "invalid_body", "until: "),
     ("GET", "/sip/deliveries?host=-bad-", None, "invalid_query", BAD_HOST),
     ("GET", "/sip/dead-letters?host=-bad-", None, "invalid_query", BAD_HOST),
     ("GET", "/sip/hooks/-bad-/stats", None, "invalid_query", BAD_HOST),
     ("POST", "/sip/hooks/-bad-/replay", {"since": "1h"}, "invalid_query", BAD_HOST),
     ("GET", "/sip/hooks/%20/stats", None, "invalid_query", "SIP hook host cannot be empty"),
     ("GET", "/sip/hooks/%20/endpoints/default/stats", None, "invalid_query",
      "SIP hook host cannot be empty"),
     ("POST", "/sip/hooks/%20/replay", {"since": "1h"}, "invalid_query",
      "SIP hook host cannot be empty"),
     ("POST", "/sip/dead-letters/redrive", {"host": "-bad-"}, "invalid_body", BAD_HOST)],
)  # fmt: skip
async def test_a_bad_time_or_host_is_named_and_coded_by_where_it_came_from(
    ingress: Client, method: str, path: str, body: dict[str, str] | None, code: str, start: str
) -> None:
    r = await ingress.request(method, path, json=body)
    assert (r.status_code, r.json()["error"]) == (400, code), r.text
    assert r.json()["message"].startswith(start), r.text


async def test_an_event_without_records_is_404_naming_it(ingress: Client) -> None:
    for method, path in (
        ("GET", "/sip/deliveries/EV_none"),
        ("POST", "/sip/deliveries/EV_none/resend"),
    ):
        r = await ingress.request(method, path, json=None if method == "GET" else {})
        assert (r.status_code, r.json()) == (404, {
            "error": "not_found", "message": "no delivery record of event EV_none",
        }), method  # fmt: skip
