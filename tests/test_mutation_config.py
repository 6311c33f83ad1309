"""`make mutants` points at real files: a module moved or renamed without re-pointing
its entry would otherwise be mutated nowhere and reported as nothing."""

from __future__ import annotations

from mutation.equivalent import EQUIVALENT
from mutation.run import MODULES, ROOT


def test_every_mutated_module_and_its_tests_exist() -> None:
    for name, module in MODULES.items():
        assert (ROOT / module.path).is_file(), name
        assert module.tests, name
        for node in module.tests + module.deselect:
            path, _, test = node.partition("::")
            assert (ROOT / path).is_file(), (name, path)
            assert not test or f"def {test}(" in (ROOT / path).read_text(), (name, node)


def test_every_equivalent_mutant_names_a_module_and_gives_a_reason() -> None:
    for name, entries in EQUIVALENT.items():
        assert name in MODULES, name
        for original, mutated, why in entries:
            assert original != mutated and why, (name, original)
