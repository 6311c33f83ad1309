"""docs/operations.md's metrics table against the services' registries and label enums."""

from __future__ import annotations

import re

import pytest

from sayna_sip.common.labels import METRIC_LABELS
from tests.docs import markdown, sources

OPS = "docs/operations.md"


def _table() -> dict[str, list[str]]:
    table = markdown.table_with(markdown.text(OPS), "metric", "type", "labels", "meaning")
    return {markdown.spans(row[0])[0]: row for row in table.rows}


def _program() -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {}
    for registry in sources.registries().values():
        for name, kind in sources.exported_names(registry).items():
            if name.startswith("sayna_sip_"):
                out[name] = kind
    return out


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    documented, program = set(_table()), set(_program())
    assert not program - documented, (
        f"add a row for {sorted(program - documented)} to the metrics table of {OPS} "
        "(metric | type | labels | meaning)"
    )
    assert not documented - program, (
        f"{OPS} documents metrics no service exports: {sorted(documented - program)}"
    )


def test_documented_types_and_labels_match() -> None:
    table, program = _table(), _program()
    for name, (kind, labels) in program.items():
        row = table[name]
        assert row[1] == kind, f"{OPS}: {name} is a {kind}, the table says {row[1]!r}"
        assert markdown.spans(row[2]) == labels, (
            f"{OPS}: the labels of {name} are {labels}, the table says {row[2]!r}"
        )


@pytest.mark.parametrize(
    ("metric", "label"), [(m, lb) for m, d in METRIC_LABELS.items() for lb in d]
)
def test_documented_label_values_are_exactly_the_emitted_ones(metric: str, label: str) -> None:
    """The meaning column lists, in backticks, every value the label takes."""
    values = {str(v) for v in METRIC_LABELS[metric][label]}
    cell = markdown.spans(_table()[metric][3])
    documented = {s.split(":")[0] for s in cell if s != label and not s.isupper()}
    assert values <= documented, (
        f"{OPS}: list {sorted(values - documented)} as `{label}` values of {metric}"
    )
    assert documented <= values, (
        f"{OPS}: {metric} never has {label}={sorted(documented - values)}; "
        f"the program's values are {sorted(values)} (sayna_sip.common.labels)"
    )


def test_every_service_exports_the_standard_process_and_python_metrics() -> None:
    assert "every service also exports" in markdown.text(OPS)
    for service, registry in sources.registries().items():
        names = set(sources.exported_names(registry))
        for wanted in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                       "python_info", "python_gc_collections_total"):  # fmt: skip
            assert wanted in names, f"{service} does not export {wanted}"


def test_metric_names_mentioned_anywhere_exist() -> None:
    program = set(_program())
    for path, doc in markdown.all_docs().items():
        for name in re.findall(r"`(sayna_sip_[a-z_]+)", doc):
            assert name in program, f"{path} mentions {name}, which no service exports"
