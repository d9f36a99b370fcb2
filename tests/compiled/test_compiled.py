"""The compiled build (``CAPDEBUG_MYPYC=1``, setup.py) gives the pure package's output, byte for
byte, on every fixture.

Run by scripts/build_compiled.sh: this interpreter imports capdebug compiled with mypyc (the
first test makes sure of it, so that a build that silently fell back to pure Python cannot
pass), and CAPDEBUG_PURE_SRC names a folder holding the same sources uncompiled, which a
subprocess runs as the reference.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

from capdebug.analysis.sessions import CaptureKeys
from capdebug.api import triage_capture
from capdebug.crypto.keylog import KeyLog
from tests.golden.test_golden_json import CASES, FIXTURES, _output

PURE_SRC = Path(os.environ.get("CAPDEBUG_PURE_SRC", "")).resolve()
ROOT = Path(__file__).resolve().parents[2]

# The pure reference: every case's output (as tests/golden renders it), and the files the
# decoder and the JSON encoder were imported from (to show they are the pure sources).
_PURE_SCRIPT = """
import json, sys
from tests.golden.test_golden_json import CASES, _output
import capdebug.analysis.decode.decoder as decoder, capdebug.analysis.events as events
out = {case: _output(cmd, pcap, keys) for case, cmd, pcap, keys in CASES}
json.dump({"files": [decoder.__file__, events.__file__], "outputs": out}, sys.stdout)
"""


def _compiled_modules() -> list[str]:
    """MYPYC_MODULES of setup.py, as module names."""
    tree = ast.parse((PURE_SRC / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "MYPYC_MODULES" and node.value is not None:
                paths: list[str] = ast.literal_eval(node.value)
                return [p.removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("setup.py has no MYPYC_MODULES")


def _is_extension(path: str | None) -> bool:
    return path is not None and path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_hot_modules_are_compiled() -> None:
    import capdebug

    assert not Path(capdebug.__file__ or "").resolve().is_relative_to(PURE_SRC)
    modules = _compiled_modules()
    assert len(modules) >= 20
    pure = [m for m in modules if not _is_extension(importlib.import_module(m).__file__)]
    assert pure == [], f"not compiled: {pure}"


def test_identical_output_on_every_fixture() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PURE_SRC), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-c", _PURE_SCRIPT], cwd=ROOT, env=env, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    pure = json.loads(proc.stdout)
    for file in pure["files"]:
        assert Path(file).resolve().is_relative_to(PURE_SRC) and file.endswith(".py"), file
    differ = []
    for case, cmd, pcap, keys in CASES:
        got = _output(cmd, pcap, keys)
        if got != pure["outputs"][case]:
            lines = zip(got.splitlines(), pure["outputs"][case].splitlines(), strict=False)
            first = next((i + 1 for i, (a, b) in enumerate(lines) if a != b), "count")
            differ.append(f"{case} (line {first})")
    assert len(pure["outputs"]) == len(CASES) > 100
    assert differ == [], f"compiled output differs from pure: {differ}"


def test_triage_shares_cross_processes() -> None:
    """Triage in two forked processes pickles the compiled classes across a pipe; the shares
    must be used (not fall back to one process) and give the one-process result."""
    pcap = FIXTURES / "tls13-resumption.pcap"
    keys = KeyLog.from_file(pcap.with_suffix(".keys"))
    from capdebug import _shares

    shared = _shares.triage_in_shares(pcap, CaptureKeys(keys), slow_handshake=1.0, jobs=2, progress=None)
    assert shared is not None, "the shares fell back to one process"
    one = triage_capture(pcap, keys, jobs=1)
    assert [r.to_json() for r in shared[0]] == [r.to_json() for r in one.reports]
    assert len(one.reports) == 2
