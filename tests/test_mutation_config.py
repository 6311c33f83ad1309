"""`make mutants` points at real files: a module moved or renamed without re-pointing
its entry would otherwise be mutated nowhere and reported as nothing."""

from __future__ import annotations

import shlex

from mutation.run import MODULES, ROOT


def test_every_mutated_module_and_its_tests_exist() -> None:
    for name, module in MODULES.items():
        assert (ROOT / module.path).is_file(), name
        tests = [a for a in shlex.split(module.tests) if not a.startswith("-")]
        assert tests, name
        for path in tests:
            assert (ROOT / path).is_file(), (name, path)
