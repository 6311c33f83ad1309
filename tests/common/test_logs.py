"""LOG_FORMAT=json carries the text format's fields as JSON: each `key=value` a key,
bare numbers as numbers, quoted values decoded, prose in `msg`."""

from __future__ import annotations

import json
import logging

import pytest

from sayna_sip.common.logs import JsonFormatter, KeyValueFormatter, quote


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("sayna_sip.up", logging.WARNING, __file__, 1, msg, args, None)


def test_json_has_the_text_formats_fields_with_numbers_as_numbers() -> None:
    record = _record(
        "event=child_exited service=%s pid=%d code=%d restart_in=%gs ratio=%s error=%s",
        "router", 4242, -9, 0.5, 0.25, quote('ConnectionError("reset by peer")'),
    )  # fmt: skip
    text = KeyValueFormatter().format(record)
    out = json.loads(JsonFormatter().format(record))

    assert out == {
        "ts": text.split()[0].removeprefix("ts="), "level": "warning", "logger": "sayna_sip.up",
        "event": "child_exited", "service": "router", "pid": 4242, "code": -9,
        "restart_in": "0.5s", "ratio": 0.25, "error": 'ConnectionError("reset by peer")',
    }  # fmt: skip


@pytest.mark.parametrize(
    ("message", "fields", "msg"),
    [
        ("Application startup failed. Exiting.", {}, "Application startup failed. Exiting."),
        ('event=x detail="a b" (see above)', {"event": "x", "detail": "a b"}, "(see above)"),
        ("event=y url=nats://h:4222 empty=", {"event": "y", "url": "nats://h:4222", "empty": ""},
         None),
        ("event=z host=example.com ok=true", {"event": "z", "host": "example.com", "ok": "true"},
         None),
    ],
)  # fmt: skip
def test_prose_stays_in_msg_and_pairs_become_keys(
    message: str, fields: dict[str, object], msg: str | None
) -> None:
    out = json.loads(JsonFormatter().format(_record(message)))
    assert {k: v for k, v in out.items() if k not in ("ts", "level", "logger", "msg")} == fields
    assert out.get("msg") == msg
