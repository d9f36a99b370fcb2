"""The JSON output of `decrypt --json` and `triage --json` on every fixture stays byte-for-byte
what it was when this file was written (before the "one TLS core, two drivers" refactor).

Each capture is decoded with its key log and without keys; `decrypt` also with `--export`'s
sibling flag off. A changed output fails with the first differing line. When a change of output
is *intended* (a new field, a fixed bug), regenerate with::

    CAPDEBUG_REGEN_GOLDEN=1 python -m pytest tests/golden -q

and say in the commit message what changed and why.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capdebug.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = Path(__file__).parent / "data"


def _captures() -> list[tuple[str, Path, Path | None]]:
    out: list[tuple[str, Path, Path | None]] = []
    for folder, prefix in ((FIXTURES, ""), (FIXTURES / "triage", "triage-")):
        for pcap in sorted(folder.glob("*.pcap*")):
            keys = pcap.with_suffix(".keys")
            out.append((prefix + pcap.stem, pcap, keys if keys.exists() else None))
    out.append(("sample", ROOT / "samples" / "tls13-premature-close.pcapng", None))
    return out


CASES = [
    (f"{name}.{cmd}.{'keys' if with_keys else 'nokeys'}", cmd, pcap, keys if with_keys else None)
    for name, pcap, keys in _captures()
    for cmd in ("decrypt", "triage")
    for with_keys in ((True, False) if keys is not None else (False,))
]


def _output(cmd: str, pcap: Path, keys: Path | None) -> str:
    args = [cmd, str(pcap), "--json", "--no-env"]
    if keys is not None:
        args += ["--keylog", str(keys)]
    if cmd == "triage":
        args += ["--jobs", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 1), (result.exit_code, result.output)
    return f"exit {result.exit_code}\n{result.stdout}"


@pytest.mark.parametrize(("case", "cmd", "pcap", "keys"), CASES, ids=[c[0] for c in CASES])
def test_json_unchanged(case: str, cmd: str, pcap: Path, keys: Path | None) -> None:
    got = _output(cmd, pcap, keys)
    path = GOLDEN / f"{case}.json.gz"
    if os.environ.get("CAPDEBUG_REGEN_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(gzip.compress(got.encode(), mtime=0))
        return
    want = gzip.decompress(path.read_bytes()).decode()
    if got != want:
        for i, (a, b) in enumerate(zip(got.splitlines(), want.splitlines(), strict=False)):
            assert a == b, f"line {i + 1} differs"
        assert len(got.splitlines()) == len(want.splitlines()), "number of lines differs"
        assert got == want


def test_every_case_has_golden_output() -> None:
    """No golden file is left without a case (a renamed fixture must regenerate, not be lost)."""
    names = {c[0] for c in CASES}
    stored = {p.name.removesuffix(".json.gz") for p in GOLDEN.glob("*.json.gz")}
    assert stored == names
    assert len(names) > 100
