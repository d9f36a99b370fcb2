"""tests/compiled runs only against the compiled build, made and tested by
scripts/build_compiled.sh (``make test-compiled``), which names the pure sources to compare
with in CAPDEBUG_PURE_SRC. In the ordinary suite capdebug is the pure package itself and there
is nothing to compare, so the directory is not collected there."""

from __future__ import annotations

import os

if not os.environ.get("CAPDEBUG_PURE_SRC"):
    collect_ignore_glob = ["test_*.py"]
