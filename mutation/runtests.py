"""pytest for one mutant: any failure exits 1.

mutmut 2 counts only exit code 1 as a killed mutant; a mutant that breaks the import
makes pytest exit 2 (collection error), which mutmut would report as survived.
"""

from __future__ import annotations

import sys

import pytest

if __name__ == "__main__":
    sys.exit(0 if pytest.main(sys.argv[1:]) == 0 else 1)
