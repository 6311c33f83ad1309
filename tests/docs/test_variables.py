"""README.md's variable table, .env.example and every variable named in the docs,
against `config_load.VARIABLES` (the one list the services read) and compose.yaml."""

from __future__ import annotations

import re

from sayna_sip.common.config import DEFAULT_RETRY_SCHEDULE, ServerConfig
from sayna_sip.common.config_load import VARIABLES
from tests.docs import markdown, sources

README = "README.md"
NAME = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b")


def _table() -> dict[str, str]:
    """Documented variable -> its documented default (one cell per name of a row)."""
    table = markdown.table_with(markdown.text(README), "variable", "default", "meaning")
    out: dict[str, str] = {}
    for name_cell, default_cell, _ in table.rows:
        names = markdown.spans(name_cell)
        defaults = markdown.spans(default_cell)
        for i, name in enumerate(names):
            out[name] = defaults[i] if len(defaults) == len(names) else default_cell
    return out


def _compose_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", markdown.text("compose.yaml")))


def _program_default(path: str) -> object:
    config = ServerConfig.from_env({"SIP_ROOM_PREFIX": "x", "SIP_ALLOWED_ADDRESSES": "10.0.0.1"})
    value: object = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _duration(seconds: float) -> str:
    """Seconds as the docs write a schedule's delays: 0s, 5s, 5m, 2h."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value == DEFAULT_RETRY_SCHEDULE:
        return ",".join(_duration(v) for v in DEFAULT_RETRY_SCHEDULE)
    return str(value)


def test_every_variable_is_in_the_readme_table_and_nothing_else_is() -> None:
    documented, program = set(_table()), set(VARIABLES)
    assert not program - documented, (
        f"add {sorted(program - documented)} to the variable table of {README} "
        "(variable | default | meaning)"
    )
    program |= sources.otel_variables()  # the standard ones: documented as needed
    assert not documented - program, (
        f"{README} documents variables the program does not read: "
        f"{sorted(documented - program)} (declare them in config_load.VARIABLES or drop them)"
    )


def test_documented_defaults_are_the_programs() -> None:
    table = _table()
    for name, path in VARIABLES.items():
        if path is None:
            continue
        shown = _shown(_program_default(path))
        assert table[name] == shown, (
            f"{README}: the default of {name} is `{shown}`, the table says {table[name]!r}"
        )


def test_env_example_holds_only_real_variables() -> None:
    known = set(VARIABLES) | _compose_variables()
    unknown = set(markdown.env_example()) - known
    assert not unknown, f".env.example sets {sorted(unknown)}, which nothing reads"


def test_env_example_sets_every_variable_compose_reads() -> None:
    missing = _compose_variables() - set(markdown.env_example())
    assert not missing, f"add {sorted(missing)} to .env.example (compose.yaml reads them)"


def test_every_variable_named_in_the_docs_exists() -> None:
    """An ALL_CAPS name in a code span or block is a variable the program reads, one that
    compose.yaml reads, or a name the source defines (a stream, a constant)."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in sources.source_files())
    known = set(VARIABLES) | _compose_variables() | sources.otel_variables()
    known |= sources.tooling_variables()
    for path, doc in markdown.all_docs().items():
        for snippet in markdown.code_text(doc):
            for name in NAME.findall(snippet):
                unquoted = re.search(rf"(?<![\"'\w]){name}(?![\"'\w])", source)
                assert name in known or unquoted, (
                    f"{path} names {name}: neither a variable (VARIABLES, compose.yaml) "
                    "nor a name in the source"
                )


def test_config_reads_only_declared_variables() -> None:
    """Names config_load.py looks up by hand (`"X" in e`) are declared too."""
    text = (sources.ROOT / "libs/common/src/sayna_sip/common/config_load.py").read_text()
    looked_up = set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', text))
    assert looked_up <= set(VARIABLES), sorted(looked_up - set(VARIABLES))
