"""Structured logging: one event per line, `key=value` (text) or JSON.

Call sites log `"event=<name> key=%s ..."` (values through `quote()` when they may hold
spaces or quotes). The text formatter prefixes time, level and logger; the JSON formatter
puts the same fields in one object: each pair a key, bare numbers as numbers, quoted
values decoded, and anything that is not a pair (a library's prose) in `msg`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# key=value, the value a JSON string (as quote() writes it) or a bare token.
_PAIR = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)')
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")


def _stamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        line = f"ts={_stamp(record)} level={level} logger={record.name} "
        line += record.getMessage()
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


def _value(raw: str) -> object:
    if raw.startswith('"'):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    if _NUMBER.fullmatch(raw):
        return float(raw) if "." in raw else int(raw)
    return raw


def parse_pairs(message: str) -> tuple[dict[str, object], str]:
    """The `key=value` pairs of a message and what is left of it (prose)."""
    fields: dict[str, object] = {}
    rest: list[str] = []
    pos = 0
    for m in _PAIR.finditer(message):
        if m.start() > 0 and not message[m.start() - 1].isspace():
            continue  # `a=b` inside a word is prose
        rest.append(message[pos : m.start()])
        fields[m.group(1)] = _value(m.group(2))
        pos = m.end()
    rest.append(message[pos:])
    return fields, " ".join(" ".join(rest).split())


class JsonFormatter(logging.Formatter):
    """The text format's fields as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        fields, prose = parse_pairs(record.getMessage())
        out: dict[str, object] = {
            "ts": _stamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        for key, value in fields.items():
            out.setdefault(key, value)
        if prose:
            out["msg"] = prose
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "faststream", "uvicorn.access", "httpx", "httpcore", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def quote(value: object) -> str:
    """A value safe for a key=value line (double-quoted, JSON-escaped, when needed)."""
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in " \"'=\t\n\\")) else text


def shorten(text: str, keep: int = 80) -> str:
    """`text` cut to `keep` characters: an answer or a line never echoes a huge value."""
    return text if len(text) <= keep else text[:keep] + f"… ({len(text)} characters)"
