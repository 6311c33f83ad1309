"""`sayna-sip hooks …`: the operator's view of the ingress hooks API.

Every subcommand is one call to the ingress (`--url`; default from `PORT`, else the
`sayna-sip up` running in this directory, else port 3001), with the API token from
`--token` or `AUTH_API_SECRET` (the environment, else `.env`, as `up` reads them). The
options go before the action or after it. Output is a table, or the answer as it came with
`--json`. Exit codes: 0 done, 1 the API refused or could not be reached (or `delete`
found no such hook), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from sayna_sip.cli.envfile import environment
from sayna_sip.common import upstate

Call = tuple[str, str, dict[str, Any] | None]  # method, path, JSON body


def _common(p: argparse.ArgumentParser, default: Any) -> None:
    """The options every action takes, before the action or after it."""
    p.add_argument("--url", default=default, help="ingress base URL (default: $PORT, else the "
                   "`sayna-sip up` running here, else http://127.0.0.1:3001)")  # fmt: skip
    p.add_argument("--token", default=default, help="API token (default: $AUTH_API_SECRET)")
    json_default = False if default is None else default
    p.add_argument("--json", action="store_true", default=json_default,
                   help="print the API's JSON answer")  # fmt: skip
    dir_default = upstate.DEFAULT_DATA_DIR if default is None else default
    p.add_argument("--data-dir", metavar="DIR", default=dir_default, help=upstate.DATA_DIR_HELP)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sayna-sip hooks", description=__doc__.split("\n\n")[0])
    _common(p, None)
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="every hook with its source, state, events and secret fingerprints")
    s = sub.add_parser("set", help="add a runtime hook, or replace the one with the same host")
    s.add_argument("host")
    s.add_argument("hook_url", metavar="URL")
    s.add_argument(
        "--secret", help="its own signing secret (whsec_ key of 24-64 bytes, or 16-256 chars)"
    )
    s.add_argument("--events", help="comma-separated LiveKit event names it receives (default all)")
    sub.add_parser("delete", help="remove a runtime hook").add_argument("host")
    for name, text in (
        ("disable", "stop delivering to a hook (its events are dead-lettered)"),
        ("enable", "deliver to a hook again"),
        ("test", "send a signed sip_hook_test event through a forwarder"),
    ):
        one = sub.add_parser(name, help=text)
        one.add_argument("host")
        one.add_argument("--endpoint", metavar="ID", help="that endpoint (default: default)")
    r = sub.add_parser("rotate-secret", help="new signing secret; the old one signs beside it")
    r.add_argument("host")
    r.add_argument("--secret", help="the new secret (default: a generated whsec_ secret)")
    r.add_argument("--endpoint", metavar="ID", help="that endpoint (default: default)")
    sub.add_parser("endpoints", help="a host's endpoints, default first").add_argument("host")
    a = sub.add_parser("add-endpoint", help="add an endpoint to a runtime hook")
    a.add_argument("host")
    a.add_argument("hook_url", metavar="URL")
    a.add_argument("--id", help="its id, [a-z0-9-]{1,32} (default: generated)")
    a.add_argument("--secret", help="its own signing secret (whsec_… or ≥ 16 characters)")
    a.add_argument("--events", help="comma-separated LiveKit event names it receives (default all)")
    a.add_argument(
        "--header", action="append", default=[], metavar="NAME=VALUE",
        help="a custom header sent with every attempt (repeatable; values never shown)",
    )  # fmt: skip
    d = sub.add_parser("remove-endpoint", help="remove an endpoint (not default)")
    d.add_argument("host")
    d.add_argument("endpoint", metavar="ID")
    rp = sub.add_parser("replay", help="deliver a window's events again (same webhook-id)")
    rp.add_argument("host")
    rp.add_argument("--since", required=True, help="from: 2h, 1d or an RFC 3339 time")
    rp.add_argument("--until", help="to (default now): 2h, 1d or an RFC 3339 time")
    rp.add_argument("--endpoint", metavar="ID", help="that endpoint only (default: all)")
    for action in sub.choices.values():
        _common(action, argparse.SUPPRESS)
    return p


def _call(args: argparse.Namespace) -> Call:
    host = getattr(args, "host", "")
    if args.action == "list":
        return "GET", "/sip/hooks", None
    if args.action == "set":
        hook: dict[str, Any] = {"host": host, "url": args.hook_url}
        if args.secret:
            hook["secret"] = args.secret
        if args.events:
            hook["events"] = [e.strip() for e in args.events.split(",") if e.strip()]
        return "POST", "/sip/hooks", {"hooks": [hook]}
    if args.action == "delete":
        return "DELETE", "/sip/hooks", {"hosts": [host]}
    under = f"/sip/hooks/{host}/endpoints"
    if args.action == "endpoints":
        return "GET", under, None
    if args.action == "add-endpoint":
        endpoint: dict[str, Any] = {"url": args.hook_url}
        if args.id:
            endpoint["id"] = args.id
        if args.secret:
            endpoint["secret"] = args.secret
        if args.events:
            endpoint["events"] = [e.strip() for e in args.events.split(",") if e.strip()]
        if args.header:
            endpoint["headers"] = dict(h.partition("=")[::2] for h in args.header)
        return "POST", under, endpoint
    if args.action == "remove-endpoint":
        return "DELETE", f"{under}/{args.endpoint}", None
    base = f"{under}/{args.endpoint}" if getattr(args, "endpoint", None) else f"/sip/hooks/{host}"
    if args.action == "replay":
        window = {"since": args.since, **({"until": args.until} if args.until else {})}
        return "POST", f"{base}/replay", window
    if args.action == "rotate-secret":
        return "POST", f"{base}/rotate-secret", ({"secret": args.secret} if args.secret else {})
    return "POST", f"{base}/{args.action}", None


def _hook_rows(answer: dict[str, Any]) -> list[str]:
    rows = [f"{'HOST':<32} {'SOURCE':<8} {'STATE':<9} {'EVENTS':<24} {'SECRETS':<20} URL"]
    hooks = answer.get("hooks") or ([answer] if "host" in answer else [])  # a list, or one hook
    for h in hooks:
        state = "enabled" if h.get("enabled", True) else "disabled"
        events = ",".join(h.get("events") or []) or "all"
        secrets = ",".join(s["fingerprint"] for s in h.get("secrets") or []) or "global"
        rows.append(
            f"{h['host']:<32} {h['source']:<8} {state:<9} {events:<24} {secrets:<20} {h['url']}"
        )
    return rows


def _endpoint_rows(answer: dict[str, Any]) -> list[str]:
    rows = [f"{'ID':<20} {'STATE':<9} {'EVENTS':<24} {'HEADERS':<24} {'ORDERING':<9} URL"]
    endpoints = answer.get("endpoints") or ([answer] if "id" in answer else [])
    for e in endpoints:
        state = "enabled" if e.get("enabled", True) else "disabled"
        events = ",".join(e.get("events") or []) or "all"
        names = ",".join(e.get("headers") or {}) or "-"  # names only: values stay sealed
        ordering = e.get("ordering") or "default"  # unset: SIP_ORDERING
        rows.append(f"{e['id']:<20} {state:<9} {events:<24} {names:<24} {ordering:<9} {e['url']}")
    return rows


def _test_rows(answer: dict[str, Any]) -> list[str]:
    line = f"status={answer.get('status')} duration_ms={answer.get('duration_ms')}"
    if answer.get("error"):
        line += f" error={answer['error']!r}"
    rows = [line]
    if answer.get("response_excerpt"):
        rows.append(f"response: {answer['response_excerpt']}")
    return rows


def _rotate_rows(answer: dict[str, Any]) -> list[str]:
    shown = _hook_rows(answer["hook"]) if "hook" in answer else _endpoint_rows(answer["endpoint"])
    return [f"new secret (shown once, store it now): {answer.get('secret')}", *shown]


def _replay_rows(answer: dict[str, Any]) -> list[str]:
    rows = [f"replayed {answer.get('replayed')} event(s), {answer.get('expired')} expired"]
    if answer.get("truncated"):
        rows.append(f"more in the window: run again with --since {answer.get('next_since')}")
    return rows


_RENDER: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "replay": _replay_rows,
    "test": _test_rows,
    "rotate-secret": _rotate_rows,
    "endpoints": _endpoint_rows,
    "add-endpoint": _endpoint_rows,
    "remove-endpoint": _endpoint_rows,
}


def ingress_base(
    env: Mapping[str, str],
    data_dir: str = upstate.DEFAULT_DATA_DIR,
    dotenv: Mapping[str, str] | None = None,
) -> str:
    """PORT when set, else the `sayna-sip up` running from `data_dir`, else `.env`'s PORT
    (the up is where it is, whatever the file says now), else port 3001."""
    running = upstate.read(data_dir)
    if not env.get("PORT") and running is not None:
        return running.ingress_url
    return f"http://127.0.0.1:{env.get('PORT') or (dotenv or {}).get('PORT') or 3001}"


def refusal(status: int, answer: dict[str, Any]) -> str:
    """The one line for an answer that is not a success."""
    line = f"sayna-sip hooks: {status} {answer.get('error')}: {answer.get('message')}"
    if status == 401:  # say what to do, not which header was wrong
        return (f"sayna-sip hooks: the ingress refused the API token ({status} "
                f"{answer.get('error')}): pass --token or set AUTH_API_SECRET")  # fmt: skip
    return line


def not_found(action: str, answer: dict[str, Any]) -> str | None:
    """A delete of hosts that do not exist did nothing: say so (and exit 1)."""
    missing = answer.get("not_found") or []
    if action == "delete" and missing:
        return f"sayna-sip hooks: no runtime hook {', '.join(missing)}"
    return None


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    env = environment(os.environ)  # .env too, as `up` reads it
    base = args.url or ingress_base(os.environ, args.data_dir, env)
    token = args.token or env.get("AUTH_API_SECRET")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    method, path, body = _call(args)
    if method != "GET":  # state-changing routes take JSON only, an empty body included
        headers["Content-Type"] = "application/json"
    try:
        reply = httpx.request(
            method, base.rstrip("/") + path, json=body, headers=headers, timeout=30.0
        )
    except httpx.HTTPError as exc:
        print(f"sayna-sip hooks: cannot reach the ingress at {base} ({exc}): "
              "is `sayna-sip up` running here?", file=sys.stderr)  # fmt: skip
        return 1
    try:
        answer: dict[str, Any] = reply.json()
    except ValueError:
        answer = {"error": "not_json", "message": reply.text[:200]}
    if not reply.is_success:
        print(refusal(reply.status_code, answer), file=sys.stderr)
        return 1
    if (missing := not_found(args.action, answer)) is not None:
        print(missing, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        one = getattr(args, "endpoint", None) and args.action in ("disable", "enable")
        render = _endpoint_rows if one else _RENDER.get(args.action, _hook_rows)
        print("\n".join(render(answer)))
    return 0
