"""Parse human durations (`500ms`, `5s`, `1m`, `2h`, `1d`) and retry schedules (`0s,5s,1m`)."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in `text`; a bare number is seconds. Raises ValueError on anything else."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text.strip()}' is not a duration like 500ms, 5s, 1m, 2h")
    unit = match.group(2).lower() if match.group(2) else None
    return float(match.group(1)) * _UNIT[unit]


def parse_schedule(value: str | list[object] | tuple[object, ...]) -> tuple[float, ...]:
    """A retry schedule from `'0s,5s,1m'` or a YAML list; at least one entry."""
    items = value.split(",") if isinstance(value, str) else list(value)
    delays = tuple(_delay(item) for item in items if str(item).strip())
    if not delays:
        raise ValueError("schedule needs at least one delay")
    return delays


def _delay(item: object) -> float:
    if isinstance(item, bool):  # YAML `yes`/`true` is not a duration
        raise ValueError(f"'{item}' is not a duration like 500ms, 5s, 1m, 2h")
    seconds = float(item) if isinstance(item, int | float) else parse_duration(str(item))
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"'{item}' is not a finite, non-negative delay")
    return seconds
