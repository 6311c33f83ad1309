"""Structured logging: one event per line, `key=value` (text) or JSON.

Call sites log `"event=<name> key=%s ..."`; the text formatter prefixes time, level and
logger, the JSON formatter parses the pairs into fields.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        level = record.levelname.lower()
        line = f"ts={stamp}.{int(record.msecs):03d}Z level={level} logger={record.name} "
        line += record.getMessage()
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        try:
            pairs = [p.split("=", 1) for p in shlex.split(message)]
            if pairs and all(len(p) == 2 for p in pairs):
                out.update(dict(pairs))
            else:
                out["msg"] = message
        except ValueError:
            out["msg"] = message
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


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
