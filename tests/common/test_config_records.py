"""Retention settings of delivery records and raw events."""

from __future__ import annotations

from pathlib import Path

import pytest

from sayna_sip.common import topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError


def test_defaults_are_7_days_1_gib_and_4_kib() -> None:
    records = ServerConfig.from_env({}).records
    assert (records.max_age, records.max_bytes, records.body_bytes) == (604800, 1 << 30, 4096)
    assert records.events_max_age == 604800


def test_environment_wins_over_yaml_and_reaches_the_streams(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("records:\n  max_age: 2d\n  max_bytes: 64MiB\n  body_bytes: 100\n")
    env = {"SIP_ATTEMPTS_MAX_AGE": "12h", "LK_EVENTS_MAX_AGE": "3d"}
    config = ServerConfig.from_file(path, env)
    streams = {s.name: s for s in topology.streams(1, config.records)}
    attempts = streams[topology.SIP_ATTEMPTS]
    assert (attempts.max_age, attempts.max_bytes) == (12 * 3600, 64 << 20)
    assert streams[topology.LK_EVENTS].max_age == 3 * 86400
    assert config.records.body_bytes == 100


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIP_ATTEMPTS_MAX_BYTES": "lots"}, "SIP_ATTEMPTS_MAX_BYTES must be a size"),
        ({"SIP_ATTEMPTS_MAX_BYTES": "1000"}, "at least 1MiB"),
        ({"SIP_ATTEMPTS_MAX_AGE": "soon"}, "SIP_ATTEMPTS_MAX_AGE is invalid"),
        ({"LK_EVENTS_MAX_AGE": "10s"}, "LK_EVENTS_MAX_AGE must be at least 1m"),
        ({"SIP_ATTEMPT_BODY_BYTES": "-1"}, "SIP_ATTEMPT_BODY_BYTES must be between"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig.from_env(env)
