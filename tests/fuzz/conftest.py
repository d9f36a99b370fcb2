"""The fuzz targets live in scripts/fuzz_targets.py (shared with the atheris campaigns of
scripts/fuzz.py); the suite runs each under hypothesis with a bounded number of examples."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
