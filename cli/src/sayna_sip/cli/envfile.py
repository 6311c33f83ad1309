"""The environment the operator's commands see: the process environment over the `.env`
of the working directory (the file docker compose reads), so `up`, `hooks` and the
others agree with compose on PORT, AUTH_API_SECRET and the rest."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values


def environment(base: Mapping[str, str], dotenv: Path = Path(".env")) -> dict[str, str]:
    """environment > .env (> YAML, applied later by the config loader)."""
    from_file = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
    return {**from_file, **base}
